// The global connect scheduler's gate: at most `max` connection attempts in flight per network. After a server
// restart every puppet's backoff timer fires within a few seconds; without a gate they would all open sockets at
// once, overflow the server's listen backlog and trip its connection throttle, so most would fail and back off
// again. An attempt holds its slot from the socket being opened until registration (001) or the socket closing.

export interface ConnectGate {
  /**
   * Calls `start` once a slot is free (maybe synchronously). `start` receives the slot's release function, which
   * is idempotent. The returned function withdraws the request (or releases the slot if already started).
   */
  acquire(start: (release: () => void) => void): () => void;
}

interface Ticket {
  cancelled: boolean;
  release: (() => void) | null;
  run(): void;
}

export class ConnectLimiter implements ConnectGate {
  private inFlight = 0;
  private peak = 0;
  private readonly waiting: Ticket[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`connect limit must be a positive integer, got ${max}`);
  }

  /** Attempts holding a slot now. */
  get active(): number {
    return this.inFlight;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Most attempts ever in flight at once (for tests and metrics). */
  get peakActive(): number {
    return this.peak;
  }

  acquire(start: (release: () => void) => void): () => void {
    const ticket: Ticket = {
      cancelled: false,
      release: null,
      run: () => {
        this.inFlight += 1;
        this.peak = Math.max(this.peak, this.inFlight);
        let done = false;
        ticket.release = () => {
          if (done) return;
          done = true;
          this.inFlight -= 1;
          this.next();
        };
        start(ticket.release);
      },
    };
    if (this.inFlight < this.max && this.waiting.length === 0) ticket.run();
    else this.waiting.push(ticket);
    return () => {
      if (ticket.release) ticket.release();
      else ticket.cancelled = true;
    };
  }

  private next(): void {
    while (this.inFlight < this.max && this.waiting.length > 0) {
      const t = this.waiting.shift()!;
      if (!t.cancelled) t.run();
    }
  }
}
