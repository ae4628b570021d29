// Fragmentation: the spec's own example as a known answer, round trips under reordering/duplication/drops,
// the spec's reset rules, instance filtering, and the hard caps (CVE-2016-2851).
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { fragment, parseFragment, Reassembler, type Fragment } from "../../src/otr/wire/fragment.js";
import { MSG_DATA, parseOtrText } from "../../src/otr/wire/messages.js";

// OTR protocol v3 spec (off-the-record/libotr Protocol-v3.html, section "Fragmentation"): the example Data
// Message and its three fragments. The spec wraps the lines for display; the strings are the lines joined.
const SPEC_MESSAGE = [
  "?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hb",
  "rL3KAbGDdzE2ZkMyTKl7XfkSxh8YJnudstiB74i4BzT0W2haClg6dMary/jo",
  "9sMudwmUdlnKpIGEKXWdvJKT+hQ26h9nzMgEditLB8vjPEWAJ6gBXvZrY6ZQ",
  "rx3gb4v0UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjSc",
  "ajVba6dqlDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAA",
  "AAAEAAAAHwNiIi5Ms+4PsY/L2ipkTtquknfx6HodLvk3RAAAAAA==.",
].join("");
const SPEC_FRAGMENTS = [
  ["?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMDJ+MVmSfjFZcAAAAA", "AQAAAAIAAADA1g5IjD1ZGLDVQEyCgCyn9hbrL3KAbGDdzE2ZkMyTKl7XfkSx",
    "h8YJnudstiB74i4BzT0W2haClg6dMary/jo9sMudwmUdlnKpIGEKXWdvJKT+", "hQ26h9nzMgEditLB8v,"].join(""),
  ["?OTR|5a73a599|27e31597,00002,00003,jPEWAJ6gBXvZrY6ZQrx3gb4v0", "UaSMOMiR5sB7Eaulb2Yc6RmRnnlxgUUC2alosg4WIeFN951PLjScajVba6dq",
    "lDi+q1H5tPvI5SWMN7PCBWIJ41+WvF+5IAZzQZYgNaVLbAAAAAAAAAAEAAAA", "HwNiIi5Ms+4PsY/L2i,"].join(""),
  ["?OTR|5a73a599|27e31597,00003,00003,pkTtquknfx6HodLvk3RAAAAAA", "==.,"].join(""),
];

test("known answer: the spec's fragmentation example reassembles to its data message", () => {
  const r = new Reassembler(0x27e31597);
  const out = SPEC_FRAGMENTS.map((f) => r.add(f, 0));
  assert.deepEqual(out.map((o) => o.complete), [null, null, SPEC_MESSAGE]);
  assert.deepEqual(out.flatMap((o) => o.dropped), []);
  const parsed = parseOtrText(SPEC_MESSAGE);
  assert.equal(parsed.kind, "encoded");
  if (parsed.kind === "encoded") {
    assert.equal(parsed.msg.type, MSG_DATA);
    assert.equal(parsed.msg.version, 3);
  }
});

test("known answer: fragmenting the spec's message with the example's piece size gives the example's fragments", () => {
  const pieceLen = SPEC_FRAGMENTS[0]!.length - 36;
  assert.deepEqual(fragment(SPEC_MESSAGE, pieceLen + 36, 3, 0x5a73a599, 0x27e31597), SPEC_FRAGMENTS);
});

test("fragment lines never exceed maxSize and reassemble in order (v2 and v3)", () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 3000 }).map((s) => s.replace(/,/g, ".")),
      fc.integer({ min: 40, max: 500 }),
      fc.constantFrom(2 as const, 3 as const),
      (text, max, version) => {
        const frags = fragment(text, max, version, 0x101, 0x202);
        if (text.length <= max) return assert.deepEqual(frags, [text]);
        const r = new Reassembler({ ourInstance: 0x202, maxFragments: 65535 });
        let complete: string | null = null;
        frags.forEach((f, i) => {
          assert.ok(f.length <= max, `fragment ${i} is ${f.length} > ${max}`);
          const res = r.add(f, i);
          assert.deepEqual(res.dropped, []);
          if (i < frags.length - 1) assert.equal(res.complete, null);
          else complete = res.complete;
        });
        assert.equal(complete, text);
        assert.equal(r.size, 0);
      },
    ),
  );
  assert.deepEqual(fragment("abc", 0, 3, 1, 2), ["abc"]);
  assert.throws(() => fragment("x".repeat(100), 36, 3, 0x100, 0x100), RangeError);
  assert.match(fragment("x".repeat(100), 40, 2, 0, 0)[0]!, /^\?OTR,00001,00005,x{22},$/);
});

test("reordered, duplicated or dropped fragments never throw and never yield a wrong message", () => {
  const text = "?OTR:" + "A".repeat(50) + "B".repeat(50) + "C".repeat(50) + ".";
  const frags = fragment(text, 36 + 20, 3, 0x100, 0x200);
  fc.assert(
    fc.property(fc.array(fc.nat({ max: frags.length - 1 }), { maxLength: 30 }), (order) => {
      const r = new Reassembler(0x200);
      for (const [t, i] of order.entries()) {
        const res = r.add(frags[i]!, t);
        if (res.complete !== null) assert.equal(res.complete, text);
      }
      assert.ok(r.size <= 1);
    }),
    { numRuns: 300 },
  );
});

test("spec reset rules: k==1 restarts, k==K+1 continues, anything else discards", () => {
  const f = (k: number, n: number, piece: string, s = 0x100): Fragment => ({ version: 3, senderInstance: s, receiverInstance: 0, k, n, piece });
  const r = new Reassembler();
  assert.deepEqual(r.push(f(1, 3, "a"), 0), { status: "incomplete" });
  assert.deepEqual(r.push(f(1, 3, "x"), 0), { status: "incomplete" }); // restart
  assert.deepEqual(r.push(f(2, 3, "y"), 0), { status: "incomplete" });
  assert.deepEqual(r.push(f(2, 3, "y"), 0), { status: "dropped", reason: "out-of-order" }); // duplicate discards all
  assert.deepEqual(r.push(f(3, 3, "z"), 0), { status: "dropped", reason: "out-of-order" });
  assert.equal(r.size, 0);
  r.push(f(1, 2, "p"), 0);
  assert.deepEqual(r.push(f(2, 3, "q"), 0), { status: "dropped", reason: "out-of-order" }); // n changed
  assert.deepEqual(r.push(f(1, 1, "whole"), 0), { status: "complete", text: "whole", version: 3, senderInstance: 0x100 });
  // Two sender instances reassemble independently.
  r.push(f(1, 2, "A", 0x100), 0);
  r.push(f(1, 2, "X", 0x300), 0);
  assert.deepEqual(r.push(f(2, 2, "B", 0x100), 0), { status: "complete", text: "AB", version: 3, senderInstance: 0x100 });
  assert.deepEqual(r.push(f(2, 2, "Y", 0x300), 0), { status: "complete", text: "XY", version: 3, senderInstance: 0x300 });
  r.push(f(1, 2, "A"), 0);
  r.clear();
  assert.equal(r.size, 0);
});

test("fragments for another instance are refused; receiver 0 is accepted", () => {
  const r = new Reassembler(0x500);
  assert.equal(r.add("?OTR|00000100|00000600,00001,00001,hi,", 0).forOtherInstance, true);
  assert.equal(r.add("?OTR|00000100|00000000,00001,00001,hi,", 0).complete, "hi");
  assert.equal(r.add("?OTR|00000100|00000500,00001,00001,hi,", 0).complete, "hi");
  assert.equal(r.add("?OTR,00001,00001,v2,", 0).complete, "v2");
});

test("caps: fragment count, total bytes, pending reassemblies, timeout", () => {
  const r = new Reassembler({ maxFragments: 10, maxBytes: 100, maxPending: 2, timeoutMs: 1000 });
  assert.deepEqual(r.add("?OTR,00001,00011,a,", 0).dropped, ["fragment-limit"]);
  assert.deepEqual(r.add("?OTR,00001,65535,a,", 0).dropped, ["fragment-limit"]);
  r.add("?OTR,00001,00003," + "x".repeat(60) + ",", 0);
  assert.deepEqual(r.add("?OTR,00002,00003," + "x".repeat(60) + ",", 0).dropped, ["size-limit"]);
  assert.equal(r.heldBytes, 0);
  // pending cap: a third sender instance evicts the oldest
  r.add("?OTR|00000100|00000000,00001,00002,a,", 0);
  r.add("?OTR|00000200|00000000,00001,00002,b,", 0);
  r.add("?OTR|00000300|00000000,00001,00002,c,", 0);
  assert.equal(r.size, 2);
  assert.deepEqual(r.add("?OTR|00000100|00000000,00002,00002,a,", 0).dropped, ["out-of-order"]);
  assert.equal(r.add("?OTR|00000300|00000000,00002,00002,d,", 0).complete, "cd");
  // timeout: reported by expire() (poll), and a late continuation is dropped
  r.add("?OTR,00001,00002,t,", 10);
  // Both pending reassemblies expired; the continuation then has nothing to continue.
  assert.deepEqual(r.add("?OTR,00002,00002,u,", 2000).dropped.sort(), ["out-of-order", "timeout", "timeout"]);
  r.add("?OTR,00001,00002,t,", 3000);
  assert.deepEqual(r.expire(3500), []);
  assert.deepEqual(r.expire(4001), ["timeout"]);
  assert.equal(r.size, 0);
});

test("a flood of first fragments stays within the caps", () => {
  const r = new Reassembler({ maxPending: 4, maxBytes: 1000 });
  for (let i = 0; i < 10_000; i++) {
    r.add(`?OTR|${(0x100 + i).toString(16).padStart(8, "0")}|00000000,00001,00002,${"z".repeat(500)},`, i);
  }
  assert.ok(r.size <= 4);
  assert.ok(r.heldBytes <= 4 * 1000);
});

test("parseFragment: strict shape, bounds on k and n", () => {
  assert.deepEqual(parseFragment("?OTR|5a73a599|27e31597,00001,00003,abc,"), { version: 3, senderInstance: 0x5a73a599, receiverInstance: 0x27e31597, k: 1, n: 3, piece: "abc" });
  assert.deepEqual(parseFragment("?OTR,1,2,abc,"), { version: 2, senderInstance: 0, receiverInstance: 0, k: 1, n: 2, piece: "abc" });
  // libotr's sscanf stops the piece at the first comma and ignores the rest (its fragmented query has commas).
  assert.deepEqual(parseFragment("?OTR,1,1,a,b,"), { version: 2, senderInstance: 0, receiverInstance: 0, k: 1, n: 1, piece: "a" });
  for (const bad of ["?OTR,0,1,a,", "?OTR,2,1,a,", "?OTR,1,1,,", "?OTR,1,65536,a,", "?OTR,1,1,a", "?OTR|1|2|3,1,1,a,", "?OTR|123456789|1,1,1,a,", "?OTR,-1,1,a,", " ?OTR,1,1,a,"]) {
    assert.equal(parseFragment(bad), null, bad);
  }
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => {
    const r = new Reassembler();
    r.add("?OTR," + s, 0);
    r.add("?OTR|" + s, 0);
    r.add(s, 0);
  }));
});
