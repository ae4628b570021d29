// Waiting for what the bridges under test do on Matrix, keyed so that thousands of concurrent waits stay cheap:
// messages by room (the last few kept, so a reply that beat its wait is still found), joins by user.
import type { BenchEvent } from "./bridge-matrix.js";

type Waiter = { pred: (e: BenchEvent) => boolean; resolve: (e: BenchEvent) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
const KEEP = 16;

class Keyed {
  private seen = new Map<string, BenchEvent[]>();
  private waiters = new Map<string, Waiter[]>();

  push(key: string, e: BenchEvent): void {
    const list = this.seen.get(key) ?? [];
    list.push(e);
    if (list.length > KEEP) list.shift();
    this.seen.set(key, list);
    const ws = this.waiters.get(key);
    if (!ws) return;
    for (const w of [...ws]) {
      if (!w.pred(e)) continue;
      clearTimeout(w.timer);
      ws.splice(ws.indexOf(w), 1);
      w.resolve(e);
    }
    if (!ws.length) this.waiters.delete(key);
  }

  /** The first event under `key` matching `pred`, already seen (and not consumed yet) or still to come. */
  wait(key: string, pred: (e: BenchEvent) => boolean, timeoutMs: number, what: string): Promise<BenchEvent> {
    const list = this.seen.get(key) ?? [];
    const i = list.findIndex(pred);
    if (i >= 0) return Promise.resolve(list.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred, resolve, reject,
        timer: setTimeout(() => {
          const ws = this.waiters.get(key) ?? [];
          ws.splice(ws.indexOf(w), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs),
      };
      const ws = this.waiters.get(key) ?? [];
      ws.push(w);
      this.waiters.set(key, ws);
    });
  }

  clear(): void {
    for (const ws of this.waiters.values()) for (const w of ws) { clearTimeout(w.timer); w.reject(new Error("inbox cleared")); }
    this.waiters.clear();
    this.seen.clear();
  }
}

export class Inbox {
  readonly messages = new Keyed();
  readonly joins = new Keyed();

  message(roomId: string, pred: (e: BenchEvent) => boolean, timeoutMs: number, what: string): Promise<BenchEvent> {
    return this.messages.wait(roomId, pred, timeoutMs, what);
  }

  /** Forgets what was seen (between bridges under test: one's rooms must not answer the other's waits). */
  clear(): void { this.messages.clear(); this.joins.clear(); }

  /** A room `userId` joined after an invite matching `pred`. */
  joined(userId: string, pred: (e: BenchEvent) => boolean, timeoutMs: number, what: string): Promise<BenchEvent> {
    return this.joins.wait(userId, pred, timeoutMs, what);
  }
}

export const bodyOf = (e: BenchEvent): string => String(e.content.body ?? "");
