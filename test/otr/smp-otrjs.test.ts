// Our SMP against an independent implementation: otr.js's SM (npm `otr`, pure JS) driven in process,
// TLV by TLV. Both directions, with and without a question, equal and different secrets, and an abort.
// This pins what two implementations of the same spec must agree on: the hash version bytes, the MPI
// order and counts, the secret derivation (initiator's fingerprint first) and the TLV 7 question format.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Smp, smpSecret, type SmpEvent, type Tlv } from "../../src/otr/smp.js";
import { defaultEnv } from "../../src/otr/env.js";

interface OtrJsSm {
  on(event: "send", fn: (ssid: string, msg: string) => void): void;
  on(event: "question", fn: (q: string | undefined) => void): void;
  on(event: "trust", fn: (trust: boolean, role: string) => void): void;
  on(event: "abort", fn: () => void): void;
  handleSM(msg: { msg: string; type: number }): void;
  rcvSecret(secret: string, question?: string): void;
  abort(): void;
}
const SM = createRequire(import.meta.url)("otr/lib/sm.js") as new (reqs: { our_fp: string; their_fp: string; ssid: string }) => OtrJsSm;

const OUR_FP = Uint8Array.from({ length: 20 }, (_, i) => 0x10 + i);
const THEIR_FP = Uint8Array.from({ length: 20 }, (_, i) => 0xe0 - i);
const SSID = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03]);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const latin1 = (b: Uint8Array) => Buffer.from(b).toString("latin1");
const ascii = (s: string) => new TextEncoder().encode(s);

/** otr.js's peer, with what it sends and reports collected. */
function otrjsPeer() {
  const sm = new SM({ our_fp: hex(THEIR_FP), their_fp: hex(OUR_FP), ssid: latin1(SSID) });
  const sent: Tlv[] = [];
  const seen: { question?: string | undefined; trust?: boolean; aborted: boolean } = { aborted: false };
  sm.on("send", (_ssid, msg) => {
    // '\0' (empty human-readable part), then one TLV: SHORT type, SHORT length, value.
    const b = Buffer.from(msg, "latin1");
    assert.equal(b[0], 0);
    const type = b.readUInt16BE(1), len = b.readUInt16BE(3);
    assert.equal(b.length, 5 + len);
    sent.push({ type, value: new Uint8Array(b.subarray(5)) });
  });
  sm.on("question", (q) => { seen.question = q; });
  sm.on("trust", (trust) => { seen.trust = trust; });
  sm.on("abort", () => { seen.aborted = true; });
  const deliver = (t: Tlv) => sm.handleSM({ type: t.type, msg: latin1(t.value) });
  const take = (): Tlv => {
    assert.equal(sent.length, 1, "otr.js should have sent exactly one TLV");
    return sent.shift()!;
  };
  return { sm, seen, sent, deliver, take };
}

function ours(): Smp {
  return new Smp(defaultEnv);
}

describe("SMP interop with otr.js", { timeout: 600_000 }, () => {
  for (const question of [null, "Name of our first cat?"]) {
    test(`we initiate${question ? " with a question" : ""}, same secret: both succeed`, () => {
      const me = ours(), peer = otrjsPeer();
      peer.deliver(me.start(smpSecret(OUR_FP, THEIR_FP, SSID, ascii("whiskers")), question)[0]!);
      assert.equal(peer.seen.question ?? null, question);
      peer.sm.rcvSecret("whiskers");
      const s2 = me.handleTlv(peer.take());
      assert.deepEqual(s2.event, { type: "smp-in-progress" });
      peer.deliver(s2.reply[0]!);
      assert.equal(peer.seen.trust, true);
      const s4 = me.handleTlv(peer.take());
      assert.deepEqual(s4, { reply: [], event: { type: "smp-success" } });
    });

    test(`otr.js initiates${question ? " with a question" : ""}, same secret: both succeed`, () => {
      const me = ours(), peer = otrjsPeer();
      peer.sm.rcvSecret("whiskers", question ?? undefined);
      const s1 = me.handleTlv(peer.take());
      assert.deepEqual(s1.event, { type: "smp-ask", question });
      peer.deliver(me.respond(smpSecret(THEIR_FP, OUR_FP, SSID, ascii("whiskers")))[0]!);
      const s3 = me.handleTlv(peer.take());
      assert.deepEqual(s3.event, { type: "smp-success" });
      peer.deliver(s3.reply[0]!);
      assert.equal(peer.seen.trust, true);
      assert.equal(peer.sent.length, 0);
    });
  }

  test("different secrets: both report failure (we initiate)", () => {
    const me = ours(), peer = otrjsPeer();
    peer.deliver(me.start(smpSecret(OUR_FP, THEIR_FP, SSID, ascii("tabby")), null)[0]!);
    peer.sm.rcvSecret("calico");
    const s2 = me.handleTlv(peer.take());
    peer.deliver(s2.reply[0]!);
    assert.equal(peer.seen.trust, false);
    const s4 = me.handleTlv(peer.take());
    assert.deepEqual(s4.event, { type: "smp-failure" } satisfies SmpEvent);
  });

  test("different secrets: both report failure (otr.js initiates)", () => {
    const me = ours(), peer = otrjsPeer();
    peer.sm.rcvSecret("tabby");
    me.handleTlv(peer.take());
    peer.deliver(me.respond(smpSecret(THEIR_FP, OUR_FP, SSID, ascii("calico")))[0]!);
    const s3 = me.handleTlv(peer.take());
    assert.deepEqual(s3.event, { type: "smp-failure" });
    peer.deliver(s3.reply[0]!);
    assert.equal(peer.seen.trust, false);
  });

  test("otr.js aborts mid-way; we abort mid-way", () => {
    const me = ours(), peer = otrjsPeer();
    peer.deliver(me.start(smpSecret(OUR_FP, THEIR_FP, SSID, ascii("s")), null)[0]!);
    peer.sm.abort();
    const abort = peer.take();
    assert.deepEqual(me.handleTlv(abort), { reply: [], event: { type: "smp-abort", by: "peer" } });
    assert.equal(me.state, "idle");

    const me2 = ours(), peer2 = otrjsPeer();
    peer2.sm.rcvSecret("s");
    me2.handleTlv(peer2.take());
    peer2.deliver(me2.abort()[0]!);
    assert.equal(peer2.seen.aborted, true);
  });
});
