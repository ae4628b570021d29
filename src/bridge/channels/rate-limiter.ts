// A token bucket shared by every portal room: ghost joins and leaves wait for a token, so a netsplit's hundreds of
// QUITs reach the homeserver at a bounded rate instead of as one burst. Time and sleeping are injected for tests.

export class RateLimiter {
  private tokens: number;
  private last: number;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly perSecond: number,
    private readonly burst = perSecond,
    private readonly now: () => number = Date.now,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Resolves when the caller may make one request; callers are served in order. */
  take(): Promise<void> {
    const next = this.chain.then(async () => {
      for (;;) {
        const t = this.now();
        this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.perSecond) / 1000);
        this.last = t;
        if (this.tokens >= 1) {
          this.tokens -= 1;
          return;
        }
        await this.sleep(Math.ceil(((1 - this.tokens) * 1000) / this.perSecond));
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }
}
