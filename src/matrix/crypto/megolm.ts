// Reading the one field of a Megolm message the bridge needs before decryption: its ratchet index. The Rust
// crypto does not refuse a second event that carries an already-seen (session, index) — a replay of a captured
// ciphertext — so the bridge does, by remembering which event each (session, index) first came in.
// Format (vodozemac / libolm "Megolm message"): version byte 0x03, then protobuf field 1 (tag 0x08) = varint index.
import { createHash } from "node:crypto";

export function megolmIndex(ciphertextB64: string): number | null {
  let bytes: Buffer;
  try {
    bytes = Buffer.from(ciphertextB64, "base64");
  } catch {
    return null;
  }
  if (bytes.length < 3 || bytes[0] !== 0x03 || bytes[1] !== 0x08) return null;
  let value = 0;
  for (let i = 2, shift = 0; i < bytes.length && shift <= 28; i++, shift += 7) {
    const b = bytes[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return value;
  }
  return null;
}

/** Where the guard keeps what it saw, so a replay is refused after a restart too. */
export interface ReplayKv {
  getState(key: string): Promise<string | null>;
  putState(key: string, value: string): Promise<void>;
}

const KEY = (sessionId: string) => `e2ee.megolm.${sessionId}`;

/** A short, fixed-size stand-in for an event id: enough to tell one event from another in the same session. */
function tag(eventId: string): string {
  return createHash("sha256").update(eventId).digest("base64url").slice(0, 16);
}

/**
 * Remembers which event each (session, index) first came in, durably: a ciphertext replayed after a restart is
 * still refused. Records are written in batches, at most `flushDelayMs` after they were made and at stop (a
 * write per decrypted message cost more than the decryption itself), so a SIGKILL forgets at most the records of
 * that last moment. Sessions are read back from the store when they are not in memory (the oldest are forgotten
 * from memory first, never from the store).
 */
export class ReplayGuard {
  private readonly sessions = new Map<string, Map<number, string>>();
  private readonly dirty = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly kv: ReplayKv, private readonly maxSessionsInMemory = 10_000, private readonly flushDelayMs = 500) {}

  /** True when the same (session, index) already came in another event; otherwise records it and returns false. */
  async isReplay(sessionId: string, index: number, eventId: string): Promise<boolean> {
    const seen = await this.session(sessionId);
    const t = tag(eventId);
    const first = seen.get(index);
    if (first !== undefined) return first !== t;
    seen.set(index, t);
    this.dirty.add(sessionId);
    this.timer ??= setTimeout(() => { this.timer = null; void this.flush().catch(() => undefined); }, this.flushDelayMs);
    this.timer.unref?.();
    return false;
  }

  /** Writes every record not yet in the store; a failed write stays pending for the next flush. */
  flush(): Promise<void> {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.flushing = this.flushing.catch(() => undefined).then(async () => {
      for (const id of [...this.dirty]) {
        const seen = this.sessions.get(id);
        this.dirty.delete(id);
        if (!seen) continue;
        try {
          await this.kv.putState(KEY(id), JSON.stringify([...seen]));
        } catch (err) {
          this.dirty.add(id);
          throw err;
        }
      }
    });
    return this.flushing;
  }

  private async session(sessionId: string): Promise<Map<number, string>> {
    let seen = this.sessions.get(sessionId);
    if (seen) {
      this.sessions.delete(sessionId); // re-inserted below: most recently used last
    } else {
      seen = parse(await this.kv.getState(KEY(sessionId)));
      if (this.sessions.size >= this.maxSessionsInMemory) {
        // A session still to be written stays in memory until it is.
        for (const oldest of this.sessions.keys()) {
          if (this.dirty.has(oldest)) continue;
          this.sessions.delete(oldest);
          break;
        }
      }
    }
    this.sessions.set(sessionId, seen);
    return seen;
  }
}

function parse(text: string | null): Map<number, string> {
  const out = new Map<number, string>();
  if (!text) return out;
  try {
    const pairs = JSON.parse(text) as unknown;
    if (Array.isArray(pairs)) {
      for (const p of pairs) if (Array.isArray(p) && Number.isInteger(p[0]) && typeof p[1] === "string") out.set(p[0] as number, p[1]);
    }
  } catch {
    // A damaged record only weakens replay detection for one session; the store validated what it wrote.
  }
  return out;
}
