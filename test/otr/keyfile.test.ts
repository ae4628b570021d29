// libotr key, fingerprint and instance-tag files: known answers from libotr itself, every S-expression atom form,
// round trips, and bad files giving error codes instead of exceptions.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  parseFingerprintFile, parseInstanceTagFile, parsePrivateKeyFile, serializeFingerprintFile, serializeInstanceTagFile,
  serializePrivateKeyFile,
} from "../../src/otr/keyfile.js";
import { parseSexp } from "../../src/otr/wire/sexp.js";
import { fingerprint, formatFingerprint, dsaSign, dsaVerify } from "../../src/otr/crypto/dsa.js";
import {
  LIBOTR_FINGERPRINT_ALICE, LIBOTR_FINGERPRINT_BOB, LIBOTR_FINGERPRINTS, LIBOTR_INSTAGS, LIBOTR_KEYFILE, LIBOTR_KEYFILE_FORMS,
} from "./keyfile-vectors.js";
import { seededEnv } from "./crypto-helpers.js";

// golang.org/x/crypto otr/otr_test.go libOTRPrivateKey (a key file as libotr writes it; Go only checks it imports).
const GO_LIBOTR_KEY = `(privkeys
 (account
(name "foo@example.com")
(protocol prpl-jabber)
(private-key 
 (dsa 
  (p #00FC07ABCF0DC916AFF6E9AE47BEF60C7AB9B4D6B2469E436630E36F8A489BE812486A09F30B71224508654940A835301ACC525A4FF133FC152CC53DCC59D65C30A54F1993FE13FE63E5823D4C746DB21B90F9B9C00B49EC7404AB1D929BA7FBA12F2E45C6E0A651689750E8528AB8C031D3561FECEE72EBB4A090D450A9B7A857#)
  (q #00997BD266EF7B1F60A5C23F3A741F2AEFD07A2081#)
  (g #535E360E8A95EBA46A4F7DE50AD6E9B2A6DB785A66B64EB9F20338D2A3E8FB0E94725848F1AA6CC567CB83A1CC517EC806F2E92EAE71457E80B2210A189B91250779434B41FC8A8873F6DB94BEA7D177F5D59E7E114EE10A49CFD9CEF88AE43387023B672927BA74B04EB6BBB5E57597766A2F9CE3857D7ACE3E1E3BC1FC6F26#)
  (y #0AC8670AD767D7A8D9D14CC1AC6744CD7D76F993B77FFD9E39DF01E5A6536EF65E775FCEF2A983E2A19BD6415500F6979715D9FD1257E1FE2B6F5E1E74B333079E7C880D39868462A93454B41877BE62E5EF0A041C2EE9C9E76BD1E12AE25D9628DECB097025DD625EF49C3258A1A3C0FF501E3DC673B76D7BABF349009B6ECF#)
  (x #14D0345A3562C480A039E3C72764F72D79043216#)
  )
 )
 )
)`;

function fps(text: string): string[] {
  const r = parsePrivateKeyFile(text);
  assert.ok(r.ok, r.ok ? "" : JSON.stringify(r.error));
  return r.keys.map((k) => `${k.account}|${k.protocol}|${formatFingerprint(fingerprint(k.key))}`);
}

test("known answer: libotr's key file gives libotr's fingerprints (hex form and the other atom forms)", () => {
  const expected = [`alice@irc.example|irc|${LIBOTR_FINGERPRINT_ALICE}`, `bob "the" builder|prpl-jabber|${LIBOTR_FINGERPRINT_BOB}`];
  assert.deepEqual(fps(LIBOTR_KEYFILE), expected);
  assert.deepEqual(fps(LIBOTR_KEYFILE_FORMS), expected);
  assert.equal(fps(GO_LIBOTR_KEY).length, 1);
});

test("written key files read back identically and keep libotr's layout", () => {
  const r = parsePrivateKeyFile(LIBOTR_KEYFILE);
  assert.ok(r.ok);
  if (!r.ok) return;
  assert.equal(serializePrivateKeyFile(r.keys), LIBOTR_KEYFILE, "byte-identical to what libotr wrote");
  const odd = [{ ...r.keys[0]!, account: 'ünï "code"\tnick\\', protocol: "irc net" }];
  const back = parsePrivateKeyFile(serializePrivateKeyFile(odd));
  assert.ok(back.ok);
  if (back.ok) assert.deepEqual(back.keys, odd);
  // and the key still signs
  const k = r.keys[0]!.key;
  const env = seededEnv("kf");
  const h = env.random(32);
  assert.ok(dsaVerify(k, h, dsaSign(k, h, env)));
});

test("bad key files give error codes", () => {
  const code = (t: string) => { const r = parsePrivateKeyFile(t); return r.ok ? "ok" : r.error.code; };
  assert.equal(code(""), "sexp-syntax");
  assert.equal(code("(privkeys"), "sexp-syntax");
  assert.equal(code("(privkeys) junk"), "sexp-syntax");
  assert.equal(code("(privkeys)"), "ok");
  assert.equal(code("(pubkeys)"), "not-privkeys");
  assert.equal(code("(privkeys (acount))"), "bad-account");
  assert.equal(code("(privkeys (account (name a) (protocol b)))"), "bad-account");
  assert.equal(code("(privkeys (account (name a) (protocol b) (private-key (rsa (n #01#)))))"), "bad-key");
  assert.equal(code(LIBOTR_KEYFILE.replace(/\(x #[0-9A-F]+#\)/, "")), "bad-key");
  assert.equal(code(LIBOTR_KEYFILE.replace(/\(x #([0-9A-F]+)([0-9A-F])#\)/, (_m, a: string, b: string) => `(x #${a}${b === "0" ? "1" : "0"}#)`)), "key-mismatch");
  assert.equal(code(LIBOTR_KEYFILE.replace(/\(x #([0-9A-F]+)#\)/, "(x #$1F#)")), "sexp-syntax"); // odd hex digits
  assert.equal(code("(".repeat(100) + ")".repeat(100)), "sexp-syntax");
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => { parsePrivateKeyFile(s); parsePrivateKeyFile("(privkeys " + s + ")"); }));
  fc.assert(fc.property(fc.nat({ max: LIBOTR_KEYFILE.length }), (cut) => {
    const r = parsePrivateKeyFile(LIBOTR_KEYFILE.slice(0, cut));
    assert.equal(r.ok && cut < LIBOTR_KEYFILE.length - 2, false);
  }), { numRuns: 200 });
});

test("S-expression atoms: escapes, verbatim, hints", () => {
  const r = parseSexp('(a "x\\n\\t\\101\\x41\\"\\\\" 3:a b [hint]tok #01 02# |AQI=|)');
  assert.ok(r.ok);
  if (!r.ok || !Array.isArray(r.value)) return;
  const atoms = r.value.map((a) => Buffer.from(a as Uint8Array).toString("latin1"));
  assert.deepEqual(atoms, ["a", 'x\n\tAA"\\', "a b", "tok", "\x01\x02", "\x01\x02"]);
});

test("known answer: libotr's fingerprint file; round trip; malformed lines reported and skipped", () => {
  const { entries, errors } = parseFingerprintFile(LIBOTR_FINGERPRINTS);
  assert.deepEqual(errors, []);
  assert.deepEqual(entries.map((e) => [e.username, e.account, e.protocol, e.trust]), [
    ["bob", "alice@irc.example", "irc", ""],
    ["bob", "alice@irc.example", "irc", "verified"],
    ["carol", "alice@irc.example", "irc", "smp"],
  ]);
  assert.equal(Buffer.from(entries[1]!.fingerprint).toString("hex"), "010e1b2835424f5c697683909daab7c4d1deebf8");
  assert.equal(serializeFingerprintFile(entries), LIBOTR_FINGERPRINTS);
  const bad = parseFingerprintFile("a\tb\tc\n" + "a\tb\tc\tzz\n" + "a\tb\tc\t" + "g".repeat(40) + "\n" + "a\tb\tc\t" + "0".repeat(40) + "\r\n");
  assert.deepEqual(bad.errors, [{ line: 1, code: "missing-field" }, { line: 2, code: "bad-length" }, { line: 3, code: "bad-hex" }]);
  assert.equal(bad.entries.length, 1);
  assert.equal(bad.entries[0]!.trust, "");
  assert.throws(() => serializeFingerprintFile([{ ...entries[0]!, username: "a\tb" }]), RangeError);
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => { parseFingerprintFile(s); }));
});

test("known answer: libotr's instance tag file; round trip; bad tags reported", () => {
  const { entries, errors } = parseInstanceTagFile(LIBOTR_INSTAGS);
  assert.deepEqual(errors, []);
  assert.deepEqual(entries, [{ account: "alice@irc.example", protocol: "irc", instanceTag: 0x0b694c1a }]);
  const again = parseInstanceTagFile(serializeInstanceTagFile(entries));
  assert.deepEqual(again.entries, entries);
  const bad = parseInstanceTagFile("a\tb\t000000ff\na\tb\txyz\na\tb\n");
  assert.deepEqual(bad.errors.map((e) => e.code), ["bad-instance-tag", "bad-hex", "missing-field"]);
  assert.throws(() => serializeInstanceTagFile([{ account: "a", protocol: "b", instanceTag: 5 }]), RangeError);
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => { parseInstanceTagFile(s); }));
});
