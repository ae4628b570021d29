// Outgoing message lines, paced so a burst (a long paste, a train of OTR fragments) never trips a server's flood
// limit and gets the puppet killed with "Excess Flood". Servers model this as a penalty clock that may run a few
// seconds ahead of real time (ircu, ngIRCd, hybrid); a token bucket of lines is the client-side mirror of that.
// Protocol lines (PONG, NICK, CAP) do not come through here: irc-framework writes them directly, so a long queue
// never delays a PONG into a ping timeout. PRIVMSG lines go before NOTICE/CTCP lines; order within a class is kept.

export interface FloodBudget {
  /** Lines that may go out back to back. */
  burstLines: number;
  /** One more line allowed every this many milliseconds once the burst is used. */
  lineIntervalMs: number;
  /**
   * Byte penalty, as ircu/hybrid/InspIRCd charge long lines more: a line costs one token plus one more per this
   * many bytes (0 = every line costs one token). A cost above burstLines is charged as burstLines.
   */
  penaltyBytes?: number;
}

export const DEFAULT_FLOOD_BUDGET: FloodBudget = { burstLines: 5, lineIntervalMs: 1_000, penaltyBytes: 0 };

export type LinePriority = "message" | "notice";

export class SendQueue {
  /** Each line with the time it was queued (the wait is reported when it is written) and its push number. */
  private readonly queues: Record<LinePriority, { line: string; at: number; seq: number }[]> = { message: [], notice: [] };
  private pushed = 0;
  /** Callbacks waiting for every line pushed up to `seq` to be written or dropped, in seq order. */
  private readonly barriers: { seq: number; cb: () => void }[] = [];
  private tokens: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | null = null;
  private paused = true;

  constructor(
    private readonly write: (line: string) => void,
    private readonly budget: FloodBudget = DEFAULT_FLOOD_BUDGET,
    private readonly now: () => number = Date.now,
    /** Told how long each line waited in the queue (the flood-control wait time metric). */
    private readonly onWritten?: (waitedMs: number) => void,
  ) {
    this.tokens = budget.burstLines;
    this.lastRefill = now();
  }

  get length(): number {
    return this.queues.message.length + this.queues.notice.length;
  }

  push(line: string, priority: LinePriority = "message"): void {
    this.queues[priority].push({ line, at: this.now(), seq: ++this.pushed });
    this.drain();
  }

  /**
   * Calls `cb` once every line pushed so far has been handed to `write`, or dropped by clear(); at once when none
   * is waiting. The bridge marks a Matrix event done here, after all the lines it caused (split text, OTR
   * fragments) have left, whichever priority class they were in.
   */
  whenWritten(cb: () => void): void {
    if (this.oldestWaiting() > this.pushed) return cb();
    this.barriers.push({ seq: this.pushed, cb });
  }

  private oldestWaiting(): number {
    return Math.min(this.queues.message[0]?.seq ?? Infinity, this.queues.notice[0]?.seq ?? Infinity);
  }

  private releaseBarriers(): void {
    const oldest = this.oldestWaiting();
    while (this.barriers.length > 0 && this.barriers[0]!.seq < oldest) this.barriers.shift()!.cb();
  }

  /** Connected: start writing. A fresh connection starts with a full burst, as the server's penalty clock does. */
  resume(): void {
    this.paused = false;
    this.tokens = this.budget.burstLines;
    this.lastRefill = this.now();
    this.drain();
  }

  /** Disconnected: keep what is queued for the next connection, write nothing. */
  pause(): void {
    this.paused = true;
    this.clearTimer();
  }

  clear(): void {
    this.queues.message.length = 0;
    this.queues.notice.length = 0;
    this.clearTimer();
    this.releaseBarriers();
  }

  private refill(): void {
    const t = this.now();
    const earned = Math.floor((t - this.lastRefill) / this.budget.lineIntervalMs);
    if (earned > 0) {
      this.tokens = Math.min(this.budget.burstLines, this.tokens + earned);
      this.lastRefill += earned * this.budget.lineIntervalMs;
    }
    if (this.tokens >= this.budget.burstLines) this.lastRefill = t;
  }

  private drain(): void {
    if (this.paused) return;
    this.clearTimer();
    this.refill();
    while (this.length > 0) {
      const q = this.queues.message.length > 0 ? this.queues.message : this.queues.notice;
      const cost = this.cost(q[0]!.line);
      if (this.tokens < cost) break;
      const { line, at } = q.shift()!;
      this.tokens -= cost;
      this.write(line);
      this.onWritten?.(this.now() - at);
    }
    this.releaseBarriers();
    if (this.length > 0) {
      const wait = Math.max(1, this.lastRefill + this.budget.lineIntervalMs - this.now());
      this.timer = setTimeout(() => {
        this.timer = null;
        this.drain();
      }, wait);
    }
  }

  private cost(line: string): number {
    const per = this.budget.penaltyBytes ?? 0;
    if (per <= 0) return 1;
    return Math.min(this.budget.burstLines, 1 + Math.floor(Buffer.byteLength(line, "utf8") / per));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
