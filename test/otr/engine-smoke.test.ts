import { test } from "node:test";
import assert from "node:assert/strict";
import { establish, makePair, receivedTexts, say } from "./fixtures.js";

test("v3 AKE from a query, then messages both ways", () => {
  const [a, b] = makePair();
  establish(a, b);
  const sa = a.conv.status();
  const sb = b.conv.status();
  assert.equal(sa.state, "encrypted", JSON.stringify(a.events));
  assert.equal(sb.state, "encrypted");
  assert.equal(sa.version, 3);
  assert.deepEqual(sa.ssid, sb.ssid);
  assert.equal(sa.theirFingerprint, b.account.fingerprintHuman);
  assert.equal(sb.theirFingerprint, a.account.fingerprintHuman);
  assert.equal(sa.theirInstance, b.account.instanceTag);
  assert.deepEqual(receivedTexts(say(a, b, "hello")), ["hello"]);
  assert.deepEqual(receivedTexts(say(b, a, "hi back")), ["hi back"]);
  assert.deepEqual(receivedTexts(say(a, b, "again")), ["again"]);
  assert.deepEqual(receivedTexts(say(a, b, "and again")), ["and again"]);
});
