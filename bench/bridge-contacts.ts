// The IRC side of the bench: one contact per Matrix user, each a raw IRC connection to the bench's server talking to
// that user's puppet. Half of them speak OTR: for the bulk, this project's own OTR library (src/otr) in this
// process, which speaks the real protocol over the real IRC connection (the bridge cannot tell it from any other
// OTR client); for a sample, libotr through the C helper (test/harness/libotr-irc.ts). Every contact of the bulk
// shares one DSA key and one account (key generation is not what is measured here). Received plaintext (after OTR)
// goes to `onText` with the time it arrived, which ends the Matrix->IRC latency clock.
import { connect, type Socket } from "node:net";
import { OtrAccount, OtrConversation, POLICY, generateDsaKey, type OtrResult } from "../src/otr/index.js";
import { parseIrcLine } from "../test/harness/irc-client.js";
import { LibotrIrcContact, generateContactKey } from "../test/harness/libotr-irc.js";
import { unhex } from "../test/harness/libotr.js";

export type ContactKind = "plain" | "otr" | "libotr";

let sharedAccount: OtrAccount | null = null;
function account(): OtrAccount {
  sharedAccount ??= new OtrAccount({ privateKey: generateDsaKey(), instanceTag: 0x4000_0001, policy: POLICY.MANUAL, maxFragmentSize: 400 });
  return sharedAccount;
}

export interface Contact {
  readonly nick: string;
  readonly kind: ContactKind;
  /** The puppet this contact talks to; setting it starts a fresh conversation. */
  peer: string;
  /** Sends `text` to the peer, through OTR when the conversation is private (plaintext otherwise). */
  send(text: string): void;
  /** Sends `text` in plaintext whatever the OTR state (opens DMs, and the plaintext-only workload). */
  sendPlain(text: string): void;
  /** Starts an AKE (OTR query); resolves once the conversation is private. */
  startOtr(timeoutMs: number): Promise<void>;
  readonly secure: boolean;
  onText: (text: string, at: number) => void;
  close(): Promise<void>;
}

/** A lean IRC connection: registers, answers PING, hands PRIVMSGs from the peer to `onPrivmsg`. */
class RawIrc {
  private sock!: Socket;
  private buf = "";
  onPrivmsg: (from: string, text: string) => void = () => undefined;
  constructor(readonly nick: string) {}

  open(host: string, port: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.sock.destroy(); reject(new Error(`${this.nick}: no 001 in ${timeoutMs} ms`)); }, timeoutMs);
      this.sock = connect({ host, port });
      this.sock.setEncoding("utf8");
      this.sock.setNoDelay(true);
      this.sock.once("error", (e) => { clearTimeout(timer); reject(e); });
      this.sock.on("error", () => undefined);
      this.sock.on("connect", () => this.write(`NICK ${this.nick}\r\nUSER ${this.nick} 0 * :bench contact\r\n`));
      this.sock.on("data", (d: string) => {
        this.buf += d;
        let nl: number;
        while ((nl = this.buf.indexOf("\n")) >= 0) {
          const raw = this.buf.slice(0, nl).replace(/\r$/, "");
          this.buf = this.buf.slice(nl + 1);
          if (!raw) continue;
          const m = parseIrcLine(raw);
          if (m.command === "PING") this.write(`PONG :${m.params.at(-1) ?? ""}\r\n`);
          else if (m.command === "001") { clearTimeout(timer); resolve(); }
          else if (m.command === "433") { clearTimeout(timer); reject(new Error(`${this.nick}: nick in use`)); }
          else if (m.command === "PRIVMSG" && m.nick) this.onPrivmsg(m.nick, m.params.at(-1) ?? "");
        }
      });
    });
  }

  write(s: string): void { if (!this.sock.destroyed) this.sock.write(s); }
  privmsg(target: string, text: string): void { this.write(`PRIVMSG ${target} :${text}\r\n`); }

  close(): Promise<void> {
    return new Promise((r) => {
      if (this.sock.destroyed) return r();
      this.sock.once("close", () => r());
      this.sock.end("QUIT :bench done\r\n");
      setTimeout(() => { this.sock.destroy(); r(); }, 2000).unref();
    });
  }
}

class OwnContact implements Contact {
  private conv: OtrConversation | null = null;
  private secureWaiter: (() => void) | null = null;
  secure = false;
  onText: (text: string, at: number) => void = () => undefined;
  private _peer = "";

  constructor(private readonly irc: RawIrc, readonly kind: "plain" | "otr") {
    irc.onPrivmsg = (from, text) => this.incoming(from, text);
  }

  get nick(): string { return this.irc.nick; }
  get peer(): string { return this._peer; }
  set peer(p: string) {
    this._peer = p;
    this.secure = false;
    this.conv = this.kind === "otr" ? new OtrConversation(account(), p) : null;
  }

  private route(r: OtrResult): void {
    for (const line of r.toSend) this.irc.privmsg(this._peer, line);
    for (const e of r.events) {
      if (e.type === "gone-secure" || e.type === "still-secure") { this.secure = true; this.secureWaiter?.(); }
    }
  }

  private incoming(from: string, text: string): void {
    const at = performance.now();
    if (from.toLowerCase() !== this._peer.toLowerCase()) return;
    if (!this.conv) { this.onText(text, at); return; }
    const r = this.conv.receive(text);
    this.route(r);
    for (const e of r.events) if (e.type === "received") this.onText(e.text, at);
  }

  send(text: string): void {
    if (!this.conv || !this.secure) { this.irc.privmsg(this._peer, text); return; }
    this.route(this.conv.send(text));
  }

  sendPlain(text: string): void { this.irc.privmsg(this._peer, text); }

  startOtr(timeoutMs: number): Promise<void> {
    if (!this.conv) return Promise.reject(new Error(`${this.nick} is a plaintext contact`));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.secureWaiter = null; reject(new Error(`${this.nick}: AKE not done in ${timeoutMs} ms`)); }, timeoutMs);
      this.secureWaiter = () => { clearTimeout(t); this.secureWaiter = null; resolve(); };
      this.route(this.conv!.startAke());
    });
  }

  close(): Promise<void> { return this.irc.close(); }
}

class LibotrContact implements Contact {
  readonly kind = "libotr" as const;
  secure = false;
  onText: (text: string, at: number) => void = () => undefined;
  private seen = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly c: LibotrIrcContact) {
    // The helper reports decrypted text as events; poll them often (a 2 ms granularity on the latency clock).
    this.timer = setInterval(() => this.drain(), 2);
  }

  private drain(): void {
    const at = performance.now();
    while (this.seen < this.c.events.length) {
      const e = this.c.events[this.seen++]!;
      if (e.ev === "received") this.onText(unhex(e.text), at);
    }
  }

  get nick(): string { return this.c.nick; }
  get peer(): string { return this.c.remote; }
  set peer(p: string) { this.c.remote = p; this.secure = false; }
  send(text: string): void { void this.c.send(text); }
  sendPlain(text: string): void { this.c.irc.privmsg(this.c.remote, text); }
  async startOtr(timeoutMs: number): Promise<void> {
    const from = this.c.mark();
    await Promise.race([
      (async () => { this.c.startOtr("3"); await this.c.waitForSecure(from); })(),
      new Promise((_r, rej) => setTimeout(() => rej(new Error(`${this.nick}: libotr AKE not done in ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    this.secure = true;
  }
  async close(): Promise<void> { clearInterval(this.timer); await this.c.close(); }
}

export async function openContact(host: string, port: number, nick: string, kind: ContactKind, timeoutMs = 60_000): Promise<Contact> {
  if (kind === "libotr") {
    const key = generateContactKey(nick);
    return new LibotrContact(await LibotrIrcContact.connect({ host, port, nick, remote: "nobody", keyFile: key.keyFile, timeoutMs }));
  }
  const irc = new RawIrc(nick);
  await irc.open(host, port, timeoutMs);
  return new OwnContact(irc, kind);
}

/** Key generation up front, so it never lands inside a timed phase. */
export function prepareOtr(): void { account(); }
