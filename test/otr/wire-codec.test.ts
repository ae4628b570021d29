// Codec: round trips, MPI minimality, bounds checks that become results (never exceptions), strict base64.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeWith, encodeData, Reader, Writer } from "../../src/otr/wire/codec.js";
import { base64Decode, base64Encode } from "../../src/otr/wire/base64.js";
import { bytesToBigInt } from "../../src/otr/crypto/bigint.js";

type Field =
  | { t: "byte"; v: number } | { t: "short"; v: number } | { t: "int"; v: number } | { t: "mpi"; v: bigint }
  | { t: "data"; v: Uint8Array } | { t: "ctr"; v: Uint8Array } | { t: "mac"; v: Uint8Array };

const fieldArb: fc.Arbitrary<Field> = fc.oneof(
  fc.integer({ min: 0, max: 0xff }).map((v) => ({ t: "byte" as const, v })),
  fc.integer({ min: 0, max: 0xffff }).map((v) => ({ t: "short" as const, v })),
  fc.integer({ min: 0, max: 0xffffffff }).map((v) => ({ t: "int" as const, v })),
  fc.uint8Array({ maxLength: 200 }).map((b) => ({ t: "mpi" as const, v: bytesToBigInt(b) })),
  fc.uint8Array({ maxLength: 100 }).map((v) => ({ t: "data" as const, v })),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((v) => ({ t: "ctr" as const, v })),
  fc.uint8Array({ minLength: 20, maxLength: 20 }).map((v) => ({ t: "mac" as const, v })),
);

function write(w: Writer, f: Field): void {
  switch (f.t) {
    case "byte": w.byte(f.v); break;
    case "short": w.short(f.v); break;
    case "int": w.int(f.v); break;
    case "mpi": w.mpi(f.v); break;
    case "data": w.data(f.v); break;
    case "ctr": w.ctr(f.v); break;
    case "mac": w.mac(f.v); break;
  }
}
function read(r: Reader, f: Field): unknown {
  switch (f.t) {
    case "byte": return r.readByte();
    case "short": return r.readShort();
    case "int": return r.readInt();
    case "mpi": return r.readMpi();
    case "data": return r.readData();
    case "ctr": return r.readCtr();
    case "mac": return r.readMac();
  }
}

test("any sequence of fields round-trips", () => {
  fc.assert(
    fc.property(fc.array(fieldArb, { maxLength: 20 }), (fields) => {
      const w = new Writer();
      for (const f of fields) write(w, f);
      const bytes = w.finish();
      const res = decodeWith(bytes, (r) => fields.map((f) => read(r, f)));
      assert.ok(res.ok);
      if (res.ok) res.value.forEach((v, i) => assert.deepEqual(v instanceof Uint8Array ? new Uint8Array(v) : v, fields[i]!.v));
    }),
  );
});

test("every strict prefix of an encoding is a 'truncated' result, never an exception", () => {
  fc.assert(
    fc.property(fc.array(fieldArb, { minLength: 1, maxLength: 8 }), (fields) => {
      const w = new Writer();
      for (const f of fields) write(w, f);
      const bytes = w.finish();
      for (let cut = 0; cut < bytes.length; cut++) {
        const res = decodeWith(bytes.subarray(0, cut), (r) => fields.map((f) => read(r, f)));
        // Every field takes at least one byte, so any strict prefix must fail.
        assert.equal(res.ok ? "ok" : res.code, "truncated");
      }
      const extra = decodeWith(new Uint8Array([...bytes, 0]), (r) => fields.map((f) => read(r, f)));
      assert.equal(extra.ok, false);
      if (!extra.ok) assert.equal(extra.code, "trailing-data");
    }),
  );
});

test("MPIs are written minimally and a leading zero is refused on read", () => {
  assert.deepEqual(new Writer().mpi(0n).finish(), new Uint8Array([0, 0, 0, 0]));
  assert.deepEqual(new Writer().mpi(0x80n).finish(), new Uint8Array([0, 0, 0, 1, 0x80]));
  const bad = decodeWith(new Uint8Array([0, 0, 0, 2, 0, 5]), (r) => r.readMpi());
  assert.deepEqual(bad.ok ? null : bad.code, "mpi-not-minimal");
  const zeroLen = decodeWith(new Uint8Array([0, 0, 0, 0]), (r) => r.readMpi());
  assert.deepEqual(zeroLen, { ok: true, value: 0n });
  fc.assert(
    fc.property(fc.bigInt({ min: 1n, max: 1n << 1600n }), (n) => {
      const b = new Writer().mpi(n).finish();
      assert.notEqual(b[4], 0);
    }),
  );
});

test("huge declared lengths are bounded by the input, not allocated", () => {
  const res = decodeWith(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2, 3]), (r) => r.readData());
  assert.equal(res.ok, false);
});

test("random garbage through every reader never throws", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.array(fieldArb, { maxLength: 6 }), (bytes, fields) => {
      decodeWith(bytes, (r) => { fields.forEach((f) => read(r, f)); r.readPubkey(); });
    }),
  );
});

test("writer refuses out-of-range values (caller misuse)", () => {
  assert.throws(() => new Writer().byte(256), RangeError);
  assert.throws(() => new Writer().short(-1), RangeError);
  assert.throws(() => new Writer().int(2 ** 32), RangeError);
  assert.throws(() => new Writer().ctr(new Uint8Array(7)), RangeError);
  assert.throws(() => new Writer().mac(new Uint8Array(21)), RangeError);
  assert.deepEqual(encodeData(new Uint8Array([9])), new Uint8Array([0, 0, 0, 1, 9]));
});

test("base64: round trip equals node's encoder; strict decoding", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      const s = base64Encode(b);
      assert.equal(s, Buffer.from(b).toString("base64"));
      assert.deepEqual(base64Decode(s), b);
      assert.deepEqual(base64Decode(s.replace(/=+$/, "")), b, "unpadded form accepted");
    }),
  );
  for (const bad of ["A", "AAAAA", "AA=A", "AA==A", "A===", "AAA*", "AA AA", "AAAA\n", "AAA=AAAA", "AB==", "=", "AA=", "ÿÿÿÿ"]) {
    assert.equal(base64Decode(bad), null, JSON.stringify(bad));
  }
  assert.deepEqual(base64Decode(""), new Uint8Array(0));
  fc.assert(
    fc.property(fc.string({ maxLength: 50 }), (s) => {
      const out = base64Decode(s);
      if (out) assert.equal(Buffer.from(out).toString("base64").replace(/=+$/, ""), s.replace(/=+$/, ""));
    }),
  );
});
