// A lossy, duplicating, reordering network between two engines, driven by fast-check: whatever happens, nothing
// throws, no message is ever delivered that was not sent, none is delivered twice, and a clean restart of the
// conversation always works afterwards.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { establish, makePair, pump, receivedTexts, say, type Side } from "./fixtures.js";
import { POLICY, type OtrResult } from "../../src/otr/index.js";

type Action =
  | { t: "send"; from: 0 | 1 }
  | { t: "deliver"; to: 0 | 1; pick: number }
  | { t: "drop"; to: 0 | 1; pick: number }
  | { t: "dup"; to: 0 | 1; pick: number }
  | { t: "end"; who: 0 | 1 }
  | { t: "refresh"; who: 0 | 1 }
  | { t: "ake"; who: 0 | 1 }
  | { t: "tick"; ms: number };

const side = fc.constantFrom<0 | 1>(0, 1);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: side.map((from) => ({ t: "send" as const, from })) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant("deliver" as const), to: side, pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("drop" as const), to: side, pick: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("dup" as const), to: side, pick: fc.nat(5) }) },
  { weight: 1, arbitrary: side.map((who) => ({ t: "end" as const, who })) },
  { weight: 1, arbitrary: side.map((who) => ({ t: "refresh" as const, who })) },
  { weight: 1, arbitrary: side.map((who) => ({ t: "ake" as const, who })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 90_000 }).map((ms) => ({ t: "tick" as const, ms })) },
);

test("chaos network: no forgery, no replay, no throw; a fresh start always works", () => {
  fc.assert(
    fc.property(fc.array(action, { maxLength: 60 }), fc.integer({ min: 0, max: 2 }), fc.boolean(), (actions, frag, always) => {
      const fragSize = [0, 150, 400][frag]!;
      // With REQUIRE_ENCRYPTION on side 0, none of its texts may ever be on the wire in clear.
      const policy = always ? POLICY.ALWAYS : POLICY.OPPORTUNISTIC;
      const [a, b] = makePair({ policy, maxFragmentSize: fragSize }, { maxFragmentSize: fragSize });
      const sides: [Side, Side] = [a, b];
      establish(a, b);
      const inFlight: [string[], string[]] = [[], []]; // lines travelling to side 0 / side 1
      const sent: [Set<string>, Set<string>] = [new Set(), new Set()]; // texts sent by side 0 / 1
      const got: [string[], string[]] = [[], []];
      let n = 0;
      const absorb = (who: 0 | 1, r: OtrResult) => {
        for (const e of r.events) {
          assert.ok(!("code" in e && e.code === "unexpected"), JSON.stringify(e));
          if (e.type === "received") got[who].push(e.text);
        }
        if (always && who === 0) for (const l of r.toSend) assert.ok(!/m\d+ ✓/.test(l), `plaintext leaked: ${l}`);
        inFlight[who === 0 ? 1 : 0].push(...r.toSend);
      };
      for (const act of actions) {
        switch (act.t) {
          case "send": {
            const text = `m${n++} ✓`;
            sent[act.from].add(text);
            absorb(act.from, sides[act.from].conv.send(text));
            break;
          }
          case "deliver":
          case "drop":
          case "dup": {
            const q = inFlight[act.to];
            if (q.length === 0) break;
            const i = act.pick % q.length;
            const line = act.t === "dup" ? q[i]! : q.splice(i, 1)[0]!;
            if (act.t !== "drop") absorb(act.to, sides[act.to].conv.receive(line));
            break;
          }
          case "end":
            absorb(act.who, sides[act.who].conv.end());
            break;
          case "refresh":
            absorb(act.who, sides[act.who].conv.refresh());
            break;
          case "ake":
            absorb(act.who, sides[act.who].conv.startAke());
            break;
          case "tick":
            a.env.clock += act.ms;
            b.env.clock += act.ms;
            absorb(0, a.conv.poll());
            absorb(1, b.conv.poll());
            break;
        }
      }
      for (const who of [0, 1] as const) {
        const other = who === 0 ? 1 : 0;
        // Everything received was sent by the other side (as plaintext or encrypted), and at most once.
        for (const t of got[who]) assert.ok(sent[other].has(t) || !t.startsWith("m"), `forged: ${t}`);
        const texts = got[who].filter((t) => t.startsWith("m"));
        assert.equal(new Set(texts).size, texts.length, `delivered twice: ${texts}`);
      }
      // Whatever state the chaos left, ending both sides and starting over works.
      pump(a, b, a.conv.end().toSend);
      pump(b, a, b.conv.end().toSend);
      establish(a, b);
      assert.equal(a.conv.status().state, "encrypted");
      assert.equal(b.conv.status().state, "encrypted");
      assert.deepEqual(receivedTexts(say(a, b, "after the storm")), ["after the storm"]);
      assert.deepEqual(receivedTexts(say(b, a, "calm")), ["calm"]);
    }),
    { numRuns: Number(process.env.OTR_CHAOS_RUNS ?? 60) },
  );
});
