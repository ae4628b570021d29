import { test } from "node:test";
import assert from "node:assert/strict";
import { SendQueue } from "../../src/irc/send-queue.js";

function until(pred: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const tick = () => (pred() ? resolve() : setTimeout(tick, 2));
    tick();
  });
}

test("a burst goes out at once, the rest follows in order, one line per interval", async () => {
  let clock = 0;
  const written: string[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 3, lineIntervalMs: 1000 }, () => clock);
  q.resume();
  for (let i = 0; i < 6; i++) q.push(`line ${i}`);
  assert.deepEqual(written, ["line 0", "line 1", "line 2"], "only the burst before any time passes");
  assert.equal(q.length, 3);
  clock += 999;
  q.push("line 6"); // a push does not get around the budget
  assert.equal(written.length, 3);
  clock += 1;
  q.push("line 7");
  assert.deepEqual(written.slice(3), ["line 3"]);
  clock += 10_000; // a long pause refills the burst, not more
  q.push("line 8");
  assert.deepEqual(written.slice(4), ["line 4", "line 5", "line 6"]);
  q.clear();
});

test("with real time every line is eventually written, in order", async () => {
  const written: string[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 2, lineIntervalMs: 3 });
  q.resume();
  const lines = Array.from({ length: 20 }, (_, i) => `l${i}`);
  for (const l of lines) q.push(l);
  await until(() => written.length === lines.length);
  assert.deepEqual(written, lines);
  assert.equal(q.length, 0);
});

test("while paused nothing is written and the queue is kept for the next connection", async () => {
  const written: string[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 10, lineIntervalMs: 1000 });
  q.push("before connect");
  assert.deepEqual(written, []);
  q.resume();
  assert.deepEqual(written, ["before connect"]);
  q.pause();
  q.push("during outage");
  assert.deepEqual(written, ["before connect"]);
  q.resume();
  assert.deepEqual(written, ["before connect", "during outage"]);
});

test("message lines go before notice lines; order within each class is kept", () => {
  let clock = 0;
  const written: string[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 1, lineIntervalMs: 10 }, () => clock);
  q.resume();
  q.push("m0");
  q.push("n0", "notice");
  q.push("n1", "notice");
  q.push("m1");
  for (let i = 0; i < 3; i++) {
    clock += 10;
    q.push(`m${i + 2}`);
  }
  q.clear();
  assert.deepEqual(written, ["m0", "m1", "m2", "m3"]);
});

test("each written line reports how long it waited for the flood budget", () => {
  let clock = 0;
  const waits: number[] = [];
  const q = new SendQueue(() => undefined, { burstLines: 1, lineIntervalMs: 1000 }, () => clock, (ms) => waits.push(ms));
  q.resume();
  q.push("first");
  q.push("second");
  clock += 1000;
  q.push("third");
  clock += 1000;
  q.push("fourth");
  assert.deepEqual(waits, [0, 1000, 1000]);
  q.clear();
});
