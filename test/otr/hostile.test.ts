// A hostile peer: flipped bits, garbage, replays, forged MACs, out-of-range keys, leading zeros. Every rejected
// message must leave the conversation's state byte-for-byte as it was (compared through a deep snapshot).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { establish, makePair, pump, receivedTexts, say, snapshot, type Side } from "./fixtures.js";
import { POLICY, type OtrEvent } from "../../src/otr/index.js";
import {
  MSG_DATA,
  MSG_DH_COMMIT,
  MSG_DH_KEY,
  encodeMessageBytes,
  encodeOtrMessage,
  parseOtrText,
  type EncodedMessage,
} from "../../src/otr/wire/messages.js";
import { DH_G, DH_P } from "../../src/otr/crypto/dh.js";
import { modPowSecret } from "../../src/otr/crypto/modexp.js";
import { bigIntToBytes, bytesToBigInt, encodeMpi } from "../../src/otr/crypto/bigint.js";
import { aesCtr, sha256 } from "../../src/otr/crypto/primitives.js";

function decode(line: string): EncodedMessage {
  const p = parseOtrText(line);
  assert.equal(p.kind, "encoded", `not an encoded message: ${line.slice(0, 40)}`);
  return (p as { kind: "encoded"; msg: EncodedMessage }).msg;
}

function bytesOf(line: string): Uint8Array {
  assert.ok(line.startsWith("?OTR:") && line.endsWith("."));
  return new Uint8Array(Buffer.from(line.slice(5, -1), "base64"));
}

function lineOf(bytes: Uint8Array): string {
  return "?OTR:" + Buffer.from(bytes).toString("base64") + ".";
}

function flipBit(line: string, byte: number, bit: number): string {
  const b = bytesOf(line).slice();
  b[byte]! ^= 1 << bit;
  return lineOf(b);
}

const NO_UNEXPECTED = (events: OtrEvent[]) =>
  assert.ok(!events.some((e) => "code" in e && e.code === "unexpected"), JSON.stringify(events));

/** Run the AKE by hand up to the point where `stop` is about to be delivered. */
function akeUpTo(stop: "reveal-sig" | "signature") {
  const [a, b] = makePair();
  const query = a.conv.startAke().toSend[0]!;
  const commit = b.conv.receive(query).toSend[0]!;
  const dhKey = a.conv.receive(commit).toSend[0]!;
  const revealSig = b.conv.receive(dhKey).toSend[0]!;
  if (stop === "reveal-sig") return { a, b, target: a, line: revealSig, next: null as string | null };
  const signature = a.conv.receive(revealSig).toSend[0]!;
  return { a, b, target: b, line: signature, next: null };
}

function assertRejectedUnchanged(target: Side, line: string, what: string): OtrEvent[] {
  const before = snapshot(target.conv);
  let r;
  try {
    r = target.conv.receive(line);
  } catch (e) {
    assert.fail(`${what}: receive threw ${String(e)}`);
  }
  NO_UNEXPECTED(r.events);
  assert.ok(!r.events.some((e) => e.type === "gone-secure" || e.type === "still-secure"), `${what}: accepted`);
  assert.ok(!r.events.some((e) => e.type === "received" && e.encrypted), `${what}: decrypted`);
  assert.equal(snapshot(target.conv), before, `${what}: state changed`);
  return r.events;
}

describe("flipped bits in AKE messages", () => {
  for (const stop of ["reveal-sig", "signature"] as const) {
    test(`any single flipped bit in a ${stop} message is rejected and changes nothing`, () => {
      const { target, line } = akeUpTo(stop);
      const n = bytesOf(line).length;
      fc.assert(
        fc.property(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: 7 }), (byte, bit) => {
          assertRejectedUnchanged(target, flipBit(line, byte, bit), `byte ${byte} bit ${bit}`);
        }),
        { numRuns: 250 },
      );
      // Every byte's lowest and highest bit, exhaustively, for the header and MAC regions.
      for (let i = 0; i < n; i += i < 16 || i > n - 24 ? 1 : 37) {
        assertRejectedUnchanged(target, flipBit(line, i, 0), `byte ${i} bit 0`);
        assertRejectedUnchanged(target, flipBit(line, i, 7), `byte ${i} bit 7`);
      }
      // The genuine message still completes the AKE.
      const r = target.conv.receive(line);
      assert.ok(r.events.some((e) => e.type === "gone-secure"));
    });
  }

  test("a flipped D-H Commit or D-H Key is not caught at once but the AKE never completes", () => {
    for (const which of ["commit", "dh-key"] as const) {
      for (let i = 0; i < 12; i++) {
        const [a, b] = makePair({ seed: `fa${which}${i}` }, { seed: `fb${which}${i}` });
        const query = a.conv.startAke().toSend[0]!;
        let commit = b.conv.receive(query).toSend[0]!;
        const n = bytesOf(commit).length;
        // Flip inside the payload (after the 11-byte v3 header), where the message still parses.
        if (which === "commit") commit = flipBit(commit, 11 + ((i * 29) % (n - 11)), i % 8);
        let dhKey = a.conv.receive(commit).toSend[0];
        if (dhKey === undefined) continue;
        if (which === "dh-key") dhKey = flipBit(dhKey, 16 + ((i * 13) % (bytesOf(dhKey).length - 16)), i % 8);
        pump(b, a, b.conv.receive(dhKey).toSend);
        assert.notEqual(a.conv.status().state, "encrypted", `${which} ${i}`);
        assert.notEqual(b.conv.status().state, "encrypted", `${which} ${i}`);
      }
    }
  });
});

describe("flipped bits in data messages", () => {
  function established(v2 = false) {
    const [a, b] = v2 ? makePair({ policy: { ...POLICY.MANUAL, allowV3: false } }, {}) : makePair();
    establish(a, b);
    return { a, b };
  }

  for (const v2 of [false, true]) test(`any single flipped bit is rejected, changes nothing, and the genuine message still arrives${v2 ? " (v2)" : ""}`, () => {
    const { a, b } = established(v2);
    const line = a.conv.send("the genuine text").toSend[0]!;
    assert.equal(decode(line).version, v2 ? 2 : 3);
    const n = bytesOf(line).length;
    fc.assert(
      fc.property(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: 7 }), (byte, bit) => {
        assertRejectedUnchanged(b, flipBit(line, byte, bit), `byte ${byte} bit ${bit}`);
      }),
      { numRuns: 400 },
    );
    for (let i = 0; i < n; i++) assertRejectedUnchanged(b, flipBit(line, i, i % 8), `byte ${i}`);
    assert.deepEqual(receivedTexts(b.conv.receive(line).events), ["the genuine text"]);
  });

  test("flipped characters of the text form are rejected too", () => {
    const { a, b } = established();
    const line = a.conv.send("text form").toSend[0]!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=.?:| ";
    fc.assert(
      fc.property(fc.integer({ min: 0, max: line.length - 1 }), fc.integer({ min: 0, max: alphabet.length - 1 }), (i, c) => {
        const ch = alphabet[c]!;
        if (line[i] === ch) return;
        const mutated = line.slice(0, i) + ch + line.slice(i + 1);
        const before = snapshot(b.conv);
        const r = b.conv.receive(mutated);
        NO_UNEXPECTED(r.events);
        const got = r.events.filter((e) => e.type === "received" && e.encrypted);
        // Base64 slack bits in the last character can decode to the same bytes: then it is the same message.
        if (got.length > 0) {
          assert.deepEqual(bytesOf(mutated), bytesOf(line));
          throw new Error("identical bytes were accepted twice");
        }
        assert.equal(snapshot(b.conv), before);
      }),
      { numRuns: 300 },
    );
    assert.deepEqual(receivedTexts(b.conv.receive(line).events), ["text form"]);
  });

  test("the revealed old MAC keys are outside the MAC: flipping them changes nothing else", () => {
    const { a, b } = established();
    // Rotate keys so a reveals old MAC keys in its next message.
    for (let i = 0; i < 3; i++) {
      say(a, b, `ping ${i}`);
      say(b, a, `pong ${i}`);
    }
    const line = a.conv.send("with revealed keys").toSend[0]!;
    const msg = decode(line);
    assert.equal(msg.type, MSG_DATA);
    const old = (msg as { oldMacKeys: Uint8Array }).oldMacKeys;
    assert.ok(old.length > 0 && old.length % 20 === 0, `old MAC keys: ${old.length}`);
    const bytes = bytesOf(line);
    const start = bytes.length - old.length;
    // Flips anywhere before the revealed keys are rejected.
    for (let i = 0; i < start; i += 3) assertRejectedUnchanged(b, flipBit(line, i, 1), `byte ${i}`);
    // A flip inside them still decrypts to the same text (the keys are public by now anyway).
    assert.deepEqual(receivedTexts(b.conv.receive(flipBit(line, start + 3, 2)).events), ["with revealed keys"]);
  });
});

describe("replays and forgeries", () => {
  test("a replayed data message is rejected and changes nothing", () => {
    const [a, b] = makePair();
    establish(a, b);
    const line = a.conv.send("once").toSend[0]!;
    assert.deepEqual(receivedTexts(b.conv.receive(line).events), ["once"]);
    const events = assertRejectedUnchanged(b, line, "replay");
    assert.ok(events.some((e) => e.type === "unreadable" && e.code === "counter-replay"), JSON.stringify(events));
    // Replays after later messages too.
    const l2 = a.conv.send("twice").toSend[0]!;
    b.conv.receive(l2);
    assertRejectedUnchanged(b, line, "old replay");
    assertRejectedUnchanged(b, l2, "replay 2");
  });

  test("a forged MAC with a huge counter does not block the genuine message (arlolra/otr bug)", () => {
    const [a, b] = makePair();
    establish(a, b);
    say(a, b, "warm up");
    const line = a.conv.send("genuine").toSend[0]!;
    const m = decode(line) as Extract<EncodedMessage, { type: typeof MSG_DATA }>;
    const forged = encodeOtrMessage({ ...m, ctr: new Uint8Array(8).fill(0xff) });
    const events = assertRejectedUnchanged(b, forged, "forged counter");
    assert.ok(events.some((e) => e.type === "unreadable" && e.code === "bad-mac"));
    const forgedMac = encodeOtrMessage({ ...m, mac: new Uint8Array(20).fill(7) });
    assertRejectedUnchanged(b, forgedMac, "forged mac");
    assert.deepEqual(receivedTexts(b.conv.receive(line).events), ["genuine"]);
  });

  test("unknown key ids are rejected", () => {
    const [a, b] = makePair();
    establish(a, b);
    const line = a.conv.send("k").toSend[0]!;
    const m = decode(line) as Extract<EncodedMessage, { type: typeof MSG_DATA }>;
    for (const [s, r] of [
      [0, m.recipientKeyId],
      [m.senderKeyId, 0],
      [m.senderKeyId + 5, m.recipientKeyId],
      [m.senderKeyId, m.recipientKeyId + 7],
    ]) {
      const events = assertRejectedUnchanged(b, encodeOtrMessage({ ...m, senderKeyId: s!, recipientKeyId: r! }), `ids ${s}/${r}`);
      assert.ok(events.some((e) => e.type === "unreadable" && e.code === "unknown-keyid"), JSON.stringify(events));
    }
  });

  test("out-of-range next DH key in a correctly MACed data message is rejected (libotr does not check)", () => {
    const [a, b] = makePair();
    establish(a, b);
    say(a, b, "before");
    // Reach into a's session to announce a bad next key; the message is otherwise genuine (right MAC).
    const session = (a.conv as unknown as { best(): { keys: { ourCur: { x: bigint; gx: bigint } | null } } }).best();
    const real = session.keys.ourCur;
    for (const bad of [0n, 1n, DH_P - 1n, DH_P, DH_P + 1n]) {
      session.keys.ourCur = { x: 5n, gx: bad };
      const line = a.conv.send("evil").toSend[0]!;
      const events = assertRejectedUnchanged(b, line, `next dh ${bad}`);
      assert.ok(events.some((e) => e.type === "unreadable" && e.code === "bad-dh-range"), JSON.stringify(events));
    }
    session.keys.ourCur = real;
    assert.deepEqual(receivedTexts(say(a, b, "after")), ["after"]);
    assert.deepEqual(receivedTexts(say(b, a, "and back")), ["and back"]);
  });

  test("D-H Key with g^y out of range is rejected in the AKE", () => {
    const [a, b] = makePair();
    const query = a.conv.startAke().toSend[0]!;
    const commit = b.conv.receive(query).toSend[0]!;
    const dhKey = decode(a.conv.receive(commit).toSend[0]!);
    assert.equal(dhKey.type, MSG_DH_KEY);
    for (const gy of [0n, 1n, DH_P - 1n, DH_P]) {
      const events = assertRejectedUnchanged(b, encodeOtrMessage({ ...dhKey, gy } as EncodedMessage), `gy ${gy}`);
      assert.ok(events.some((e) => e.type === "malformed" && e.code === "bad-dh-range"));
    }
  });

  test("messages for another instance or with a bad sender tag change nothing", () => {
    const [a, b] = makePair();
    establish(a, b);
    const m = decode(a.conv.send("tags").toSend[0]!);
    const other = assertRejectedUnchanged(b, encodeOtrMessage({ ...m, receiverInstance: 0x7777777 }), "other instance");
    assert.ok(other.some((e) => e.type === "for-other-instance"));
    const zero = assertRejectedUnchanged(b, encodeOtrMessage({ ...m, receiverInstance: 0 }), "receiver 0 on data");
    assert.ok(zero.some((e) => e.type === "for-other-instance"));
    const badSender = bytesOf(encodeOtrMessage(m)).slice();
    badSender.set([0, 0, 0, 0x50], 3);
    assertRejectedUnchanged(b, lineOf(badSender), "sender tag 0x50");
    const reflected = assertRejectedUnchanged(b, encodeOtrMessage({ ...m, senderInstance: b.account.instanceTag }), "reflected");
    assert.ok(reflected.some((e) => e.type === "reflected"));
  });
});

describe("garbage never throws", () => {
  const lines = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.string({ unit: "grapheme", maxLength: 100 }),
    fc.uint8Array({ maxLength: 400 }).map((b) => lineOf(b)),
    fc
      .tuple(fc.constantFrom(2, 3), fc.constantFrom(0x02, 0x03, 0x0a, 0x11, 0x12, 0x00, 0xff), fc.uint8Array({ maxLength: 300 }))
      .map(([v, t, rest]) => {
        const head = v === 3 ? [0, 3, t, 0x22, 0x22, 0x22, 0x22, 0x11, 0x11, 0x11, 0x11] : [0, 2, t];
        return lineOf(new Uint8Array([...head, ...rest]));
      }),
    fc
      .tuple(fc.nat(70000), fc.nat(70000), fc.string({ maxLength: 50 }), fc.boolean())
      .map(([k, n, piece, v3]) => (v3 ? `?OTR|22222222|11111111,${k},${n},${piece},` : `?OTR,${k},${n},${piece},`)),
    fc.constantFrom("?OTR?", "?OTRv?", "?OTRv2?", "?OTRv3?", "?OTRv23?", "?OTRv9?", "?OTR Error:", "?OTR:", "?OTR:.", "?OTR|", "?OTR,"),
  );

  for (const state of ["fresh", "encrypted", "finished"] as const) {
    test(`random input into a ${state} conversation`, () => {
      const [a, b] = makePair({ policy: POLICY.OPPORTUNISTIC }, {});
      if (state !== "fresh") establish(a, b);
      if (state === "finished") pump(b, a, b.conv.end().toSend);
      fc.assert(
        fc.property(lines, (line) => {
          const r = a.conv.receive(line);
          NO_UNEXPECTED(r.events);
          for (const l of r.toSend) assert.equal(typeof l, "string");
        }),
        { numRuns: 600 },
      );
      // Still working afterwards (garbage may have started an AKE: finish whatever is pending).
      if (state === "encrypted") assert.deepEqual(receivedTexts(say(b, a, "survived")), ["survived"]);
    });
  }

  test("garbage encoded messages leave an encrypted conversation unchanged", () => {
    const [a, b] = makePair();
    establish(a, b);
    const dataLike = fc.uint8Array({ minLength: 0, maxLength: 400 }).map((rest) => lineOf(new Uint8Array([0, 3, 3, 0x22, 0x22, 0x22, 0x22, 0x11, 0x11, 0x11, 0x11, ...rest])));
    fc.assert(
      fc.property(dataLike, (line) => {
        assertRejectedUnchanged(a, line, "garbage data");
      }),
      { numRuns: 300 },
    );
  });
});

describe("leading zeros are preserved", () => {
  /** A 40-byte exponent whose g^base has a 191-byte (or shorter) minimal encoding. */
  function exponentWithShortPublic(base: bigint, seed: number): Uint8Array {
    for (let i = seed; ; i++) {
      const x = new Uint8Array(sha256(new TextEncoder().encode(`lz${i}`)).buffer.slice(0)).subarray(0, 32);
      const x40 = new Uint8Array(40);
      x40.set(x, 8);
      x40[0] = 0x01;
      if (modPowSecret(base, bytesToBigInt(x40), DH_P) < 1n << 1528n) return x40;
    }
  }

  test("AES key r with leading zero bytes, and g^x with a short MPI", () => {
    const [a, b] = makePair();
    const r = new Uint8Array(16);
    r.set([0, 0, 0x42], 0);
    r[15] = 9;
    const x = exponentWithShortPublic(DH_G, 0);
    b.env.forced = [r, x];
    const query = a.conv.startAke().toSend[0]!;
    const commitLine = b.conv.receive(query).toSend[0]!;
    const commit = decode(commitLine);
    assert.equal(commit.type, MSG_DH_COMMIT);
    const gx = modPowSecret(DH_G, bytesToBigInt(x), DH_P);
    const gxmpi = encodeMpi(gx);
    assert.ok(gxmpi.length <= 4 + 191);
    const c = commit as Extract<EncodedMessage, { type: typeof MSG_DH_COMMIT }>;
    assert.equal(c.encryptedGx.length, gxmpi.length);
    assert.deepEqual(c.hashedGx, sha256(gxmpi));
    pump(a, b, a.conv.receive(commitLine).toSend);
    assert.equal(a.conv.status().state, "encrypted");
    assert.equal(b.conv.status().state, "encrypted");
    // The revealed r went out with its zeros.
    assert.deepEqual(receivedTexts(say(a, b, "zeros")), ["zeros"]);
  });

  test("a shared secret with a leading zero byte gives the ssid of its minimal MPI", () => {
    const [a, b] = makePair();
    // b initiates with a fixed x; search a's y so that s = g^(xy) is short.
    const xb = exponentWithShortPublic(DH_G, 1000);
    const gxb = modPowSecret(DH_G, bytesToBigInt(xb), DH_P);
    const ya = exponentWithShortPublic(gxb, 2000);
    const s = modPowSecret(gxb, bytesToBigInt(ya), DH_P);
    assert.ok(s < 1n << 1528n);
    b.env.forced = [new Uint8Array(16).fill(3), xb];
    a.env.forced = [ya];
    const query = a.conv.startAke().toSend[0]!;
    pump(b, a, b.conv.receive(query).toSend);
    assert.equal(a.conv.status().state, "encrypted");
    const expected = sha256(new Uint8Array([0]), encodeMpi(s)).subarray(0, 8);
    assert.deepEqual(a.conv.status().ssid, expected);
    assert.deepEqual(b.conv.status().ssid, expected);
    assert.deepEqual(receivedTexts(say(b, a, "short secret")), ["short secret"]);
  });

  test("a next DH key with a short MPI in data messages", () => {
    const [a, b] = makePair();
    establish(a, b);
    a.env.forced = [exponentWithShortPublic(DH_G, 3000)];
    assert.deepEqual(receivedTexts(say(a, b, "short next key")), ["short next key"]);
    const m = decode(a.conv.send("x").toSend[0]!) as Extract<EncodedMessage, { type: typeof MSG_DATA }>;
    assert.ok(bigIntToBytes(m.nextDh).length <= 191);
    b.conv.receive(encodeOtrMessage(m));
    assert.deepEqual(receivedTexts(say(b, a, "reply")), ["reply"]);
    assert.deepEqual(receivedTexts(say(a, b, "rotated")), ["rotated"]);
    void encodeMessageBytes;
  });
});

describe("bounded per-peer state", () => {
  test("a peer inventing instance tags cannot grow the conversation past MAX_PEER_INSTANCES", () => {
    const [a, b] = makePair();
    const query = a.conv.startAke().toSend[0]!;
    const commit = decode(b.conv.receive(query).toSend[0]!);
    const size0 = snapshot(a.conv).length;
    for (let tag = 0x5000; tag < 0x5000 + 100; tag++) a.conv.receive(encodeOtrMessage({ ...commit, senderInstance: tag }));
    const children = (a.conv as unknown as { children: Map<number, unknown> }).children;
    assert.ok(children.size <= 8, `children: ${children.size}`);
    assert.ok(snapshot(a.conv).length < size0 + 8 * 4000);
    // The genuine instance still gets its session.
    const [a2, b2] = makePair();
    establish(a2, b2);
    for (let tag = 0x6000; tag < 0x6000 + 50; tag++) a2.conv.receive(encodeOtrMessage({ ...commit, senderInstance: tag }));
    assert.equal(a2.conv.status().state, "encrypted");
    assert.deepEqual(receivedTexts(say(b2, a2, "still here")), ["still here"]);
  });
});

describe("ignored AKE messages", () => {
  test("stale or out-of-state AKE messages change nothing", () => {
    const [a, b] = makePair();
    const query = a.conv.startAke().toSend[0]!;
    const commit = b.conv.receive(query).toSend[0]!;
    const dhKey = a.conv.receive(commit).toSend[0]!;
    const revealSig = b.conv.receive(dhKey).toSend[0]!;
    const signature = a.conv.receive(revealSig).toSend[0]!;
    b.conv.receive(signature);
    // Both are encrypted and in AUTHSTATE_NONE now: every AKE message but a commit is ignored.
    for (const [side, line] of [[a, revealSig], [b, signature], [b, dhKey], [a, signature]] as const) {
      const before = snapshot(side.conv);
      const r = side.conv.receive(line);
      assert.deepEqual(r.toSend, []);
      assert.equal(snapshot(side.conv), before);
    }
  });
});

describe("committed g^x out of range", () => {
  test("a reveal-sig opening a commitment to g^x = 1 or p-1 is rejected before any use", () => {
    for (const gx of [0n, 1n, DH_P - 1n, DH_P]) {
      const [a, b] = makePair();
      const query = a.conv.startAke().toSend[0]!;
      const honest = decode(b.conv.receive(query).toSend[0]!) as Extract<EncodedMessage, { type: typeof MSG_DH_COMMIT }>;
      // A hostile b commits to a degenerate key it can compute s for.
      const r = new Uint8Array(16).fill(0x5a);
      const gxmpi = encodeMpi(gx);
      const encryptedGx = aesCtr(r, new Uint8Array(16), gxmpi);
      const commit = encodeOtrMessage({ ...honest, encryptedGx, hashedGx: sha256(gxmpi) });
      const answer = a.conv.receive(commit);
      const dhKey = answer.toSend[0];
      if (gx === 0n) {
        // MPI(0) is 4 bytes: too short to be a commitment to any group element, rejected at once.
        assert.ok(answer.events.some((e) => e.type === "malformed"), JSON.stringify(answer.events));
        continue;
      }
      assert.ok(dhKey, "a answers the commit");
      const h = decode(dhKey);
      const revealSig = encodeOtrMessage({
        version: 3,
        type: 0x11,
        senderInstance: h.receiverInstance,
        receiverInstance: h.senderInstance,
        revealedKey: r,
        encryptedSignature: new Uint8Array(100),
        mac: new Uint8Array(20),
      } as EncodedMessage);
      const events = assertRejectedUnchanged(a, revealSig, `gx ${gx}`);
      assert.ok(events.some((e) => "code" in e && e.code === "bad-dh-range"), JSON.stringify(events));
    }
  });
});
