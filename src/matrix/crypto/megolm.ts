// Reading the one field of a Megolm message the bridge needs before decryption: its ratchet index. The Rust
// crypto does not refuse a second event that carries an already-seen (session, index) — a replay of a captured
// ciphertext — so the bridge does, by remembering which event each (session, index) first came in.
// Format (vodozemac / libolm "Megolm message"): version byte 0x03, then protobuf field 1 (tag 0x08) = varint index.

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

/** Remembers the event each (session, index) came in, bounded (oldest forgotten first). */
export class ReplayGuard {
  private readonly seen = new Map<string, string>();
  constructor(private readonly max = 200_000) {}

  /** True when the same (session, index) already came in another event. */
  isReplay(sessionId: string, index: number, eventId: string): boolean {
    const k = `${sessionId}\u0000${index}`;
    const first = this.seen.get(k);
    if (first !== undefined) return first !== eventId;
    if (this.seen.size >= this.max) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.seen.set(k, eventId);
    return false;
  }
}
