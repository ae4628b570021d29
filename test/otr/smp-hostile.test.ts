// A hostile or broken peer against our SMP: out-of-range group elements and exponents, forged proofs,
// replayed, reflected and out-of-order messages, malformed bodies and random bytes. Whatever arrives:
// no exception, never success, a TLV 6 back, and the state back to the start (ready for a clean run).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { Smp, smpSecret, type SmpStep, type Tlv } from "../../src/otr/smp.js";
import { decodeMpis, encodeMpis } from "../../src/otr/smp/mpis.js";
import { DH_P, DH_Q } from "../../src/otr/crypto/dh.js";

import { TLV_SMP1, TLV_SMP1Q, TLV_SMP2, TLV_SMP3, TLV_SMP4, TLV_SMP_ABORT } from "../../src/otr/wire/messages.js";
const COUNTS: Record<number, number> = { [TLV_SMP1]: 6, [TLV_SMP2]: 11, [TLV_SMP3]: 8, [TLV_SMP4]: 3 };

function seededEnv(seed: string) {
  let counter = 0;
  return {
    random(n: number): Uint8Array {
      const out = new Uint8Array(n);
      for (let off = 0; off < n; off += 32) {
        out.set(createHash("sha256").update(`${seed}/${counter++}`).digest().subarray(0, Math.min(32, n - off)), off);
      }
      return out;
    },
    now: () => 0,
  };
}

const FP_A = new Uint8Array(20).fill(0xaa);
const FP_B = new Uint8Array(20).fill(0xbb);
const SSID = new Uint8Array(8).fill(7);
const X = smpSecret(FP_A, FP_B, SSID, new TextEncoder().encode("shared"));

function only(tlvs: Tlv[]): Tlv {
  assert.equal(tlvs.length, 1);
  return tlvs[0]!;
}

/** Message n of an honest run (1..4) and the party that expects it, in the state that expects it. */
interface Stage { victim: Smp; tlv: Tlv; victimIsAlice: boolean; honest: Tlv[] }
let seq = 0;
function stage(n: 1 | 2 | 3 | 4, question: string | null = null): Stage {
  const id = `${n}/${seq++}`;
  const alice = new Smp(seededEnv(`alice ${id}`)), bob = new Smp(seededEnv(`bob ${id}`));
  const m1 = only(alice.start(X, question));
  if (n === 1) return { victim: bob, tlv: m1, victimIsAlice: false, honest: [m1] };
  bob.handleTlv(m1);
  const m2 = only(bob.respond(X));
  if (n === 2) return { victim: alice, tlv: m2, victimIsAlice: true, honest: [m1, m2] };
  const m3 = only(alice.handleTlv(m2).reply);
  if (n === 3) return { victim: bob, tlv: m3, victimIsAlice: false, honest: [m1, m2, m3] };
  const m4 = only(bob.handleTlv(m3).reply);
  return { victim: alice, tlv: m4, victimIsAlice: true, honest: [m1, m2, m3, m4] };
}

function withMpi(t: Tlv, index: number, value: bigint): Tlv {
  const m = decodeMpis(t.value, COUNTS[t.type]!);
  assert.ok(m, "test fixture: honest message must parse");
  m[index] = value;
  return { type: t.type, value: encodeMpis(m) };
}

function mpiOf(t: Tlv, index: number): bigint {
  return decodeMpis(t.value, COUNTS[t.type]!)![index]!;
}

function assertRefused(step: SmpStep, victim: Smp, event: "abort" | "cheated"): void {
  assert.deepEqual(step.event, event === "abort" ? { type: "smp-abort", by: "protocol" } : { type: "smp-cheated" });
  assert.deepEqual(step.reply.map((t) => t.type), [TLV_SMP_ABORT]);
  assert.equal(step.reply[0]!.value.length, 0);
  assert.equal(victim.state, "idle");
  assert.equal(victim.canRespond(), false);
}

/** After a refusal the victim must run a clean exchange with a fresh honest peer. */
function assertUsable(victim: Smp): void {
  const peer = new Smp(seededEnv(`fresh ${seq++}`));
  const ask = victim.handleTlv(only(peer.start(X, null)));
  assert.equal(ask.event?.type, "smp-ask");
  const s2 = peer.handleTlv(only(victim.respond(X)));
  const s3 = victim.handleTlv(only(s2.reply));
  assert.deepEqual(s3.event, { type: "smp-success" });
  assert.deepEqual(peer.handleTlv(only(s3.reply)).event, { type: "smp-success" });
}

// Field layout per message (spec order): which MPIs are group elements, D exponents and c hashes.
const LAYOUT = {
  1: { group: [0, 3], expon: [2, 5], hash: [1, 4] },
  2: { group: [0, 3, 6, 7], expon: [2, 5, 9, 10], hash: [1, 4, 8] },
  3: { group: [0, 1, 5], expon: [3, 4, 7], hash: [2, 6] },
  4: { group: [0], expon: [2], hash: [1] },
} as const;

describe("out-of-range values are refused before any proof", () => {
  for (const n of [1, 2, 3, 4] as const) {
    for (const index of LAYOUT[n].group) {
      for (const [label, bad] of [["0", 0n], ["1", 1n], ["p-1", DH_P - 1n], ["p", DH_P], ["p+2", DH_P + 2n]] as const) {
        test(`message ${n}, group element #${index} = ${label}`, () => {
          const s = stage(n);
          assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, bad)), s.victim, "abort");
        });
      }
    }
    for (const index of LAYOUT[n].expon) {
      for (const [label, bad] of [["0", 0n], ["q", DH_Q], ["q+1", DH_Q + 1n], ["p", DH_P]] as const) {
        test(`message ${n}, exponent #${index} = ${label}`, () => {
          const s = stage(n);
          assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, bad)), s.victim, "abort");
        });
      }
    }
  }
  test("the victim of a refused message runs a clean exchange afterwards", () => {
    const s = stage(1);
    s.victim.handleTlv(withMpi(s.tlv, 0, 1n));
    assertUsable(s.victim);
  });
});

describe("forged zero-knowledge proofs are reported as cheating", () => {
  for (const n of [1, 2, 3, 4] as const) {
    for (const index of LAYOUT[n].hash) {
      test(`message ${n}, c #${index} off by one`, () => {
        const s = stage(n);
        assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, mpiOf(s.tlv, index) + 1n)), s.victim, "cheated");
      });
      test(`message ${n}, c #${index} wider than a hash`, () => {
        const s = stage(n);
        assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, (1n << 256n) + mpiOf(s.tlv, index))), s.victim, "cheated");
      });
    }
    for (const index of LAYOUT[n].expon) {
      test(`message ${n}, D #${index} changed within range`, () => {
        const s = stage(n);
        const d = mpiOf(s.tlv, index);
        assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, d === 1n ? 2n : d - 1n)), s.victim, "cheated");
      });
    }
    for (const index of LAYOUT[n].group) {
      test(`message ${n}, group element #${index} swapped for another valid one`, () => {
        const s = stage(n);
        const g = mpiOf(s.tlv, index);
        assertRefused(s.victim.handleTlv(withMpi(s.tlv, index, (g * 4n) % DH_P)), s.victim, "cheated");
      });
    }
  }

  test("Qa = Qb (so Qa/Qb = 1) neither throws nor succeeds", () => {
    const s = stage(3);
    const qb = mpiOf(s.honest[1]!, 7);
    assertRefused(s.victim.handleTlv(withMpi(s.tlv, 1, qb)), s.victim, "cheated");
  });

  test("Pa = Pb with a forged proof does not make the final comparison succeed", () => {
    const s = stage(3);
    const pb = mpiOf(s.honest[1]!, 6);
    assertRefused(s.victim.handleTlv(withMpi(s.tlv, 0, pb)), s.victim, "cheated");
  });
});

describe("replayed, reflected and out-of-order messages", () => {
  test("after a finished run, replaying messages 2, 3 or 4 is refused", () => {
    const s = stage(4);
    assert.deepEqual(s.victim.handleTlv(s.tlv).event, { type: "smp-success" });
    for (const replay of [s.honest[1]!, s.honest[2]!, s.honest[3]!]) {
      assertRefused(s.victim.handleTlv(replay), s.victim, "abort");
    }
  });

  test("message 2 of an earlier run replayed into a new run: cheating, not success", () => {
    const old = stage(2);
    const alice = old.victim;
    alice.abort();
    alice.start(X, null); // a new run with new a2, a3: the old proofs of Pb/Qb cannot hold
    assertRefused(alice.handleTlv(old.tlv), alice, "cheated");
  });

  test("message 3 of an earlier run replayed into a new run: cheating, not success", () => {
    const old = stage(3);
    const fresh = stage(3);
    assertRefused(fresh.victim.handleTlv(old.tlv), fresh.victim, "cheated");
  });

  test("message 4 of an earlier run replayed into a new run: cheating, not success", () => {
    const old = stage(4);
    const fresh = stage(4);
    assertRefused(fresh.victim.handleTlv(old.tlv), fresh.victim, "cheated");
  });

  test("message 1 again while a run is in progress aborts it", () => {
    const s = stage(3);
    assertRefused(s.victim.handleTlv(s.honest[0]!), s.victim, "abort");
  });

  test("our own messages reflected back are refused", () => {
    const s2 = stage(2); // Alice expects message 2; reflect her message 1
    assertRefused(s2.victim.handleTlv(s2.honest[0]!), s2.victim, "abort");
    const s4 = stage(4); // Alice expects message 4; reflect her message 3
    assertRefused(s4.victim.handleTlv(s4.honest[2]!), s4.victim, "abort");
  });

  test("every message out of order is refused in every state", () => {
    const honest = stage(4).honest;
    for (const n of [1, 2, 3, 4] as const) {
      for (const wrong of honest) {
        if (wrong.type === stage(n).tlv.type) continue;
        const s = stage(n);
        assertRefused(s.victim.handleTlv(wrong), s.victim, "abort");
      }
    }
  });

  test("a pending request is dropped by an out-of-order message", () => {
    const s = stage(1);
    s.victim.handleTlv(s.tlv);
    assert.equal(s.victim.state, "asked");
    assertRefused(s.victim.handleTlv(stage(4).honest[2]!), s.victim, "abort");
  });

  test("TLV 6 when idle is reported and harmless", () => {
    const smp = new Smp(seededEnv("idle-abort"));
    assert.deepEqual(smp.handleTlv({ type: TLV_SMP_ABORT, value: new Uint8Array(0) }), {
      reply: [], event: { type: "smp-abort", by: "peer" },
    });
    assertUsable(smp);
  });
});

describe("malformed bodies", () => {
  for (const n of [1, 2, 3, 4] as const) {
    test(`message ${n}: truncated at every MPI boundary and inside MPIs`, () => {
      const full = stage(n).tlv.value;
      const cuts = new Set([0, 1, 3, 4, 5, 8, 9, 100, full.length - 1]);
      for (const cut of cuts) {
        if (cut >= full.length) continue;
        const s = stage(n);
        assertRefused(s.victim.handleTlv({ type: s.tlv.type, value: s.tlv.value.subarray(0, cut) }), s.victim, "abort");
      }
    });
    test(`message ${n}: wrong MPI count, extra MPI, trailing byte`, () => {
      const count = COUNTS[stage(n).tlv.type]!;
      for (const mutate of [
        (v: Uint8Array) => { const w = v.slice(); new DataView(w.buffer).setUint32(0, count - 1); return w; },
        (v: Uint8Array) => { const w = v.slice(); new DataView(w.buffer).setUint32(0, count + 1); return w; },
        (v: Uint8Array) => { const m = decodeMpis(v, count)!; return encodeMpis([...m, 5n]); },
        (v: Uint8Array) => Uint8Array.from([...v, 0]),
      ]) {
        const s = stage(n);
        assertRefused(s.victim.handleTlv({ type: s.tlv.type, value: mutate(s.tlv.value) }), s.victim, "abort");
      }
    });
    test(`message ${n}: a non-minimal MPI (leading zero byte)`, () => {
      const s = stage(n);
      const v = s.tlv.value;
      const len = new DataView(v.buffer, v.byteOffset).getUint32(4);
      const w = new Uint8Array(v.length + 1);
      w.set(v.subarray(0, 4));
      new DataView(w.buffer).setUint32(4, len + 1);
      w[8] = 0;
      w.set(v.subarray(8), 9);
      assertRefused(s.victim.handleTlv({ type: s.tlv.type, value: w }), s.victim, "abort");
    });
  }

  test("TLV 7 without the NUL that ends the question", () => {
    const s = stage(1, "question");
    const nul = s.tlv.value.indexOf(0);
    const v = Uint8Array.from(s.tlv.value.subarray(0, nul)); // question only, no NUL, no body
    assertRefused(s.victim.handleTlv({ type: TLV_SMP1Q, value: v }), s.victim, "abort");
  });

  test("TLV 2 and 7 with an empty body", () => {
    for (const type of [TLV_SMP1, TLV_SMP1Q]) {
      const smp = new Smp(seededEnv(`empty ${type}`));
      assertRefused(smp.handleTlv({ type, value: new Uint8Array(0) }), smp, "abort");
    }
  });
});

describe("fuzz", () => {
  test("random bytes as any SMP TLV in any state: no throw, no success, back to the start", { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(1, 2, 3, 4),
        fc.constantFrom(TLV_SMP1, TLV_SMP2, TLV_SMP3, TLV_SMP4, TLV_SMP1Q),
        fc.uint8Array({ maxLength: 600 }),
        (n, type, value) => {
          const s = stage(n as 1 | 2 | 3 | 4);
          const step = s.victim.handleTlv({ type, value });
          assert.ok(step.event?.type === "smp-abort" || step.event?.type === "smp-cheated");
          assert.deepEqual(step.reply.map((t) => t.type), [TLV_SMP_ABORT]);
          assert.equal(s.victim.state, "idle");
        },
      ),
      { numRuns: 60 },
    );
  });

  test("one flipped byte in an honest message never yields success", { timeout: 600_000 }, () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 2, 3, 4), fc.nat(), fc.integer({ min: 1, max: 255 }), (n, at, xor) => {
        const s = stage(n as 1 | 2 | 3 | 4);
        const v = s.tlv.value.slice();
        v[at % v.length] = v[at % v.length]! ^ xor;
        const step = s.victim.handleTlv({ type: s.tlv.type, value: v });
        assert.ok(step.event?.type === "smp-abort" || step.event?.type === "smp-cheated", JSON.stringify(step.event));
        assert.equal(s.victim.state, "idle");
      }),
      { numRuns: 60 },
    );
  });
});
