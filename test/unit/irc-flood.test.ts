// Byte penalty of the send queue: long lines cost more of the burst, as servers charge them more.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SendQueue } from "../../src/irc/send-queue.js";

test("with penaltyBytes a long line costs 1 + bytes/penaltyBytes tokens; short lines cost one", () => {
  let now = 0;
  const out: string[] = [];
  const q = new SendQueue((l) => out.push(l), { burstLines: 6, lineIntervalMs: 1000, penaltyBytes: 100 }, () => now);
  const long = "PRIVMSG t :" + "x".repeat(240); // 251 bytes: cost 3
  q.push(long);
  q.push(long);
  q.push("PRIVMSG t :short");
  q.resume();
  assert.deepEqual(out, [long, long], "two long lines use the six tokens");
  now = 1000;
  (q as unknown as { drain(): void }).drain();
  assert.deepEqual(out, [long, long, "PRIVMSG t :short"]);
  q.clear();
});

test("a line dearer than the whole burst is charged the burst, so it still goes out", () => {
  const out: string[] = [];
  const q = new SendQueue((l) => out.push(l), { burstLines: 2, lineIntervalMs: 1000, penaltyBytes: 10 }, () => 0);
  q.push("PRIVMSG t :" + "y".repeat(200));
  q.resume();
  assert.equal(out.length, 1);
  q.clear();
});

test("without penaltyBytes every line costs one token", () => {
  const out: string[] = [];
  const q = new SendQueue((l) => out.push(l), { burstLines: 3, lineIntervalMs: 1000 }, () => 0);
  for (let i = 0; i < 5; i++) q.push("PRIVMSG t :" + "z".repeat(400));
  q.resume();
  assert.equal(out.length, 3);
  q.clear();
});
