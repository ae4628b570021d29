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

test("whenWritten fires once every line pushed before it is written, across both priority classes, and on clear", () => {
  let clock = 0;
  const written: string[] = [];
  const fired: string[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 1, lineIntervalMs: 1000 }, () => clock);
  q.whenWritten(() => fired.push("empty"));
  assert.deepEqual(fired, ["empty"], "nothing waiting: at once");
  q.push("n1", "notice");
  q.push("m1");
  q.push("m2");
  q.whenWritten(() => fired.push("after m2"));
  q.push("m3");
  q.whenWritten(() => fired.push("after m3"));
  q.resume();
  assert.deepEqual(written, ["m1"]);
  clock += 1000;
  q.push("m4");
  assert.deepEqual(written, ["m1", "m2"]);
  assert.deepEqual(fired, ["empty"], "the notice pushed before the barrier has not left yet (messages go first)");
  clock += 2000;
  q.push("m5");
  assert.deepEqual(written, ["m1", "m2", "m3"], "one line per interval");
  assert.deepEqual(fired, ["empty"]);
  clock += 1000;
  q.push("m6");
  assert.deepEqual(written, ["m1", "m2", "m3", "m4"]);
  q.whenWritten(() => fired.push("dropped"));
  q.clear();
  assert.deepEqual(fired, ["empty", "after m2", "after m3", "dropped"], "clear() settles every waiting barrier: their lines will never leave");
});

test("whenWritten barriers behind a notice fire when the notice is written", () => {
  let clock = 0;
  const written: string[] = [];
  const fired: number[] = [];
  const q = new SendQueue((l) => written.push(l), { burstLines: 1, lineIntervalMs: 1000 }, () => clock);
  q.resume();
  q.push("m0");
  q.push("n1", "notice");
  q.whenWritten(() => fired.push(1));
  q.push("m2");
  q.whenWritten(() => fired.push(2));
  clock += 1000;
  q.push("m3");
  assert.deepEqual(written, ["m0", "m2"]);
  assert.deepEqual(fired, [], "m2 is out but the notice before barrier 1 is not");
  clock += 1000;
  q.push("m4"); // m3 leaves
  clock += 1000;
  q.push("m5"); // m4 leaves
  clock += 1000;
  q.resume(); // a fresh burst: m5
  assert.deepEqual(written, ["m0", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(fired, []);
  clock += 1000;
  q.resume(); // the message class is empty: the notice leaves
  assert.deepEqual(written.at(-1), "n1");
  assert.deepEqual(fired, [1, 2]);
  assert.equal(q.length, 0);
});
