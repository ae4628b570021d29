// Encoded messages (v2 and v3), TLVs, query/error/whitespace classification, and garbage never throwing.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  MSG_DATA, MSG_DH_COMMIT, MSG_DH_KEY, MSG_REVEAL_SIG, MSG_SIGNATURE, TLV_DISCONNECTED, TLV_EXTRA_SYMKEY,
  dataMessageAuthenticatedBytes, encodeError, encodeMessageBytes, encodeOtrMessage, encodeQuery, encodeTlvs,
  joinPlaintext, parseMessageBytes, parseOtrText, parseTlvs, parseTlvsStrict, splitPlaintext, whitespaceTag,
  WS_TAG_BASE, WS_TAG_V1, WS_TAG_V2, WS_TAG_V3, type EncodedMessage,
} from "../../src/otr/wire/messages.js";
import { bytesToBigInt } from "../../src/otr/crypto/bigint.js";

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const tag = fc.integer({ min: 0x100, max: 0xffffffff });
const header = fc.oneof(
  fc.constant({ version: 2 as const, senderInstance: 0, receiverInstance: 0 }),
  fc.record({ version: fc.constant(3 as const), senderInstance: tag, receiverInstance: fc.oneof(fc.constant(0), tag) }),
);
const mpi = bytes(0, 200).map(bytesToBigInt);

// Object literals widen the `type` constants to number; the union is what each branch builds.
const messageArb = fc.oneof(
  fc.tuple(header, bytes(0, 200), bytes(32, 32)).map(([h, encryptedGx, hashedGx]) => ({ ...h, type: MSG_DH_COMMIT, encryptedGx, hashedGx })),
  fc.tuple(header, mpi).map(([h, gy]) => ({ ...h, type: MSG_DH_KEY, gy })),
  fc.tuple(header, bytes(0, 20), bytes(0, 300), bytes(20, 20)).map(([h, revealedKey, encryptedSignature, mac]) => ({ ...h, type: MSG_REVEAL_SIG, revealedKey, encryptedSignature, mac })),
  fc.tuple(header, bytes(0, 300), bytes(20, 20)).map(([h, encryptedSignature, mac]) => ({ ...h, type: MSG_SIGNATURE, encryptedSignature, mac })),
  fc.tuple(header, fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), mpi, bytes(8, 8), bytes(0, 300), bytes(20, 20), bytes(0, 60))
    .map(([h, flags, senderKeyId, recipientKeyId, nextDh, ctr, encrypted, mac, oldMacKeys]) =>
      ({ ...h, type: MSG_DATA, flags, senderKeyId, recipientKeyId, nextDh, ctr, encrypted, mac, oldMacKeys })),
) as fc.Arbitrary<EncodedMessage>;

function normalize(m: EncodedMessage): unknown {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) if (k !== "authenticated") o[k] = v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v;
  return o;
}

test("every message type, v2 and v3, round-trips through ?OTR:<base64>.", () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const text = encodeOtrMessage(m);
      assert.match(text, /^\?OTR:[A-Za-z0-9+/]+=*\.$/);
      const p = parseOtrText(text);
      assert.equal(p.kind, "encoded");
      if (p.kind !== "encoded") return;
      assert.deepEqual(normalize(p.msg), normalize(m));
      if (p.msg.type === MSG_DATA && m.type === MSG_DATA) {
        assert.deepEqual(new Uint8Array(p.msg.authenticated!), dataMessageAuthenticatedBytes(m));
      }
    }),
  );
});

test("v3 header carries instance tags after the type; v2 has none", () => {
  const b3 = encodeMessageBytes({ version: 3, senderInstance: 0x1234567, receiverInstance: 0x89abcdef, type: MSG_DH_KEY, gy: 5n });
  assert.equal(Buffer.from(b3).toString("hex"), "00030a" + "01234567" + "89abcdef" + "0000000105");
  const b2 = encodeMessageBytes({ version: 2, senderInstance: 0, receiverInstance: 0, type: MSG_DH_KEY, gy: 5n });
  assert.equal(Buffer.from(b2).toString("hex"), "00020a" + "0000000105");
});

test("every truncation and every appended byte is malformed, never an exception", () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const b = encodeMessageBytes(m);
      for (let cut = 0; cut < b.length; cut++) assert.equal(parseMessageBytes(b.subarray(0, cut)).ok, false);
      assert.equal(parseMessageBytes(new Uint8Array([...b, 0])).ok, false);
    }),
    { numRuns: 40 },
  );
});

test("bad versions, types, instance tags and field lengths have stable codes", () => {
  const code = (hex: string) => { const r = parseMessageBytes(new Uint8Array(Buffer.from(hex, "hex"))); return r.ok ? "ok" : r.code; };
  assert.equal(code("00010a0000000105"), "bad-version");
  assert.equal(code("000299"), "unknown-type");
  assert.equal(code("00030a000000ff000000000000000105"), "bad-instance-tag"); // sender < 0x100
  assert.equal(code("00030a0000010000000001" + "0000000105"), "bad-instance-tag"); // receiver 1..0xff
  assert.equal(code("00030a" + "00000100" + "00000000" + "0000000105"), "ok");
  assert.equal(code("00020a000000020005"), "mpi-not-minimal");
  assert.equal(code("000202" + "00000000" + "00000001ff"), "bad-field-length"); // hashed gx not 32 bytes
});

test("TLVs: round trip, spec examples, lenient and strict parsing", () => {
  assert.deepEqual(encodeTlvs([{ type: 1, value: new Uint8Array(0) }]), new Uint8Array([0, 1, 0, 0]));
  assert.deepEqual(encodeTlvs([{ type: 0, value: new TextEncoder().encode("hello") }]), new Uint8Array([0, 0, 0, 5, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffff }), bytes(0, 50)).map(([type, value]) => ({ type, value })), { maxLength: 6 }), (tlvs) => {
      const b = encodeTlvs(tlvs);
      assert.deepEqual(parseTlvs(b).map((t) => ({ type: t.type, value: new Uint8Array(t.value) })), tlvs);
      const s = parseTlvsStrict(b);
      assert.ok(s.ok);
      if (b.length > 0) {
        assert.equal(parseTlvsStrict(b.subarray(0, b.length - 1)).ok, false);
        assert.equal(parseTlvs(b.subarray(0, b.length - 1)).length, tlvs.length - 1);
      }
      const text = new TextEncoder().encode("hi there");
      const joined = joinPlaintext(text, tlvs);
      const split = splitPlaintext(joined);
      assert.deepEqual(new Uint8Array(split.text), text);
      assert.equal(split.tlvs.length, tlvs.length);
    }),
  );
  assert.deepEqual(joinPlaintext(new Uint8Array([65]), []), new Uint8Array([65]));
  const hb = splitPlaintext(joinPlaintext(new Uint8Array(0), [{ type: TLV_DISCONNECTED, value: new Uint8Array(0) }, { type: TLV_EXTRA_SYMKEY, value: new Uint8Array([0, 0, 0, 1]) }]));
  assert.equal(hb.text.length, 0);
  assert.deepEqual(hb.tlvs.map((t) => t.type), [1, 8]);
});

test("query messages: the spec's examples, v1-only offers nothing, text around is allowed", () => {
  const q = (s: string) => { const p = parseOtrText(s); return p.kind === "query" ? p.versions : p.kind; };
  assert.deepEqual(q("?OTR?"), []);
  assert.deepEqual(q("?OTRv2?"), [2]);
  assert.deepEqual(q("?OTRv23?"), [2, 3]);
  assert.deepEqual(q("?OTRv32?"), [2, 3]);
  assert.deepEqual(q("?OTR?v2?"), [2]);
  assert.deepEqual(q("?OTRv24x?"), [2]);
  assert.deepEqual(q("?OTR?v24x?"), [2]);
  assert.deepEqual(q("?OTR?v?"), []);
  assert.deepEqual(q("?OTRv?"), []);
  assert.deepEqual(q("?OTRv3?"), [3]);
  assert.deepEqual(q("?OTRv23 ?"), []);
  assert.deepEqual(q("?OTRv23?\n<b>alice</b> has requested an Off-the-Record private conversation."), [2, 3]);
  assert.deepEqual(q("please ?OTRv3? now"), [3]);
  assert.equal(encodeQuery([3, 2]), "?OTRv23?");
  assert.equal(encodeQuery([2]), "?OTRv2?");
  assert.equal(encodeQuery([3], " hi"), "?OTRv3? hi");
  assert.throws(() => encodeQuery([]), RangeError);
});

test("error messages", () => {
  assert.deepEqual(parseOtrText("?OTR Error: You sent unreadable stuff"), { kind: "error", text: "You sent unreadable stuff" });
  assert.deepEqual(parseOtrText(encodeError("x")), { kind: "error", text: "x" });
});

test("whitespace tags: versions reported, tag removed, the rest of the text kept", () => {
  const p = parseOtrText("hello" + whitespaceTag([2, 3]) + " world");
  assert.deepEqual(p, { kind: "plaintext", text: "hello world", whitespaceVersions: [2, 3] });
  assert.deepEqual(parseOtrText("hi" + WS_TAG_BASE + WS_TAG_V1 + WS_TAG_V3), { kind: "plaintext", text: "hi", whitespaceVersions: [3] });
  assert.deepEqual(parseOtrText(WS_TAG_BASE + WS_TAG_V1), { kind: "plaintext", text: "", whitespaceVersions: [] });
  assert.deepEqual(parseOtrText("a" + WS_TAG_BASE + WS_TAG_V2 + "        b"), { kind: "plaintext", text: "a        b", whitespaceVersions: [2] });
  assert.deepEqual(parseOtrText("plain text"), { kind: "plaintext", text: "plain text", whitespaceVersions: [] });
  assert.equal(whitespaceTag([2]), WS_TAG_BASE + WS_TAG_V2);
});

test("encoded-message framing: junk in the base64, missing '.', bad body are malformed", () => {
  const good = encodeOtrMessage({ version: 3, senderInstance: 0x100, receiverInstance: 0, type: MSG_DH_KEY, gy: 7n });
  assert.equal(parseOtrText(good).kind, "encoded");
  assert.equal(parseOtrText("prefix " + good + " suffix").kind, "encoded");
  assert.deepEqual(parseOtrText(good.slice(0, -1)), { kind: "malformed", code: "bad-base64" });
  assert.deepEqual(parseOtrText(good.replace("?OTR:AA", "?OTR:A*")), { kind: "malformed", code: "bad-base64" });
  assert.deepEqual(parseOtrText("?OTR:."), { kind: "malformed", code: "truncated" });
  assert.deepEqual(parseOtrText("?OTR|zz"), { kind: "malformed", code: "bad-fragment" });
  // Like libotr, a fragment may follow other text; text merely containing the marker stays text.
  const pf = parseOtrText("<alice> ?OTR,00001,00002,abc,");
  assert.equal(pf.kind === "fragment" && pf.fragment.piece, "abc");
  assert.equal(parseOtrText("what is ?OTR, anyway").kind, "plaintext");
});

test("random text and random base64 bodies never throw", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) => {
      parseOtrText(s);
      parseOtrText("?OTR:" + s + ".");
      parseOtrText("?OTR|" + s);
      parseOtrText("?OTR," + s);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(bytes(0, 400), (b) => {
      const p = parseOtrText("?OTR:" + Buffer.from(b).toString("base64") + ".");
      assert.ok(p.kind === "encoded" || p.kind === "malformed");
    }),
    { numRuns: 500 },
  );
});
