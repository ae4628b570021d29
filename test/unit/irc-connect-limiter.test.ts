// The per-network connect gate on its own: never more than `max` attempts in flight, FIFO, cancellation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectLimiter } from "../../src/irc/connect-limiter.js";

test("at most max attempts run at once; the rest start in request order as slots free", () => {
  const lim = new ConnectLimiter(3);
  const started: number[] = [];
  const releases = new Map<number, () => void>();
  for (let i = 0; i < 10; i++) lim.acquire((release) => { started.push(i); releases.set(i, release); });
  assert.deepEqual(started, [0, 1, 2]);
  assert.equal(lim.active, 3);
  assert.equal(lim.queued, 7);
  releases.get(1)!();
  releases.get(1)!(); // idempotent: a second release frees nothing more
  assert.deepEqual(started, [0, 1, 2, 3]);
  assert.equal(lim.active, 3);
  for (let i = 0; i < 10; i++) releases.get(i)?.();
  for (let i = 0; i < 10; i++) releases.get(i)?.();
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(lim.active, 0);
  assert.equal(lim.peakActive, 3);
});

test("a withdrawn request never starts; withdrawing a started one frees its slot", () => {
  const lim = new ConnectLimiter(1);
  const started: string[] = [];
  const cancelA = lim.acquire(() => started.push("a"));
  const cancelB = lim.acquire(() => started.push("b"));
  lim.acquire(() => started.push("c"));
  cancelB();
  assert.deepEqual(started, ["a"]);
  cancelA();
  assert.deepEqual(started, ["a", "c"]);
  assert.equal(lim.queued, 0);
});

test("a limit below one is refused", () => {
  assert.throws(() => new ConnectLimiter(0), RangeError);
});
