// Known-answer tests: engineer A's primitives (src/otr/crypto) against values libotr 4.1.1 computed
// (test/vectors/libotr-*.json, written by `make -C test/libotr-helper vectors`; see each file's provenance).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { bytesToBigInt } from "../../src/otr/crypto/bigint.js";
import { DH_G, DH_P, dhSharedSecret } from "../../src/otr/crypto/dh.js";
import { decodeDsaSignature, dsaVerify, fingerprint, formatFingerprint, serializeDsaPublic, serializeDsaPublicBody } from "../../src/otr/crypto/dsa.js";
import { deriveAkeKeys, deriveDataKeys, extraSymmetricKey } from "../../src/otr/crypto/kdf.js";
import { modPowPublic } from "../../src/otr/crypto/modexp.js";
import { aesCtr, hmacSha1, hmacSha256 } from "../../src/otr/crypto/primitives.js";
import { MSG_DATA, encodeOtrMessage, parseOtrText } from "../../src/otr/wire/messages.js";

const VEC = join(dirname(fileURLToPath(import.meta.url)), "..", "vectors");
const load = <T>(name: string): T => JSON.parse(readFileSync(join(VEC, name), "utf8")) as T;
const b = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));
const n = (h: string): bigint => bytesToBigInt(b(h));
const hex = (u: Uint8Array): string => Buffer.from(u).toString("hex");
const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

interface DsaVectors {
  provenance: string;
  keys: { p: string; q: string; g: string; y: string; x: string; pubkey_data: string; fingerprint_raw: string;
    fingerprint: string; signatures: { data: string; sig: string }[] }[];
}

describe("libotr DSA vectors", () => {
  const v = load<DsaVectors>("libotr-dsa.json");
  test("carry a provenance and at least one key", () => {
    assert.match(v.provenance, /libotr 4\.1\.1/);
    assert.ok(v.keys.length >= 1);
  });
  for (const [i, k] of v.keys.entries()) {
    const pub = { p: n(k.p), q: n(k.q), g: n(k.g), y: n(k.y) };
    test(`key ${i}: public serialisation and fingerprint equal libotr's`, () => {
      assert.equal(hex(serializeDsaPublicBody(pub)), k.pubkey_data);
      assert.equal(hex(serializeDsaPublic(pub)), "0000" + k.pubkey_data);
      assert.equal(hex(fingerprint(pub)), k.fingerprint_raw);
      assert.equal(formatFingerprint(fingerprint(pub)), k.fingerprint);
      assert.equal(modPowPublic(pub.g, n(k.x), pub.p), pub.y);
    });
    test(`key ${i}: libotr's signatures verify, and altered ones do not`, () => {
      for (const s of k.signatures) {
        const sig = decodeDsaSignature(b(s.sig));
        assert.ok(sig, "40-byte signature decodes");
        assert.equal(dsaVerify(pub, b(s.data), sig), true, `signature over ${s.data}`);
        const data = b(s.data);
        data[31] = data[31]! ^ 1;
        assert.equal(dsaVerify(pub, data, sig), false, "flipped data bit");
        assert.equal(dsaVerify(pub, b(s.data), { r: sig.r, s: (sig.s + 1n) % pub.q }), false, "altered s");
      }
    });
  }
});

interface KdfVectors {
  provenance: string; probe_msg: string; probe_ctr_ake: string; probe_ctr_data: string;
  cases: { x: string; gx: string; y: string; gy: string; s: string;
    ake: { ssid: string; c_probe: string; cp_probe: string; m1_hmac_probe: string; m2_hmac_probe: string;
      m1p_hmac_probe: string; m2p_hmac_probe: string };
    data: { send_aes_probe: string; rcv_aes_probe: string; send_mac_key: string; rcv_mac_key: string;
      send_mac_hmac_probe: string; extra_key: string } }[];
}

describe("libotr KDF vectors", () => {
  const v = load<KdfVectors>("libotr-kdf.json");
  const probe = ascii(v.probe_msg);
  const zeros = new Uint8Array(32);
  for (const [i, c] of v.cases.entries()) {
    const x = n(c.x), y = n(c.y), gx = n(c.gx), gy = n(c.gy), s = n(c.s);
    test(`case ${i}: DH public keys and shared secret`, () => {
      assert.equal(modPowPublic(DH_G, x, DH_P), gx);
      assert.equal(modPowPublic(DH_G, y, DH_P), gy);
      assert.equal(dhSharedSecret(x, gy), s);
      assert.equal(dhSharedSecret(y, gx), s);
    });
    test(`case ${i}: AKE keys ssid, c, c', m1, m2, m1', m2'`, () => {
      const k = deriveAkeKeys(s);
      assert.equal(hex(k.ssid), c.ake.ssid);
      assert.equal(hex(aesCtr(k.c, b(v.probe_ctr_ake), zeros)), c.ake.c_probe);
      assert.equal(hex(aesCtr(k.cPrime, b(v.probe_ctr_ake), zeros)), c.ake.cp_probe);
      assert.equal(hex(hmacSha256(k.m1, probe)), c.ake.m1_hmac_probe);
      assert.equal(hex(hmacSha256(k.m2, probe)), c.ake.m2_hmac_probe);
      assert.equal(hex(hmacSha256(k.m1Prime, probe)), c.ake.m1p_hmac_probe);
      assert.equal(hex(hmacSha256(k.m2Prime, probe)), c.ake.m2p_hmac_probe);
    });
    test(`case ${i}: data-message keys and extra symmetric key`, () => {
      const k = deriveDataKeys(gx, gy, s);
      if (i === 1) assert.ok(b(c.s).length < 192, "case 1 has a shared secret with a leading zero byte");
      if (i === 2) assert.equal(k.sendAes[0], 0, "case 2 has a sending AES key with a leading zero byte");
      assert.equal(hex(aesCtr(k.sendAes, b(v.probe_ctr_data), zeros)), c.data.send_aes_probe);
      assert.equal(hex(aesCtr(k.recvAes, b(v.probe_ctr_data), zeros)), c.data.rcv_aes_probe);
      assert.equal(hex(k.sendMac), c.data.send_mac_key);
      assert.equal(hex(k.recvMac), c.data.rcv_mac_key);
      assert.equal(hex(hmacSha1(k.sendMac, probe)), c.data.send_mac_hmac_probe);
      assert.equal(hex(k.extraSymmetricKey), c.data.extra_key);
      assert.equal(hex(extraSymmetricKey(s)), c.data.extra_key);
      // the other end derives the mirror image
      const other = deriveDataKeys(gy, gx, s);
      assert.equal(hex(other.sendMac), c.data.rcv_mac_key);
      assert.equal(hex(other.recvMac), c.data.send_mac_key);
    });
  }
});

interface DataVectors {
  provenance: string;
  steps: { sender_state: { our_keyid: number; our_x: string; our_old_x: string | null; their_keyid: number; their_y: string;
    their_old_y: string | null; instance: number; ssid: string }; from: string; plaintext: string;
    wire: { from: string; wire: string }[] }[];
}

/** Just enough of a v3 data-message reader to check libotr's output independently of our wire codec. */
function readDataMessage(line: string) {
  const m = /^\?OTR:([A-Za-z0-9+/=]+)\.$/.exec(line);
  assert.ok(m, "unfragmented encoded message");
  const raw = new Uint8Array(Buffer.from(m[1]!, "base64"));
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let o = 0;
  const u8 = () => raw[o++]!;
  const u16 = () => { const v = dv.getUint16(o); o += 2; return v; };
  const u32 = () => { const v = dv.getUint32(o); o += 4; return v; };
  const data = () => { const l = u32(); const v = raw.slice(o, o + l); o += l; return v; };
  const version = u16(), type = u8(), senderInstance = u32(), receiverInstance = u32(), flags = u8();
  const senderKeyid = u32(), recipientKeyid = u32();
  const nextDh = bytesToBigInt(data());
  const ctr = raw.slice(o, o + 8); o += 8;
  const enc = data();
  const macEnd = o;
  const mac = raw.slice(o, o + 20); o += 20;
  const oldMacKeys = data();
  assert.equal(o, raw.length, "no trailing bytes");
  return { version, type, senderInstance, receiverInstance, flags, senderKeyid, recipientKeyid, nextDh, ctr, enc,
    mac, oldMacKeys, authenticated: raw.slice(0, macEnd) };
}

describe("libotr data-message vectors", () => {
  const v = load<DataVectors>("libotr-data.json");
  let lastCtr: Record<string, bigint> = {};
  for (const [i, st] of v.steps.entries()) {
    test(`step ${i} (${st.from}): MAC verifies and the ciphertext decrypts to the plaintext`, () => {
      assert.equal(st.wire.length, 1);
      const msg = readDataMessage(Buffer.from(st.wire[0]!.wire, "hex").toString("latin1"));
      const ss = st.sender_state;
      assert.equal(msg.version, 3);
      assert.equal(msg.type, 0x03);
      assert.equal(msg.senderInstance, ss.instance);
      const x = msg.senderKeyid === ss.our_keyid ? n(ss.our_x)
        : msg.senderKeyid === ss.our_keyid - 1 && ss.our_old_x ? n(ss.our_old_x) : null;
      const y = msg.recipientKeyid === ss.their_keyid ? n(ss.their_y)
        : msg.recipientKeyid === ss.their_keyid - 1 && ss.their_old_y ? n(ss.their_old_y) : null;
      assert.ok(x !== null && y !== null, "key ids name keys the sender holds");
      assert.equal(msg.nextDh, modPowPublic(DH_G, n(ss.our_x), DH_P), "next DH key is g^our_x");
      const gx = modPowPublic(DH_G, x, DH_P);
      const keys = deriveDataKeys(gx, y, dhSharedSecret(x, y));
      assert.equal(hex(hmacSha1(keys.sendMac, msg.authenticated)), hex(msg.mac));
      const plain = aesCtr(keys.sendAes, msg.ctr, msg.enc);
      const expected = b(st.plaintext);
      assert.equal(hex(plain.slice(0, expected.length)), hex(expected));
      assert.ok(plain.length === expected.length || plain[expected.length] === 0, "text ends at NUL before TLVs");
      const ctr = bytesToBigInt(msg.ctr);
      const slot = `${st.from}:${msg.senderKeyid}:${msg.recipientKeyid}`;
      assert.ok(ctr > (lastCtr[slot] ?? 0n), "counter strictly increases per key pair");
      lastCtr = { ...lastCtr, [slot]: ctr };
      assert.equal(msg.oldMacKeys.length % 20, 0, "revealed MAC keys are 20 bytes each");
    });
    test(`step ${i} (${st.from}): our wire codec parses libotr's data message and re-encodes it byte for byte`, () => {
      const line = Buffer.from(st.wire[0]!.wire, "hex").toString("latin1");
      const mine = readDataMessage(line);
      const parsed = parseOtrText(line);
      assert.equal(parsed.kind, "encoded");
      if (parsed.kind !== "encoded") return;
      const m = parsed.msg;
      assert.equal(m.type, MSG_DATA);
      if (m.type !== MSG_DATA) return;
      assert.equal(m.version, 3);
      assert.equal(m.senderInstance, mine.senderInstance);
      assert.equal(m.receiverInstance, mine.receiverInstance);
      assert.equal(m.flags, mine.flags);
      assert.equal(m.senderKeyId, mine.senderKeyid);
      assert.equal(m.recipientKeyId, mine.recipientKeyid);
      assert.equal(m.nextDh, mine.nextDh);
      assert.equal(hex(m.ctr), hex(mine.ctr));
      assert.equal(hex(m.encrypted), hex(mine.enc));
      assert.equal(hex(m.mac), hex(mine.mac));
      assert.equal(hex(m.oldMacKeys), hex(mine.oldMacKeys));
      if (m.authenticated) assert.equal(hex(m.authenticated), hex(mine.authenticated));
      assert.equal(encodeOtrMessage(m), line);
    });
  }
});
