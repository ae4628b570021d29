// Drives the libotr test peer (test/libotr-helper/otr-helper) over its stdio line protocol.
// The protocol is documented at the top of otr-helper.c: TAB-separated commands with hex payloads in,
// JSON lines out, each command closed by a {"ev":"done"} line. A command's result is the list of
// events printed before its "done", so tests can route injected wire lines synchronously.
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

export const HELPER_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "libotr-helper");
export const HELPER_BIN = join(HELPER_DIR, "otr-helper");

/** Builds the helper with make when it is missing or older than its source. */
export function ensureHelperBuilt(): string {
  const src = join(HELPER_DIR, "otr-helper.c");
  if (!existsSync(HELPER_BIN) || statSync(HELPER_BIN).mtimeMs < statSync(src).mtimeMs) {
    execFileSync("make", ["-s", "-C", HELPER_DIR, "otr-helper"], { stdio: "inherit" });
  }
  return HELPER_BIN;
}

export type HelperEvent =
  | { ev: "inject"; to: string; msg: string }
  | { ev: "gone_secure"; peer: string; version: number; fp: string | null; fp_raw: string | null; ssid: string;
      their_instance: number; our_instance: number }
  | { ev: "gone_insecure"; peer: string }
  | { ev: "still_secure"; peer: string; is_reply: number }
  | { ev: "new_fingerprint"; peer: string; fp_raw: string }
  | { ev: "msg_event"; event: string; peer: string; msg: string | null; err: number }
  | { ev: "smp"; event: string; peer: string; progress: number; question: string | null }
  | { ev: "received"; peer: string; text: string; tlvs: number[]; state: string; otr: boolean }
  | { ev: "ignored"; peer: string }
  | { ev: "symkey"; peer: string; use: number; usedata: string; key: string }
  | { ev: "our_symkey"; key: string }
  | { ev: "key"; fp: string | null; fp_raw?: string; instag?: number }
  | { ev: "status"; state: string; version?: number; their_instance?: number; our_instance?: number; ssid?: string;
      fp_raw?: string | null; smp_state?: number }
  | { ev: "policy"; value: number }
  | { ev: "dhstate"; state: LibotrDhState }
  | { ev: "verify"; valid: boolean }
  | { ev: "fpentry"; peer: string; account: string; protocol: string; fp_raw: string; trust: string }
  | { ev: "create_privkey"; account: string; protocol: string };

/** libotr's DH keys for one instance (hex MPIs), so tests can forge correctly MACed messages. */
export interface LibotrDhState {
  our_keyid: number; our_x: string; our_old_x: string | null;
  their_keyid: number; their_y: string; their_old_y: string | null; instance: number; ssid: string;
}

type Done = { ev: "done"; cmd: string; ok: boolean; error?: string };

/** Hex fields in helper output become text here: wire lines are ASCII, plaintext is UTF-8. */
export const unhex = (h: string): string => Buffer.from(h, "hex").toString("utf8");
export const unhexBytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const hex = (s: string | Uint8Array): string =>
  (typeof s === "string" ? Buffer.from(s, "utf8") : Buffer.from(s)).toString("hex");

export class HelperError extends Error {
  constructor(readonly code: string, message: string) { super(message); }
}

export interface LibotrPeerOptions {
  account?: string;
  protocol?: string;
  /** libotr private key file to load; if absent a key is generated into a temp dir. */
  keyFile?: string;
  instagFile?: string;
  /** e.g. "V2|V3|WS_START|ERR_START" or "V2" for a v2-only peer. */
  policy?: string;
  maxMessageSize?: number;
  commandTimeoutMs?: number;
}

/** One libotr endpoint (one OtrlUserState, one account). */
export class LibotrPeer {
  private readonly lines: AsyncIterator<string>;
  private stderr = "";
  private closed = false;
  fingerprint = "";
  fingerprintRaw = "";
  instag = 0;

  private constructor(private readonly proc: ChildProcessWithoutNullStreams, private readonly timeoutMs: number) {
    proc.stderr.on("data", (d: Buffer) => { this.stderr += d.toString(); });
    proc.on("exit", () => { this.closed = true; });
    this.lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async start(o: LibotrPeerOptions = {}): Promise<LibotrPeer> {
    const bin = ensureHelperBuilt();
    const proc = spawn(bin, ["serve"], { stdio: ["pipe", "pipe", "pipe"] });
    const peer = new LibotrPeer(proc, o.commandTimeoutMs ?? 60_000);
    const ready = await peer.nextLine();
    if (ready.ev !== "ready") throw new HelperError("helper-start", `unexpected first line ${JSON.stringify(ready)}`);
    await peer.cmd("account", o.account ?? "alice", o.protocol ?? "irc");
    const key = o.keyFile
      ? await peer.cmd("loadkey", o.keyFile, o.instagFile ?? "")
      : await peer.genKeyIntoTemp();
    const k = key.find((e) => e.ev === "key") as Extract<HelperEvent, { ev: "key" }> | undefined;
    peer.fingerprint = k?.fp ?? "";
    peer.fingerprintRaw = k?.fp_raw ?? "";
    peer.instag = k?.instag ?? 0;
    if (o.policy) await peer.cmd("policy", o.policy);
    if (o.maxMessageSize) await peer.cmd("mms", String(o.maxMessageSize));
    return peer;
  }

  private async genKeyIntoTemp(): Promise<HelperEvent[]> {
    const dir = mkdtempSync(join(tmpdir(), "otr-helper-"));
    try {
      return await this.cmd("genkey", join(dir, "otr.private_key"), join(dir, "otr.instance_tags"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private async nextLine(): Promise<Record<string, unknown>> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new HelperError("helper-timeout",
        `otr-helper gave no answer in ${this.timeoutMs} ms; stderr: ${this.stderr}`)), this.timeoutMs);
    });
    try {
      const r = await Promise.race([this.lines.next(), timeout]);
      if (r.done) throw new HelperError("helper-exited", `otr-helper exited; stderr: ${this.stderr}`);
      return JSON.parse(r.value) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command; resolves with the events it caused. Throws if the helper reports failure. */
  async cmd(...fields: string[]): Promise<HelperEvent[]> {
    if (this.closed) throw new HelperError("helper-exited", "otr-helper is not running");
    if (fields.some((f) => /[\t\n]/.test(f))) throw new HelperError("helper-arg", "fields must not contain TAB or LF");
    this.proc.stdin.write(fields.join("\t") + "\n");
    const events: HelperEvent[] = [];
    for (;;) {
      const line = await this.nextLine();
      if (line.ev === "done") {
        const d = line as Done;
        if (!d.ok) throw new HelperError("helper-command", `${d.cmd} failed: ${d.error ?? "?"}`);
        return events;
      }
      events.push(line as HelperEvent);
    }
  }

  /** Sends plaintext through libotr; returns the events (wire lines are the `inject` events). */
  send(peer: string, text: string): Promise<HelperEvent[]> { return this.cmd("send", peer, hex(text)); }
  /** Hands one wire line from the network to libotr. */
  receive(peer: string, wire: string): Promise<HelperEvent[]> { return this.cmd("recv", peer, hex(wire)); }
  smpStart(peer: string, secret: string | Uint8Array, question?: string): Promise<HelperEvent[]> {
    return question === undefined ? this.cmd("smp_start", peer, hex(secret)) : this.cmd("smp_start", peer, hex(secret), hex(question));
  }
  smpRespond(peer: string, secret: string | Uint8Array): Promise<HelperEvent[]> { return this.cmd("smp_respond", peer, hex(secret)); }
  smpAbort(peer: string): Promise<HelperEvent[]> { return this.cmd("smp_abort", peer); }
  symkey(peer: string, use: number, useData: Uint8Array): Promise<HelperEvent[]> { return this.cmd("symkey", peer, String(use), hex(useData)); }
  disconnect(peer: string): Promise<HelperEvent[]> { return this.cmd("disconnect", peer); }
  setPolicy(p: string): Promise<HelperEvent[]> { return this.cmd("policy", p); }
  setMaxMessageSize(n: number): Promise<HelperEvent[]> { return this.cmd("mms", String(n)); }
  async status(peer: string): Promise<Extract<HelperEvent, { ev: "status" }>> {
    const ev = (await this.cmd("status", peer)).find((e) => e.ev === "status");
    return ev as Extract<HelperEvent, { ev: "status" }>;
  }

  /** libotr's otrl_privkey_verify on a DSA public key (hex integers), a value and an r||s signature. */
  async verify(pub: { p: bigint; q: bigint; g: bigint; y: bigint }, data: Uint8Array, sig: Uint8Array): Promise<boolean> {
    const h = (n: bigint) => { const s = n.toString(16); return s.length % 2 ? "0" + s : s; };
    const evs = await this.cmd("verify", h(pub.p), h(pub.q), h(pub.g), h(pub.y), hex(data), hex(sig));
    return (evs.find((e) => e.ev === "verify") as Extract<HelperEvent, { ev: "verify" }>).valid;
  }

  /** Forget every context with this peer (a fresh start for the next AKE). */
  forget(peer: string): Promise<HelperEvent[]> { return this.cmd("forget", peer); }
  async dhState(peer: string): Promise<LibotrDhState> {
    const ev = (await this.cmd("dhstate", peer)).find((e) => e.ev === "dhstate") as Extract<HelperEvent, { ev: "dhstate" }>;
    return ev.state;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const exited = new Promise<void>((res) => this.proc.once("exit", () => res()));
    try { this.proc.stdin.end("quit\n"); } catch { /* already gone */ }
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(t);
  }
}

/** The wire lines (decoded) among a command's events. */
export const injected = (evs: HelperEvent[]): string[] =>
  evs.flatMap((e) => (e.ev === "inject" ? [unhex(e.msg)] : []));
/** The plaintexts libotr delivered to its user among a command's events. */
export const receivedTexts = (evs: HelperEvent[]): string[] =>
  evs.flatMap((e) => (e.ev === "received" ? [unhex(e.text)] : []));

/** Runs the helper's one-shot CLI modes. */
export function helperFingerprints(keyFile: string): { account: string; protocol: string; fp: string; fp_raw: string }[] {
  const out = execFileSync(ensureHelperBuilt(), ["fingerprint", keyFile], { encoding: "utf8" });
  return out.trim().split("\n").map((l) => JSON.parse(l));
}
export function helperGenKey(file: string, account: string, protocol: string): { fp: string; fp_raw: string } {
  const out = execFileSync(ensureHelperBuilt(), ["genkey", file, account, protocol], { encoding: "utf8", timeout: 600_000 });
  return JSON.parse(out.trim().split("\n")[0]!);
}
export function helperBench(what: string[], env: Record<string, string> = {}): Record<string, number | string> {
  const out = execFileSync(ensureHelperBuilt(), ["bench", ...what], {
    encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split("\n").pop()!);
}
