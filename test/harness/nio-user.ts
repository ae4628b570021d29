// An E2EE Matrix user independent of matrix-js-sdk and of the Rust crypto: matrix-nio with libolm, in a
// Python child process (test/harness/nio-user.py) driven over stdio with JSON lines. Its stderr (nio's log and
// the driver's tracebacks) goes to a log file under the harness log dir. The store (Olm account, sessions) is
// a temporary directory the driver deletes on stop.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { logRoot } from "./proc.js";

/** Debian's interpreter: python3-matrix-nio and python3-olm are only on its path (another python3 may be first on PATH). */
export const NIO_PYTHON = process.env.NIO_PYTHON ?? "/usr/bin/python3";
const DRIVER = new URL("./nio-user.py", import.meta.url).pathname;

export interface NioMessage {
  roomId: string;
  eventId: string;
  sender: string;
  /** Clear type. */
  type: string;
  /** Clear content. */
  content: Record<string, unknown>;
  /** It came as m.room.encrypted and was decrypted. */
  encrypted: boolean;
  /** nio trusts the sending device (after trustAllDevices, for instance). */
  verified: boolean;
}

export interface NioDecryptionFailure { roomId: string; eventId: string; sender: string; sessionId: string; reason: string }

interface Answer { id: number | null; ok: boolean; result?: unknown; error?: string }

type RawMessage = { room_id: string; event_id: string; sender: string; type: string; content: Record<string, unknown>;
  encrypted: boolean; verified: boolean };

function fromRaw(m: RawMessage): NioMessage {
  return { roomId: m.room_id, eventId: m.event_id, sender: m.sender, type: m.type, content: m.content,
    encrypted: m.encrypted, verified: m.verified };
}

export class NioUser {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; cmd: string }>();
  private exited = false;
  private readonly exitPromise: Promise<void>;
  userId = "";
  deviceId = "";

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly logPath: string) {
    const log = createWriteStream(logPath, { flags: "a" });
    child.stderr.pipe(log);
    createInterface({ input: child.stdout }).on("line", (line) => {
      let a: Answer;
      try { a = JSON.parse(line) as Answer; } catch { log.write(`(not JSON on stdout) ${line}\n`); return; }
      const p = a.id === null ? undefined : this.pending.get(a.id);
      if (!p) { log.write(`(unexpected answer) ${line}\n`); return; }
      this.pending.delete(a.id as number);
      if (a.ok) p.resolve(a.result);
      else p.reject(new Error(`nio ${p.cmd}: ${a.error} (log ${logPath})`));
    });
    this.exitPromise = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exited = true;
        for (const p of this.pending.values()) p.reject(new Error(`nio driver exited (${code ?? signal}) during ${p.cmd}; log ${logPath}`));
        this.pending.clear();
        resolve();
      });
    });
    // A driver left behind by a crashed test reads EOF on stdin and exits by itself.
    child.unref();
  }

  /** Starts the driver and logs in on a new device; resolves after the first sync, with the keys uploaded. */
  static async login(hs: { url: string }, user: string, password: string,
    opts: { deviceName?: string; timeoutMs?: number } = {}): Promise<NioUser> {
    const child = spawn(NIO_PYTHON, ["-u", DRIVER], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", PYTHONNOUSERSITE: "1", PYTHONDONTWRITEBYTECODE: "1" },
    });
    const safe = user.replace(/[^A-Za-z0-9_.-]/g, "_");
    const u = new NioUser(child, join(logRoot(), `nio-user-${safe}-${child.pid ?? "x"}.log`));
    try {
      const timeoutMs = opts.timeoutMs ?? 60_000;
      const r = await u.call<{ user_id: string; device_id: string }>("login", {
        homeserver: hs.url, user, password, device_name: opts.deviceName ?? "nio-test", timeout_ms: timeoutMs,
      }, timeoutMs + 10_000);
      u.userId = r.user_id;
      u.deviceId = r.device_id;
      return u;
    } catch (e) {
      await u.kill();
      throw e;
    }
  }

  /** One request; rejects with the driver's error, or after `timeoutMs` (the driver's own timeouts come first). */
  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`nio driver already exited; cannot ${cmd}`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`nio ${cmd}: no answer within ${timeoutMs} ms (log ${this.logPath})`));
      }, timeoutMs);
      this.pending.set(id, {
        cmd,
        resolve: (v) => { clearTimeout(timer); resolve(v as T); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(`${JSON.stringify({ id, cmd, args })}\n`);
    });
  }

  /** The room id of an invite (to `roomId`, if given) and who sent it. */
  waitForInvite(roomId?: string, timeoutMs = 30_000): Promise<{ roomId: string; inviter: string | null }> {
    return this.call<{ room_id: string; inviter: string | null }>("wait-for-invite",
      { ...(roomId ? { room_id: roomId } : {}), timeout_ms: timeoutMs }, timeoutMs + 10_000)
      .then((r) => ({ roomId: r.room_id, inviter: r.inviter }));
  }

  /** Joins and resolves once sync shows the room, with whether nio knows it as encrypted. */
  joinRoom(roomId: string, timeoutMs = 30_000): Promise<{ roomId: string; encrypted: boolean }> {
    return this.call<{ room_id: string; encrypted: boolean }>("join", { room_id: roomId, timeout_ms: timeoutMs },
      timeoutMs + 10_000).then((r) => ({ roomId: r.room_id, encrypted: r.encrypted }));
  }

  /** Creates an encrypted direct chat with `userId` (invited), as Element does; resolves once sync shows it encrypted. */
  createEncryptedDm(userId: string, timeoutMs = 30_000): Promise<string> {
    return this.call<{ room_id: string }>("create-dm", { user_id: userId, timeout_ms: timeoutMs }, timeoutMs + 10_000)
      .then((r) => r.room_id);
  }

  /**
   * Sends an m.text (encrypted in an encrypted room, keys shared with unverified devices too). Refuses a room
   * nio does not know as encrypted unless `expectEncrypted: false`.
   */
  async sendText(roomId: string, body: string, opts: { msgtype?: string; expectEncrypted?: boolean } = {}): Promise<string> {
    const r = await this.call<{ event_id: string }>("send", {
      room_id: roomId, body, msgtype: opts.msgtype ?? "m.text", expect_encrypted: opts.expectEncrypted ?? true,
    });
    return r.event_id;
  }

  /** The first m.room.message in `roomId` (seen before or after the call) with that body / sender. */
  async waitForMessage(roomId: string, match: { body?: string; sender?: string } = {}, timeoutMs = 30_000): Promise<NioMessage> {
    const r = await this.call<RawMessage>("wait-for-message", {
      room_id: roomId, timeout_ms: timeoutMs,
      ...(match.body !== undefined ? { body: match.body } : {}), ...(match.sender !== undefined ? { sender: match.sender } : {}),
    }, timeoutMs + 10_000);
    return fromRaw(r);
  }

  async messages(roomId?: string): Promise<NioMessage[]> {
    const r = await this.call<{ messages: RawMessage[] }>("messages", roomId ? { room_id: roomId } : {});
    return r.messages.map(fromRaw);
  }

  /** Events still undecryptable (nio retries each after every sync). */
  async decryptionFailures(): Promise<NioDecryptionFailure[]> {
    const r = await this.call<{ failures: { room_id: string; event_id: string; sender: string; session_id: string; reason: string }[] }>(
      "decryption-failures");
    return r.failures.map((f) => ({ roomId: f.room_id, eventId: f.event_id, sender: f.sender, sessionId: f.session_id, reason: f.reason }));
  }

  /** Marks every known device (of `userIds`, default everyone nio tracks) as verified in nio's trust store. */
  async trustAllDevices(userIds?: string[]): Promise<string[]> {
    return (await this.call<{ trusted: string[] }>("trust-all-devices", userIds ? { user_ids: userIds } : {})).trusted;
  }

  /** Stops syncing, deletes the temporary store and ends the driver (killed if it does not exit in 10 s). */
  async stop(): Promise<void> {
    if (this.exited) return;
    try { await this.call("stop", {}, 10_000); } catch { /* killed below */ }
    this.child.stdin.end();
    await this.kill();
  }

  private async kill(): Promise<void> {
    if (this.exited) return;
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    this.child.stdin.end();
    await this.exitPromise;
    clearTimeout(timer);
  }
}
