// `keys import|export`: libotr key and fingerprint files in and out of the store. The key file under test
// was written by libotr 4.1.1 itself (test/vectors/libotr-dsa.json), so "fingerprint after import equals
// libotr's" is checked against libotr's own answer.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import {
  decodeStoredOtrKey, encodeStoredOtrKey, exportIdentity, importIdentity, KeysCliError, type KeysCliErrorCode,
} from "../../src/bridge/keys-cli.js";
import { parseFingerprintFile, parsePrivateKeyFile } from "../../src/otr/keyfile.js";
import { dsaPublicKey, fingerprint, formatFingerprint } from "../../src/otr/crypto/dsa.js";
import { MemoryStore } from "../../src/store/memory.js";

interface VectorKey { account: string; protocol: string; fingerprint: string; fingerprint_raw: string; libotr_key_file: string }
const vectors = JSON.parse(readFileSync(new URL("../vectors/libotr-dsa.json", import.meta.url), "utf8")) as { keys: VectorKey[] };
const [K0, K1] = vectors.keys as [VectorKey, VectorKey];
const keyFileText = (k: VectorKey) => Buffer.from(k.libotr_key_file, "hex").toString("utf8");

const U = "@alice:example.org";
const N = "libera";
let dir: string;
before(() => { dir = mkdtempSync(join(tmpdir(), "keys-cli-")); });
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, `${name}-${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, text);
  return p;
}

async function rejectsWith(p: Promise<unknown>, code: KeysCliErrorCode): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof KeysCliError && e.code === code);
}

/** Both vector keys in one file, as pidgin keeps one file for all accounts. */
function twoAccountFile(): string {
  const a = keyFileText(K0).trim(), b = keyFileText(K1).trim();
  // Each file is "(privkeys <account>)": splice the second account into the first list.
  return a.slice(0, a.lastIndexOf(")")) + b.slice(b.indexOf("(account"), b.lastIndexOf(")")) + ")\n";
}

describe("keys import", () => {
  test("a libotr key file: stored, and its fingerprint is the one libotr computed", async () => {
    const store = new MemoryStore();
    const res = await importIdentity({ userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)) }, { store, readFile });
    assert.equal(res.fingerprint, K0.fingerprint);
    assert.equal(res.key, "imported");
    assert.deepEqual([res.account, res.protocol], [K0.account, K0.protocol]);
    const stored = decodeStoredOtrKey((await store.getOtrPrivateKey(U, N))!);
    assert.ok(stored);
    assert.equal(Buffer.from(fingerprint(dsaPublicKey(stored.key))).toString("hex"), K0.fingerprint_raw);
    assert.equal(stored.account, K0.account);
  });

  test("importing the same key again is harmless; a different key is refused and the first kept", async () => {
    const store = new MemoryStore();
    const path = file("key", keyFileText(K0));
    await importIdentity({ userId: U, networkId: N, privateKeyFile: path }, { store, readFile });
    const again = await importIdentity({ userId: U, networkId: N, privateKeyFile: path }, { store, readFile });
    assert.equal(again.key, "already-present");
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K1)) }, { store, readFile }), "key-exists");
    const kept = decodeStoredOtrKey((await store.getOtrPrivateKey(U, N))!)!;
    assert.equal(formatFingerprint(fingerprint(dsaPublicKey(kept.key))), K0.fingerprint);
    // Another network of the same user is another identity slot.
    const other = await importIdentity({ userId: U, networkId: "oftc", privateKeyFile: file("key", keyFileText(K1)) }, { store, readFile });
    assert.equal(other.fingerprint, K1.fingerprint);
  });

  test("several accounts: --account chooses, none or an unknown one is an error", async () => {
    const path = file("keys", twoAccountFile());
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: path }, { store: new MemoryStore(), readFile }), "ambiguous-account");
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: path, account: "nobody@example.org" }, { store: new MemoryStore(), readFile }), "no-such-account");
    const res = await importIdentity({ userId: U, networkId: N, privateKeyFile: path, account: K1.account }, { store: new MemoryStore(), readFile });
    assert.equal(res.fingerprint, K1.fingerprint);
  });

  test("bad or missing files change nothing", async () => {
    const store = new MemoryStore();
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: join(dir, "missing") }, { store, readFile }), "unreadable-file");
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: file("bad", "(privkeys (account") }, { store, readFile }), "bad-key-file");
    await rejectsWith(importIdentity({ userId: U, networkId: N, privateKeyFile: file("empty", "(privkeys)") }, { store, readFile }), "bad-key-file");
    await rejectsWith(
      importIdentity({ userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)), fingerprintsFile: join(dir, "missing") }, { store, readFile }),
      "unreadable-file",
    );
    assert.equal(await store.getOtrPrivateKey(U, N), null);
  });

  test("fingerprints: any non-empty libotr trust is verified, smp stays smp, nicks are folded, other accounts left out", async () => {
    const store = new MemoryStore();
    const fp = (c: string) => c.repeat(40);
    const lines = [
      `Bob[1]\t${K0.account}\t${K0.protocol}\t${fp("a")}\tverified`, // pidgin, manual compare
      `carol\t${K0.account}\t${K0.protocol}\t${fp("b")}\tsmp`,
      `dave\t${K0.account}\t${K0.protocol}\t${fp("c")}\tmanual`, // irssi, manual compare
      `eve\t${K0.account}\t${K0.protocol}\t${fp("d")}\t`,
      `frank\t${K0.account}\t${K0.protocol}\t${fp("e")}`,
      `zed\tsomeone-else@example.org\t${K0.protocol}\t${fp("f")}\tverified`,
      `zed\t${K0.account}\tprpl-jabber\t${fp("f")}\tverified`,
      `broken\t${K0.account}\t${K0.protocol}\tnothex`,
    ].join("\n") + "\n";
    const res = await importIdentity(
      { userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)), fingerprintsFile: file("fps", lines) },
      { store, readFile, now: () => 42 },
    );
    assert.deepEqual(res.fingerprints, { recorded: 5, verified: 3, otherAccounts: 2, malformedLines: [8] });
    const got = (await store.listFingerprints(U, N)).map((r) => [r.peerNick, r.fingerprint[0], r.trust, r.verifiedBy, r.firstSeen]);
    assert.deepEqual(got.sort(), [
      ["bob{1}", "a", "verified", "manual", 42],
      ["carol", "b", "verified", "smp", 42],
      ["dave", "c", "verified", "manual", 42],
      ["eve", "d", "unverified", null, 42],
      ["frank", "e", "unverified", null, 42],
    ]);
  });

  test("an imported verification upgrades a fingerprint the bridge had only seen", async () => {
    const store = new MemoryStore();
    const fpHex = "0123456789abcdef0123456789abcdef01234567";
    await store.putFingerprint({ userId: U, networkId: N, peerNick: "bob", fingerprint: fpHex, trust: "unverified", verifiedBy: null, firstSeen: 1, lastSeen: 2 });
    await importIdentity(
      { userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)), fingerprintsFile: file("fps", `bob\t${K0.account}\t${K0.protocol}\t${fpHex}\tsmp\n`) },
      { store, readFile, now: () => 99 },
    );
    assert.deepEqual(await store.listFingerprints(U, N), [
      { userId: U, networkId: N, peerNick: "bob", fingerprint: fpHex, trust: "verified", verifiedBy: "smp", firstSeen: 1, lastSeen: 2 },
    ]);
  });
});

describe("keys export", () => {
  test("round trip: exported files read back as the same key and the same trust, created 0600", async () => {
    const store = new MemoryStore();
    await importIdentity({ userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)) }, { store, readFile });
    const fpA = "a".repeat(40), fpB = "b".repeat(40), fpC = "c".repeat(40);
    await store.putFingerprint({ userId: U, networkId: N, peerNick: "bob", fingerprint: fpA, trust: "verified", verifiedBy: "smp", firstSeen: 1, lastSeen: 1 });
    await store.putFingerprint({ userId: U, networkId: N, peerNick: "carol", fingerprint: fpB, trust: "verified", verifiedBy: "manual", firstSeen: 1, lastSeen: 1 });
    await store.putFingerprint({ userId: U, networkId: N, peerNick: "dave", fingerprint: fpC, trust: "unverified", verifiedBy: null, firstSeen: 1, lastSeen: 1 });
    const keyOut = join(dir, "out.private_key"), fpOut = join(dir, "out.fingerprints");
    const res = await exportIdentity(
      { userId: U, networkId: N, privateKeyFile: keyOut, fingerprintsFile: fpOut, account: "alice@irc.libera.chat", protocol: "prpl-irc" },
      { store, writeFile },
    );
    assert.deepEqual(res, { account: "alice@irc.libera.chat", protocol: "prpl-irc", fingerprint: K0.fingerprint, fingerprints: 3 });
    assert.equal(statSync(keyOut).mode & 0o777, 0o600);
    assert.equal(statSync(fpOut).mode & 0o777, 0o600);

    const keys = parsePrivateKeyFile(readFileSync(keyOut, "utf8"));
    assert.ok(keys.ok);
    assert.equal(keys.keys.length, 1);
    assert.equal(formatFingerprint(fingerprint(dsaPublicKey(keys.keys[0]!.key))), K0.fingerprint);
    assert.equal(keys.keys[0]!.account, "alice@irc.libera.chat");
    const fps = parseFingerprintFile(readFileSync(fpOut, "utf8"));
    assert.deepEqual(fps.errors, []);
    assert.deepEqual(fps.entries.map((e) => [e.username, e.account, e.protocol, Buffer.from(e.fingerprint).toString("hex"), e.trust]), [
      ["bob", "alice@irc.libera.chat", "prpl-irc", fpA, "smp"],
      ["carol", "alice@irc.libera.chat", "prpl-irc", fpB, "verified"],
      ["dave", "alice@irc.libera.chat", "prpl-irc", fpC, ""],
    ]);

    // And back in: a second bridge user gets the same identity and the same trust.
    const store2 = new MemoryStore();
    const back = await importIdentity(
      { userId: "@alice2:example.org", networkId: N, privateKeyFile: keyOut, fingerprintsFile: fpOut },
      { store: store2, readFile },
    );
    assert.equal(back.fingerprint, K0.fingerprint);
    assert.deepEqual((await store2.listFingerprints("@alice2:example.org", N)).map((r) => [r.peerNick, r.trust, r.verifiedBy]), [
      ["bob", "verified", "smp"], ["carol", "verified", "manual"], ["dave", "unverified", null],
    ]);
  });

  test("defaults to the stored account names; never overwrites; no key is an error", async () => {
    const store = new MemoryStore();
    await importIdentity({ userId: U, networkId: N, privateKeyFile: file("key", keyFileText(K0)) }, { store, readFile });
    const out = join(dir, "default.private_key");
    const res = await exportIdentity({ userId: U, networkId: N, privateKeyFile: out }, { store, writeFile });
    assert.deepEqual([res.account, res.protocol, res.fingerprints], [K0.account, K0.protocol, 0]);
    await rejectsWith(exportIdentity({ userId: U, networkId: N, privateKeyFile: out }, { store, writeFile }), "file-exists");
    await rejectsWith(exportIdentity({ userId: U, networkId: "oftc", privateKeyFile: join(dir, "x") }, { store, writeFile }), "no-key");
  });

  test("stored key bytes round trip", () => {
    const parsed = parsePrivateKeyFile(keyFileText(K1));
    assert.ok(parsed.ok);
    const key = parsed.keys[0]!.key;
    const back = decodeStoredOtrKey(encodeStoredOtrKey(key));
    assert.ok(back);
    assert.deepEqual(back.key, key);
    assert.equal(decodeStoredOtrKey(new TextEncoder().encode("garbage")), null);
  });
});
