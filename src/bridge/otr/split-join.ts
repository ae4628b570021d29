// A bouncer or server that splits an over-long line cuts an unfragmented "?OTR:....." message into several
// PRIVMSGs, which no OTR library reassembles (OTR's own fragments, "?OTR|" and "?OTR,", need nothing of this).
// The pieces are joined until the terminating ".", with caps on size, count and age so a peer cannot make us
// hold text forever. Only a long first piece starts a join (a split happens at the line limit), so a short
// truncated message never swallows the plaintext that follows it.
export const MIN_SPLIT_PIECE = 200;
export const MAX_JOINED_CHARS = 64 * 1024;
export const MAX_JOINED_PIECES = 64;
export const JOIN_TIMEOUT_MS = 60_000;

const START = /^\?OTR:[A-Za-z0-9+/=]+$/;
const MORE = /^[A-Za-z0-9+/=]+\.?$/;

export class SplitJoiner {
  private buf: string | null = null;
  private pieces = 0;
  private started = 0;

  /** The lines to give the conversation now, in order (none while a split message is incomplete). */
  push(line: string, now: number): string[] {
    const out: string[] = [];
    if (this.buf !== null) {
      const fresh = now - this.started <= JOIN_TIMEOUT_MS;
      if (fresh && MORE.test(line) && this.fits(line)) {
        this.buf += line;
        this.pieces++;
        if (line.endsWith(".")) out.push(this.take());
        return out;
      }
      // Not a continuation (or too late, too big): the buffered text goes on as it is, the library judges it.
      out.push(this.take());
    }
    if (START.test(line) && line.length >= MIN_SPLIT_PIECE) {
      this.buf = line;
      this.pieces = 1;
      this.started = now;
      return out;
    }
    out.push(line);
    return out;
  }

  private fits(line: string): boolean {
    const joined = this.buf!.length + line.length;
    if (joined > MAX_JOINED_CHARS || this.pieces >= MAX_JOINED_PIECES) return false;
    // A finished piece must complete valid base64 (length a multiple of 4 after "?OTR:").
    if (line.endsWith(".")) return (joined - 1 - 5) % 4 === 0;
    return line.length >= MIN_SPLIT_PIECE;
  }

  private take(): string {
    const b = this.buf!;
    this.buf = null;
    this.pieces = 0;
    return b;
  }
}
