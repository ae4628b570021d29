// libotr's files, round-tripped through libotr itself: private keys we write are read by libotr with the same
// fingerprint (and libotr then authenticates with them), keys libotr writes are read by us with libotr's
// fingerprint; likewise instance-tag and fingerprint files.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dsaPublicKey, fingerprint, formatFingerprint, generateDsaKey } from "../../src/otr/crypto/dsa.js";
import {
  parseFingerprintFile, parseInstanceTagFile, parsePrivateKeyFile, serializeFingerprintFile, serializeInstanceTagFile,
  serializePrivateKeyFile,
} from "../../src/otr/keyfile.js";
import { LibotrPeer, ensureHelperBuilt, helperFingerprints, helperGenKey, unhex } from "../harness/libotr.js";
import { Link, LIB_NAME, OUR_NAME, hex, libOfType, normFp, ourOfType } from "./link.js";

const TIMEOUT = 300_000;
let dir = "";
before(() => { ensureHelperBuilt(); dir = mkdtempSync(join(tmpdir(), "otr-keyfile-")); });
after(() => { rmSync(dir, { recursive: true, force: true }); });

describe("libotr key files", { timeout: TIMEOUT }, () => {
  test("a private key file we write is read by libotr with the same fingerprints (several accounts, odd names)", () => {
    const accounts = [
      { account: "bob@irc.example.org", protocol: "prpl-irc", key: generateDsaKey() },
      { account: "Zoë \"the nick\" (x)", protocol: "irc", key: generateDsaKey() },
    ];
    const file = join(dir, "ours.private_key");
    writeFileSync(file, serializePrivateKeyFile(accounts));
    const lib = helperFingerprints(file);
    assert.equal(lib.length, 2);
    for (const a of accounts) {
      const l = lib.find((x) => x.account === a.account && x.protocol === a.protocol);
      assert.ok(l, `libotr read account ${a.account}: ${JSON.stringify(lib)}`);
      assert.equal(l.fp, formatFingerprint(fingerprint(dsaPublicKey(a.key))));
    }
  });

  test("a private key file libotr writes is read by us with libotr's fingerprint", () => {
    const file = join(dir, "libotr.private_key");
    const lib = helperGenKey(file, "carol@example.net", "prpl-irc");
    const parsed = parsePrivateKeyFile(readFileSync(file, "utf8"));
    assert.ok(parsed.ok, JSON.stringify(!parsed.ok && parsed.error));
    assert.equal(parsed.keys.length, 1);
    assert.equal(parsed.keys[0]!.account, "carol@example.net");
    assert.equal(parsed.keys[0]!.protocol, "prpl-irc");
    assert.equal(formatFingerprint(fingerprint(dsaPublicKey(parsed.keys[0]!.key))), lib.fp);
    // and what we write back from it is byte-for-byte what libotr wrote
    assert.equal(serializePrivateKeyFile(parsed.keys), readFileSync(file, "utf8"));
  });

  test("libotr authenticates with a key we wrote: the AKE shows that key's fingerprint and libotr's signatures verify", { timeout: TIMEOUT }, async () => {
    const key = generateDsaKey();
    const file = join(dir, "for-libotr.private_key");
    writeFileSync(file, serializePrivateKeyFile([{ account: LIB_NAME, protocol: "irc", key }]));
    const link = await Link.open({ version: 3, libotr: { keyFile: file } });
    try {
      assert.equal(link.lib.fingerprintRaw, hex(fingerprint(dsaPublicKey(key))));
      await link.fromOurs(link.conv.startAke());
      const evs = link.take();
      const gs = ourOfType(evs.ours, "gone-secure");
      assert.equal(gs.length, 1);
      assert.equal(normFp(gs[0]!.fingerprint), hex(fingerprint(dsaPublicKey(key))));
      assert.equal(libOfType(evs.lib, "gone_secure").length, 1);
    } finally { await link.close(); }
  });

  test("instance-tag files: libotr reads ours, we read libotr's", { timeout: TIMEOUT }, async () => {
    const keyFile = join(dir, "tags.private_key");
    helperGenKey(keyFile, "alice", "irc");
    const ours = join(dir, "ours.instance_tags");
    writeFileSync(ours, serializeInstanceTagFile([{ account: "alice", protocol: "irc", instanceTag: 0x1234abcd }]));
    const p = await LibotrPeer.start({ account: "alice", protocol: "irc", keyFile, instagFile: ours });
    try {
      assert.equal(p.instag, 0x1234abcd);
    } finally { await p.close(); }
    // libotr's own file (written by genkey in serve mode)
    const p2 = await LibotrPeer.start({ account: "first", protocol: "irc" });
    const libFile = join(dir, "libotr.instance_tags");
    const keyFile2 = join(dir, "dave.private_key");
    try {
      await p2.cmd("account", "dave", "irc");
      const evs = await p2.cmd("genkey", keyFile2, libFile);
      const tag = (evs.find((e) => e.ev === "key") as { instag: number }).instag;
      const parsed = parseInstanceTagFile(readFileSync(libFile, "utf8"));
      assert.deepEqual(parsed.errors, []);
      // libotr writes every tag of the userstate: the first account's and dave's
      assert.deepEqual(parsed.entries.map((e) => e.account).sort(), ["dave", "first"]);
      assert.deepEqual(parsed.entries.find((e) => e.account === "dave"), { account: "dave", protocol: "irc", instanceTag: tag });
    } finally { await p2.close(); }
  });

  test("fingerprint files: libotr reads ours (with trust), we read libotr's after an AKE", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ version: 3 });
    try {
      await link.fromOurs(link.conv.startAke());
      const evs = link.take();
      const ourFp = libOfType(evs.lib, "gone_secure")[0]!.fp_raw!;
      await link.lib.cmd("settrust", OUR_NAME, ourFp, "smp");
      const libFile = join(dir, "libotr.fingerprints");
      await link.lib.cmd("writefps", libFile);
      const parsed = parseFingerprintFile(readFileSync(libFile, "utf8"));
      assert.deepEqual(parsed.errors, []);
      assert.deepEqual(parsed.entries.map((e) => [e.username, e.account, e.protocol, hex(e.fingerprint), e.trust]),
        [[OUR_NAME, LIB_NAME, "irc", ourFp, "smp"]]);
    } finally { await link.close(); }

    const file = join(dir, "ours.fingerprints");
    const fpA = new Uint8Array(20).fill(0xab), fpB = new Uint8Array(20).map((_, i) => i);
    writeFileSync(file, serializeFingerprintFile([
      { username: "erin", account: "alice", protocol: "irc", fingerprint: fpA, trust: "verified" },
      { username: "erin", account: "alice", protocol: "irc", fingerprint: fpB, trust: "" },
      { username: "frank", account: "alice", protocol: "irc", fingerprint: fpB, trust: "manual" },
    ]));
    const p = await LibotrPeer.start({ account: "alice" });
    try {
      const got = libOfType(await p.cmd("readfps", file), "fpentry");
      const rows = got.map((e) => [unhex(e.peer), unhex(e.account), unhex(e.protocol), e.fp_raw, unhex(e.trust)]).sort();
      assert.deepEqual(rows, [
        ["erin", "alice", "irc", hex(fpA), "verified"],
        ["erin", "alice", "irc", hex(fpB), ""],
        ["frank", "alice", "irc", hex(fpB), "manual"],
      ].sort());
    } finally { await p.close(); }
  });

  test("the libotr key files in the DSA vectors parse to the recorded fingerprints", () => {
    const v = JSON.parse(readFileSync(new URL("../vectors/libotr-dsa.json", import.meta.url), "utf8")) as
      { keys: { account: string; libotr_key_file: string; fingerprint: string }[] };
    for (const k of v.keys) {
      const parsed = parsePrivateKeyFile(Buffer.from(k.libotr_key_file, "hex").toString("utf8"));
      assert.ok(parsed.ok);
      assert.equal(parsed.keys[0]!.account, k.account);
      assert.equal(formatFingerprint(fingerprint(dsaPublicKey(parsed.keys[0]!.key))), k.fingerprint);
    }
  });
});
