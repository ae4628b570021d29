// Per-conversation options of the public API: a line limit of the conversation's own (fixed or read each time a
// line is built) overriding the account's, and taking back the plaintext held for the AKE.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { makePair, pump, receivedTexts } from "./fixtures.js";
import { MIN_FRAGMENT_SIZE, OtrConversation, POLICY } from "../../src/otr/index.js";

describe("per-conversation maxFragmentSize", () => {
  test("a fixed size overrides the account's: every line fits, the query and the AKE included", () => {
    const [a, b] = makePair({ policy: POLICY.ALWAYS }, {});
    a.conv = new OtrConversation(a.account, "bob", { maxFragmentSize: 60 });
    assert.equal(a.account.maxFragmentSize, 0);
    assert.equal(a.conv.maxFragmentSize, 60);
    const lines: string[] = [];
    const r = a.conv.send("held until secure");
    lines.push(...r.toSend);
    pump(a, b, r.toSend, (line, sender) => {
      if (sender === a) lines.push(line);
      return line;
    });
    assert.equal(a.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(b.events), ["held until secure"]);
    assert.ok(lines.length > 3);
    for (const l of lines) assert.ok(l.length <= 60, `${l.length}: ${l.slice(0, 30)}`);
  });

  test("a function is read each time a line is built, so a shrinking budget is honoured at once", () => {
    const [a, b] = makePair({}, {});
    let budget = 0;
    a.conv = new OtrConversation(a.account, "bob", { maxFragmentSize: () => budget });
    pump(a, b, a.conv.startAke().toSend);
    assert.equal(a.conv.status().state, "encrypted");
    const long = "x".repeat(300);
    const whole = a.conv.send(long);
    assert.equal(whole.toSend.length, 1);
    assert.ok(whole.toSend[0]!.length > 300);
    budget = 100;
    const cut = a.conv.send(long);
    assert.ok(cut.toSend.length > 1);
    for (const l of cut.toSend) assert.ok(l.length <= 100);
    pump(a, b, [...whole.toSend, ...cut.toSend]);
    assert.deepEqual(receivedTexts(b.events), [long, long]);
    a.conv.setMaxFragmentSize(null);
    assert.equal(a.conv.maxFragmentSize, a.account.maxFragmentSize);
  });

  test("misuse throws RangeError: below the minimum, negative, fractional, or a function returning one", () => {
    const [a] = makePair({}, {});
    for (const bad of [1, MIN_FRAGMENT_SIZE - 1, -1, 50.5, Number.NaN]) {
      assert.throws(() => new OtrConversation(a.account, "bob", { maxFragmentSize: bad }), RangeError, String(bad));
      assert.throws(() => a.conv.setMaxFragmentSize(bad), RangeError, String(bad));
    }
    assert.throws(() => a.conv.setMaxFragmentSize("60" as unknown as number), RangeError);
    a.conv.setMaxFragmentSize(MIN_FRAGMENT_SIZE);
    assert.equal(a.conv.maxFragmentSize, MIN_FRAGMENT_SIZE);
    a.conv.setMaxFragmentSize(0);
    assert.equal(a.conv.maxFragmentSize, 0);
    const c = new OtrConversation(a.account, "bob", { maxFragmentSize: () => 10 });
    assert.throws(() => c.startAke(), RangeError);
    // Even on the receiving path, where peer input never throws, the caller's bad limit is reported as misuse.
    assert.throws(() => c.receive("?OTRv3?"), RangeError);
  });
});

describe("takeQueued", () => {
  test("hands back the held plaintext oldest first, forgets it, and nothing of it is sent after the AKE", () => {
    const [a, b] = makePair({ policy: POLICY.ALWAYS }, {});
    const first = a.conv.send("one");
    assert.equal(first.outcome, "queued");
    assert.equal(a.conv.send("two").outcome, "queued");
    assert.deepEqual(a.conv.takeQueued(), ["one", "two"]);
    assert.deepEqual(a.conv.takeQueued(), []);
    pump(a, b, first.toSend);
    assert.equal(a.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(b.events), []);
    // A later message under the same policy goes out encrypted as usual.
    const r = a.conv.send("three");
    assert.equal(r.outcome, "encrypted");
    pump(a, b, r.toSend);
    assert.deepEqual(receivedTexts(b.events), ["three"]);
  });

  test("after taking the queue, a new held message sends a fresh query", () => {
    const [a] = makePair({ policy: POLICY.ALWAYS }, {});
    assert.equal(a.conv.send("one").toSend.length, 1);
    assert.equal(a.conv.send("two").toSend.length, 0);
    a.conv.takeQueued();
    const again = a.conv.send("three");
    assert.equal(again.outcome, "queued");
    assert.equal(again.toSend.length, 1);
    assert.match(again.toSend[0]!, /^\?OTRv/);
  });
});
