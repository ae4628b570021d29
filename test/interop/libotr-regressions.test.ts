// Regression tests, against real libotr traffic, for bugs other OTR implementations shipped:
// - arlolra/otr (otr.js) stores the receive counter before checking the MAC, so one forged message with a high
//   counter blocks every genuine one after it;
// - replayed data messages must not be shown twice;
// - libotr does not range-check the next DH key carried by data messages (only the AKE's): we must, and a
//   rejected message must leave the session able to read the next genuine one;
// - python-potr / otr.js dropped leading zeros of MPIs and AES keys (covered by the KDF vectors' leading-zero
//   cases in test/otr/vectors.test.ts and by the 2,000-AKE soak).
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { bytesToBigInt, encodeMpi, concatBytes } from "../../src/otr/crypto/bigint.js";
import { DH_G, DH_P, dhSharedSecret } from "../../src/otr/crypto/dh.js";
import { deriveDataKeys } from "../../src/otr/crypto/kdf.js";
import { modPowPublic } from "../../src/otr/crypto/modexp.js";
import { hmacSha1 } from "../../src/otr/crypto/primitives.js";
import { ensureHelperBuilt, injected, receivedTexts, type LibotrDhState } from "../harness/libotr.js";
import { Link, OUR_NAME, libOfType, ourKey, ourOfType } from "./link.js";

const TIMEOUT = 300_000;

async function secureLink(): Promise<Link> {
  const link = await Link.open({ version: 3 });
  await link.fromOurs(link.conv.startAke());
  const evs = link.take();
  assert.equal(ourOfType(evs.ours, "gone-secure").length, 1);
  assert.equal(libOfType(evs.lib, "gone_secure").length, 1);
  return link;
}

/** A v3 data message split into its fields (spec "Data Message"). */
function splitData(line: string) {
  const m = /^\?OTR:([A-Za-z0-9+/=]+)\.$/.exec(line);
  assert.ok(m, "libotr sent one unfragmented data message");
  const raw = new Uint8Array(Buffer.from(m[1]!, "base64"));
  const dv = new DataView(raw.buffer, raw.byteOffset);
  let o = 3 + 4 + 4 + 1; // version, type, instance tags, flags
  const senderKeyid = dv.getUint32(o), recipientKeyid = dv.getUint32(o + 4);
  o += 8;
  const dhStart = o;
  const dhLen = dv.getUint32(o);
  o += 4 + dhLen;
  const afterDh = o;
  o += 8; // ctr
  o += 4 + dv.getUint32(o); // encrypted message
  const macAt = o;
  return { raw, senderKeyid, recipientKeyid, dhStart, afterDh, macAt };
}
const wrap = (raw: Uint8Array) => `?OTR:${Buffer.from(raw).toString("base64")}.`;
const n = (h: string) => bytesToBigInt(new Uint8Array(Buffer.from(h, "hex")));

/** Re-MAC a libotr data message with libotr's own sending MAC key, after replacing its next DH key. */
function withNextDh(line: string, st: LibotrDhState, nextDh: bigint): string {
  const d = splitData(line);
  const x = d.senderKeyid === st.our_keyid ? n(st.our_x) : n(st.our_old_x!);
  const y = d.recipientKeyid === st.their_keyid ? n(st.their_y) : n(st.their_old_y!);
  const keys = deriveDataKeys(modPowPublic(DH_G, x, DH_P), y, dhSharedSecret(x, y));
  const authed = concatBytes(d.raw.slice(0, d.dhStart), encodeMpi(nextDh), d.raw.slice(d.afterDh, d.macAt));
  const mac = hmacSha1(keys.sendMac, authed);
  return wrap(concatBytes(authed, mac, d.raw.slice(d.macAt + 20)));
}

describe("regressions of other implementations, against libotr traffic", { timeout: TIMEOUT }, () => {
  before(() => { ensureHelperBuilt(); ourKey(); });

  test("a forged message (bad MAC) does not consume the counter: the genuine one after it is read", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const [line] = injected(await link.lib.send(OUR_NAME, "genuine"));
      const d = splitData(line!);
      for (const at of [d.macAt, d.macAt - 1 /* last ciphertext byte */]) {
        const forged = d.raw.slice();
        forged[at] = forged[at]! ^ 0x01;
        const r = link.conv.receive(wrap(forged));
        assert.deepEqual(ourOfType(r.events, "received"), [], "forged message not shown");
        assert.ok(r.events.some((e) => e.type === "malformed" || e.type === "unreadable"), `rejection reported: ${JSON.stringify(r.events)}`);
      }
      const ok = link.conv.receive(line!);
      assert.deepEqual(ourOfType(ok.events, "received").map((e) => e.text), ["genuine"]);
      // and a replay of it is refused
      const again = link.conv.receive(line!);
      assert.deepEqual(ourOfType(again.events, "received"), [], "replay not shown twice");
    } finally { await link.close(); }
  });

  for (const [label, bad] of [["1", 1n], ["0", 0n], ["p-1", DH_P - 1n], ["p", DH_P]] as const) {
    test(`a correctly MACed data message whose next DH key is ${label} is rejected and changes nothing`, { timeout: TIMEOUT }, async () => {
      const link = await secureLink();
      try {
        // one round trip so both sides hold a current key pair
        await link.fromOurs(link.conv.send("hi"));
        await link.fromLib(await link.lib.send(OUR_NAME, "hello"));
        link.take();
        const st = await link.lib.dhState(OUR_NAME);
        const [line] = injected(await link.lib.send(OUR_NAME, "poisoned"));
        const r = link.conv.receive(withNextDh(line!, st, bad));
        assert.deepEqual(ourOfType(r.events, "received"), [], "message with a bad next DH key not shown");
        assert.ok(r.events.some((e) => "code" in e && e.code === "bad-dh-range"), `rejected as bad-dh-range: ${JSON.stringify(r.events)}`);
        // the genuine message (same counter) still reads, so the forged one changed no state
        const ok = link.conv.receive(line!);
        assert.deepEqual(ourOfType(ok.events, "received").map((e) => e.text), ["poisoned"]);
        // and the conversation keeps working both ways (key rotation after the genuine message)
        await link.fromOurs(link.conv.send("still here"));
        const evs = link.take();
        assert.deepEqual(receivedTexts(evs.lib), ["still here"]);
      } finally { await link.close(); }
    });
  }

  test("control: the re-MAC helper itself produces messages we accept when the next DH key is unchanged", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      await link.fromOurs(link.conv.send("hi"));
      await link.fromLib(await link.lib.send(OUR_NAME, "hello"));
      link.take();
      const st = await link.lib.dhState(OUR_NAME);
      const [line] = injected(await link.lib.send(OUR_NAME, "same key"));
      const d = splitData(line!);
      const dh = bytesToBigInt(d.raw.slice(d.dhStart + 4, d.afterDh));
      const r = link.conv.receive(withNextDh(line!, st, dh));
      assert.deepEqual(ourOfType(r.events, "received").map((e) => e.text), ["same key"]);
    } finally { await link.close(); }
  });
});
