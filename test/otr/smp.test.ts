// SMP between two of our own Smp objects: complete runs with and without a question, equal and different
// secrets, aborts from either side at every step, the secret derivation, caller misuse, and the property
// that SMP succeeds exactly when the two secrets are equal.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { Smp, SmpUsageError, smpSecret, type SmpEvent, type Tlv } from "../../src/otr/smp.js";
import { decodeMpis } from "../../src/otr/smp/mpis.js";
import { DH_P, DH_Q } from "../../src/otr/crypto/dh.js";

import { TLV_SMP1, TLV_SMP1Q, TLV_SMP2, TLV_SMP3, TLV_SMP4, TLV_SMP_ABORT } from "../../src/otr/wire/messages.js";

/** Deterministic randomness so a failing run can be replayed. */
function seededEnv(seed: string) {
  let counter = 0;
  return {
    random(n: number): Uint8Array {
      const out = new Uint8Array(n);
      for (let off = 0; off < n; off += 32) {
        const block = createHash("sha256").update(`${seed}/${counter++}`).digest();
        out.set(block.subarray(0, Math.min(32, n - off)), off);
      }
      return out;
    },
    now: () => 0,
  };
}

const utf8 = (s: string) => new TextEncoder().encode(s);
const FP_A = Uint8Array.from({ length: 20 }, (_, i) => i + 1);
const FP_B = Uint8Array.from({ length: 20 }, (_, i) => 200 - i);
const SSID = Uint8Array.from([9, 8, 7, 6, 5, 4, 3, 2]);
const secret = (s: string | Uint8Array) => smpSecret(FP_A, FP_B, SSID, typeof s === "string" ? utf8(s) : s);

function only(tlvs: Tlv[]): Tlv {
  assert.equal(tlvs.length, 1);
  return tlvs[0]!;
}

interface Run { events: { alice: (SmpEvent | null)[]; bob: (SmpEvent | null)[] }; wire: Tlv[] }

/** Alice initiates, Bob answers; returns every event and every TLV that crossed. */
function fullRun(alice: Smp, bob: Smp, x: bigint, y: bigint, question: string | null = null): Run {
  const events: Run["events"] = { alice: [], bob: [] };
  const m1 = only(alice.start(x, question));
  const s1 = bob.handleTlv(m1);
  assert.deepEqual(s1.reply, []);
  events.bob.push(s1.event);
  const m2 = only(bob.respond(y));
  const s2 = alice.handleTlv(m2);
  events.alice.push(s2.event);
  const m3 = only(s2.reply);
  const s3 = bob.handleTlv(m3);
  events.bob.push(s3.event);
  const m4 = only(s3.reply);
  const s4 = alice.handleTlv(m4);
  assert.deepEqual(s4.reply, []);
  events.alice.push(s4.event);
  return { events, wire: [m1, m2, m3, m4] };
}

describe("SMP full runs", () => {
  test("equal secrets: both sides report success, states back to idle", () => {
    const alice = new Smp(seededEnv("a1")), bob = new Smp(seededEnv("b1"));
    const { events, wire } = fullRun(alice, bob, secret("the pub we met at"), secret("the pub we met at"));
    assert.deepEqual(events.bob, [{ type: "smp-ask", question: null }, { type: "smp-success" }]);
    assert.deepEqual(events.alice, [{ type: "smp-in-progress" }, { type: "smp-success" }]);
    assert.deepEqual(wire.map((t) => t.type), [TLV_SMP1, TLV_SMP2, TLV_SMP3, TLV_SMP4]);
    assert.equal(alice.state, "idle");
    assert.equal(bob.state, "idle");
  });

  test("different secrets: both sides report failure", () => {
    const alice = new Smp(seededEnv("a2")), bob = new Smp(seededEnv("b2"));
    const { events } = fullRun(alice, bob, secret("blue"), secret("green"));
    assert.deepEqual(events.bob, [{ type: "smp-ask", question: null }, { type: "smp-failure" }]);
    assert.deepEqual(events.alice, [{ type: "smp-in-progress" }, { type: "smp-failure" }]);
    assert.equal(alice.state, "idle");
    assert.equal(bob.state, "idle");
  });

  test("with a question: TLV 7 carries it (UTF-8, NUL-terminated) and the responder sees it", () => {
    const alice = new Smp(seededEnv("a3")), bob = new Smp(seededEnv("b3"));
    const q = "Où était la fête ? 🎉";
    const m1 = only(alice.start(secret("chez Léa"), q));
    assert.equal(m1.type, TLV_SMP1Q);
    const qBytes = utf8(q);
    assert.deepEqual(m1.value.subarray(0, qBytes.length), qBytes);
    assert.equal(m1.value[qBytes.length], 0);
    const s1 = bob.handleTlv(m1);
    assert.deepEqual(s1.event, { type: "smp-ask", question: q });
    assert.equal(bob.state, "asked");
    assert.equal(bob.question, q);
    assert.ok(bob.canRespond());
    const s2 = alice.handleTlv(only(bob.respond(secret("chez Léa"))));
    const s3 = bob.handleTlv(only(s2.reply));
    assert.deepEqual(s3.event, { type: "smp-success" });
    assert.deepEqual(alice.handleTlv(only(s3.reply)).event, { type: "smp-success" });
  });

  test("an empty question is still a question", () => {
    const alice = new Smp(seededEnv("a4")), bob = new Smp(seededEnv("b4"));
    const m1 = only(alice.start(secret("s"), ""));
    assert.equal(m1.type, TLV_SMP1Q);
    assert.deepEqual(bob.handleTlv(m1).event, { type: "smp-ask", question: "" });
  });

  test("the same objects run again after success, failure and abort", () => {
    const alice = new Smp(seededEnv("a5")), bob = new Smp(seededEnv("b5"));
    assert.equal(fullRun(alice, bob, secret("1"), secret("1")).events.alice[1]?.type, "smp-success");
    assert.equal(fullRun(alice, bob, secret("1"), secret("2")).events.alice[1]?.type, "smp-failure");
    bob.handleTlv(only(alice.start(secret("x"), null)));
    assert.deepEqual(bob.handleTlv(only(alice.abort())).event, { type: "smp-abort", by: "peer" });
    // Roles swap: Bob initiates this time.
    const r = fullRun(bob, alice, secret("3"), secret("3"));
    assert.deepEqual(r.events.alice[1], { type: "smp-success" });
    assert.deepEqual(r.events.bob[1], { type: "smp-success" });
  });

  test("messages carry the spec's MPI counts (6, 11, 8, 3)", () => {
    const { wire } = fullRun(new Smp(seededEnv("a6")), new Smp(seededEnv("b6")), secret("k"), secret("k"));
    const counts = wire.map((t) => new DataView(t.value.buffer, t.value.byteOffset).getUint32(0));
    assert.deepEqual(counts, [6, 11, 8, 3]);
  });
});

describe("what goes on the wire", () => {
  test("every value is in the range a strict peer (libotr) checks", () => {
    const { wire } = fullRun(new Smp(seededEnv("w1a")), new Smp(seededEnv("w1b")), secret("k"), secret("k"));
    const layout: Record<number, { group: number[]; expon: number[]; hash: number[]; count: number }> = {
      [TLV_SMP1]: { group: [0, 3], expon: [2, 5], hash: [1, 4], count: 6 },
      [TLV_SMP2]: { group: [0, 3, 6, 7], expon: [2, 5, 9, 10], hash: [1, 4, 8], count: 11 },
      [TLV_SMP3]: { group: [0, 1, 5], expon: [3, 4, 7], hash: [2, 6], count: 8 },
      [TLV_SMP4]: { group: [0], expon: [2], hash: [1], count: 3 },
    };
    for (const t of wire) {
      const l = layout[t.type]!;
      const m = decodeMpis(t.value, l.count);
      assert.ok(m, `TLV ${t.type} parses strictly`);
      for (const i of l.group) assert.ok(m[i]! >= 2n && m[i]! <= DH_P - 2n, `TLV ${t.type} #${i} group element`);
      for (const i of l.expon) assert.ok(m[i]! >= 1n && m[i]! < DH_Q, `TLV ${t.type} #${i} exponent`);
      for (const i of l.hash) assert.ok(m[i]! < 1n << 256n, `TLV ${t.type} #${i} hash`);
    }
  });

  test("randomness comes only from the env: the same env bytes give the same messages", () => {
    const a = fullRun(new Smp(seededEnv("d-a")), new Smp(seededEnv("d-b")), secret("k"), secret("k"));
    const b = fullRun(new Smp(seededEnv("d-a")), new Smp(seededEnv("d-b")), secret("k"), secret("k"));
    assert.deepEqual(a.wire, b.wire);
    const c = fullRun(new Smp(seededEnv("d-c")), new Smp(seededEnv("d-b")), secret("k"), secret("k"));
    assert.notDeepEqual(a.wire[0], c.wire[0]);
  });
});

describe("SMP aborts", () => {
  /** Runs the exchange up to and including message `after` (delivered), then `side` aborts. */
  function abortedBy(side: "alice" | "bob", after: number): void {
    const alice = new Smp(seededEnv(`aa${side}${after}`)), bob = new Smp(seededEnv(`ab${side}${after}`));
    const x = secret("same"), y = secret("same");
    const m1 = only(alice.start(x, null));
    bob.handleTlv(m1);
    if (after >= 2) {
      const m2 = only(bob.respond(y));
      const m3 = only(alice.handleTlv(m2).reply);
      if (after >= 3) bob.handleTlv(m3);
    }
    const aborter = side === "alice" ? alice : bob;
    const other = side === "alice" ? bob : alice;
    const abort = only(aborter.abort());
    assert.equal(abort.type, TLV_SMP_ABORT);
    assert.equal(abort.value.length, 0);
    assert.equal(aborter.state, "idle");
    const step = other.handleTlv(abort);
    assert.deepEqual(step, { reply: [], event: { type: "smp-abort", by: "peer" } });
    assert.equal(other.state, "idle");
    assert.equal(other.canRespond(), false);
    // Both can start over and succeed.
    const r = fullRun(alice, bob, secret("again"), secret("again"));
    assert.deepEqual(r.events.alice[1], { type: "smp-success" });
    assert.deepEqual(r.events.bob[1], { type: "smp-success" });
  }
  for (const side of ["alice", "bob"] as const) {
    for (const after of [1, 2, 3]) {
      test(`${side} aborts after message ${after}`, () => abortedBy(side, after));
    }
  }

  test("a late message of the aborted run is refused with TLV 6 and never succeeds", () => {
    const alice = new Smp(seededEnv("late-a")), bob = new Smp(seededEnv("late-b"));
    bob.handleTlv(only(alice.start(secret("s"), null)));
    const m2 = only(bob.respond(secret("s")));
    alice.abort();
    const step = alice.handleTlv(m2);
    assert.deepEqual(step.event, { type: "smp-abort", by: "protocol" });
    assert.deepEqual(step.reply.map((t) => t.type), [TLV_SMP_ABORT]);
    assert.equal(alice.state, "idle");
  });
});

describe("SMP caller contract", () => {
  test("respond() without a pending request is caller misuse", () => {
    const bob = new Smp(seededEnv("m1"));
    assert.throws(() => bob.respond(secret("s")), (e: unknown) => e instanceof SmpUsageError && e.code === "smp-not-asked");
  });

  test("start() during a run sends TLV 6 first and restarts", () => {
    const alice = new Smp(seededEnv("m2a")), bob = new Smp(seededEnv("m2b"));
    bob.handleTlv(only(alice.start(secret("s"), null)));
    const restart = alice.start(secret("s"), null);
    assert.deepEqual(restart.map((t) => t.type), [TLV_SMP_ABORT, TLV_SMP1]);
    // Bob processes the TLVs in order: abort, then a fresh request.
    assert.deepEqual(bob.handleTlv(restart[0]!).event, { type: "smp-abort", by: "peer" });
    assert.deepEqual(bob.handleTlv(restart[1]!).event, { type: "smp-ask", question: null });
    const s2 = alice.handleTlv(only(bob.respond(secret("s"))));
    const s3 = bob.handleTlv(only(s2.reply));
    assert.deepEqual(s3.event, { type: "smp-success" });
  });

  test("a secret outside [0, 2^256) or a question with NUL is refused", () => {
    const a = new Smp(seededEnv("m3"));
    assert.throws(() => a.start(-1n, null), SmpUsageError);
    assert.throws(() => a.start(1n << 256n, null), SmpUsageError);
    assert.throws(() => a.start(1n, "a\0b"), SmpUsageError);
    assert.equal(a.state, "idle");
  });

  test("TLVs that are not SMP's are ignored without touching the state", () => {
    const alice = new Smp(seededEnv("m4a")), bob = new Smp(seededEnv("m4b"));
    bob.handleTlv(only(alice.start(secret("s"), null)));
    for (const type of [0, 1, 8, 9, 0xffff]) {
      assert.deepEqual(bob.handleTlv({ type, value: new Uint8Array([1, 2, 3]) }), { reply: [], event: null });
    }
    assert.equal(bob.state, "asked");
  });
});

describe("smpSecret", () => {
  test("is SHA-256(0x01 || initiator fp || responder fp || ssid || secret) as an integer", () => {
    const user = utf8("hunter2");
    const expected = createHash("sha256")
      .update(Uint8Array.of(1)).update(FP_A).update(FP_B).update(SSID).update(user).digest("hex");
    assert.equal(smpSecret(FP_A, FP_B, SSID, user), BigInt("0x" + expected));
  });

  test("depends on the order of the fingerprints, the ssid and the secret", () => {
    const base = smpSecret(FP_A, FP_B, SSID, utf8("s"));
    assert.notEqual(smpSecret(FP_B, FP_A, SSID, utf8("s")), base);
    assert.notEqual(smpSecret(FP_A, FP_B, SSID.map((b) => b ^ 1), utf8("s")), base);
    assert.notEqual(smpSecret(FP_A, FP_B, SSID, utf8("t")), base);
  });

  test("rejects fingerprints and ssids of the wrong size", () => {
    assert.throws(() => smpSecret(FP_A.subarray(1), FP_B, SSID, utf8("s")), SmpUsageError);
    assert.throws(() => smpSecret(FP_A, FP_B, SSID.subarray(1), utf8("s")), SmpUsageError);
  });
});

test("property: SMP succeeds exactly when the two secrets are equal", { timeout: 600_000 }, () => {
  const bytes = fc.uint8Array({ minLength: 0, maxLength: 24 });
  const pair = fc.oneof(
    bytes.map((s) => [s, s] as const),
    fc.tuple(bytes, bytes),
    // Near misses: one flipped bit.
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 24 }), fc.nat()).map(([s, i]) => {
      const t = s.slice();
      t[i % t.length] = t[i % t.length]! ^ (1 << (i % 8));
      return [s, t] as const;
    }),
  );
  let seed = 0;
  fc.assert(
    fc.property(pair, fc.boolean(), ([s, t], withQuestion) => {
      seed++;
      const alice = new Smp(seededEnv(`p${seed}a`)), bob = new Smp(seededEnv(`p${seed}b`));
      const { events } = fullRun(alice, bob, secret(s), secret(t), withQuestion ? "q" : null);
      const equal = Buffer.from(s).equals(Buffer.from(t));
      const want = equal ? "smp-success" : "smp-failure";
      return events.alice[1]?.type === want && events.bob[1]?.type === want;
    }),
    { numRuns: 40 },
  );
});
