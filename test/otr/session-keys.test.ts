// Key rotation and MAC-key revelation (spec "Key Management", "Revealing MAC keys") seen from the wire.
import { test } from "node:test";
import assert from "node:assert/strict";
import { establish, makePair, pump, receivedTexts } from "./fixtures.js";
import { parseOtrText, MSG_DATA, type EncodedMessage } from "../../src/otr/wire/messages.js";
import { hmacSha1 } from "../../src/otr/crypto/primitives.js";

type Data = Extract<EncodedMessage, { type: typeof MSG_DATA }>;
const data = (line: string): Data => {
  const p = parseOtrText(line);
  assert.ok(p.kind === "encoded" && p.msg.type === MSG_DATA);
  return p.msg as Data;
};
const verifies = (key: Uint8Array, m: Data) => Buffer.from(hmacSha1(key, m.authenticated!)).equals(Buffer.from(m.mac));

test("key ids advance with each turn; counters start at 1 and increase per key pair", () => {
  const [a, b] = makePair();
  establish(a, b);
  const seen: Data[] = [];
  for (let turn = 0; turn < 4; turn++) {
    for (let i = 0; i < 3; i++) {
      const line = a.conv.send(`a${turn}.${i}`).toSend[0]!;
      seen.push(data(line));
      pump(a, b, [line]);
    }
    pump(b, a, b.conv.send(`b${turn}`).toSend);
  }
  // Within a turn the key pair is fixed and the counter goes 1, 2, 3; each reply from b rotates both keys.
  for (let turn = 0; turn < 4; turn++) {
    const group = seen.slice(turn * 3, turn * 3 + 3);
    assert.deepEqual(group.map((m) => Buffer.from(m.ctr).readBigUInt64BE()), [1n, 2n, 3n]);
    for (const m of group) {
      assert.equal(m.senderKeyId, 1 + turn);
      assert.equal(m.recipientKeyId, group[0]!.recipientKeyId);
    }
  }
  assert.ok(seen[9]!.recipientKeyId > seen[0]!.recipientKeyId);
});

test("revealed MAC keys are exactly the retired receiving keys: they verify old messages, never current ones", () => {
  const [a, b] = makePair();
  establish(a, b);
  const fromA: Data[] = [];
  const revealedByB: Uint8Array[] = [];
  for (let turn = 0; turn < 6; turn++) {
    const la = a.conv.send(`a${turn}`).toSend[0]!;
    fromA.push(data(la));
    assert.deepEqual(receivedTexts(b.conv.receive(la).events), [`a${turn}`]);
    const lb = b.conv.send(`b${turn}`).toSend[0]!;
    const mb = data(lb);
    for (let i = 0; i < mb.oldMacKeys.length; i += 20) revealedByB.push(mb.oldMacKeys.slice(i, i + 20));
    a.conv.receive(lb);
  }
  assert.ok(revealedByB.length >= 3, `revealed ${revealedByB.length}`);
  for (const k of revealedByB) assert.ok(fromA.some((m) => verifies(k, m)), "a revealed key verifies one of a's old messages");
  const current = data(a.conv.send("now").toSend[0]!);
  for (const k of revealedByB) assert.ok(!verifies(k, current), "a revealed key must not verify a live message");
  // Every one of a's messages except the last two turns has had its key revealed.
  for (const m of fromA.slice(0, -2)) assert.ok(revealedByB.some((k) => verifies(k, m)));
});
