// The behaviour every Store engine must share (issue 5): run by memory.test.ts, sqlite.test.ts and
// postgres.test.ts against their engine. `make` returns a fresh, empty store; `reopen` (durable engines only)
// closes it and opens the same database again.
import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import type { FingerprintRecord, Store } from "../../src/store/types.js";
import { MAX_CRYPTO_STATE_BYTES } from "../../src/store/validate.js";
import { inboxContract } from "./inbox-suite.js";
import { outboxContract } from "./outbox-suite.js";

export interface EngineUnderTest {
  make(): Promise<Store>;
  reopen?: (s: Store) => Promise<Store>;
}

const U1 = "@alice:example.org";
const U2 = "@bob:example.org";
const NET = "libera";
const NET2 = "oftc";
const FP_A = "0123456789abcdef0123456789abcdef01234567";
const FP_B = "fedcba9876543210fedcba9876543210fedcba98";

export async function rejectsCode(p: Promise<unknown> | (() => Promise<unknown>), code: string): Promise<void> {
  await assert.rejects(typeof p === "function" ? p() : p, (e: unknown) => {
    assert.equal((e as { code?: unknown }).code, code, `expected code ${code}, got ${String((e as Error).stack ?? e)}`);
    assert.ok((e as Error).message.length > 10, "the error says what happened");
    return true;
  });
}

/** A crypto state of `n` bytes that differs per seed and is not all one byte (so a swapped or truncated copy shows). */
function cryptoBlob(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed * 17 + (i >> 8)) & 0xff);
}

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function fp(over: Partial<FingerprintRecord> = {}): FingerprintRecord {
  return { userId: U1, networkId: NET, peerNick: "carol", fingerprint: FP_A, trust: "unverified", verifiedBy: null, firstSeen: 1000, lastSeen: 2000, ...over };
}

export function storeContract(name: string, engine: EngineUnderTest): void {
  describe(`Store contract: ${name}`, () => {
    let open: Store[] = [];
    const make = async () => {
      const s = await engine.make();
      open.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of open) await s.close().catch(() => undefined);
      open = [];
    });

    it("keeps per-network settings, replaces them, lists them by network", async () => {
      const s = await make();
      assert.equal(await s.getUserNetwork(U1, NET), null);
      await s.putUserNetwork({ userId: U1, networkId: NET2, nick: "alice_", otrPolicy: "always", updatedAt: 5 });
      await s.putUserNetwork({ userId: U1, networkId: NET, nick: null, otrPolicy: null, updatedAt: 6 });
      await s.putUserNetwork({ userId: U2, networkId: NET, nick: "bob", otrPolicy: "manual", updatedAt: 7 });
      assert.deepEqual(await s.getUserNetwork(U1, NET2), { userId: U1, networkId: NET2, nick: "alice_", otrPolicy: "always", updatedAt: 5 });
      await s.putUserNetwork({ userId: U1, networkId: NET2, nick: "alice2", otrPolicy: "never", updatedAt: 9 });
      assert.deepEqual(await s.getUserNetwork(U1, NET2), { userId: U1, networkId: NET2, nick: "alice2", otrPolicy: "never", updatedAt: 9 });
      assert.deepEqual((await s.listUserNetworks(U1)).map((u) => u.networkId), [NET, NET2]);
      assert.deepEqual(await s.listUserNetworks("@nobody:x"), []);
    });

    it("rejects malformed settings with invalid-argument and writes nothing", async () => {
      const s = await make();
      await rejectsCode(s.putUserNetwork({ userId: U1, networkId: NET, nick: "a", otrPolicy: "sometimes" as never, updatedAt: 1 }), "invalid-argument");
      await rejectsCode(s.putUserNetwork({ userId: "", networkId: NET, nick: "a", otrPolicy: null, updatedAt: 1 }), "invalid-argument");
      await rejectsCode(s.putUserNetwork({ userId: "@a\0b:x", networkId: NET, nick: "a", otrPolicy: null, updatedAt: 1 }), "invalid-argument");
      await rejectsCode(s.putUserNetwork({ userId: U1, networkId: NET, nick: "a", otrPolicy: null, updatedAt: -1 }), "invalid-argument");
      assert.equal(await s.getUserNetwork(U1, NET), null);
    });

    it("stores IRC passwords per (user, network), replaces and deletes them, independent of settings", async () => {
      const s = await make();
      assert.equal(await s.getIrcPassword(U1, NET), null);
      await s.setIrcPassword(U1, NET, "hunter2 ✓ ünïcode");
      await s.setIrcPassword(U2, NET, "other");
      assert.equal(await s.getIrcPassword(U1, NET), "hunter2 ✓ ünïcode");
      await s.putUserNetwork({ userId: U1, networkId: NET, nick: "a", otrPolicy: null, updatedAt: 1 });
      assert.equal(await s.getIrcPassword(U1, NET), "hunter2 ✓ ünïcode", "saving settings keeps the password");
      await s.setIrcPassword(U1, NET, "new");
      assert.equal(await s.getIrcPassword(U1, NET), "new");
      await s.setIrcPassword(U1, NET, null);
      assert.equal(await s.getIrcPassword(U1, NET), null);
      assert.equal(await s.getIrcPassword(U2, NET), "other");
      await rejectsCode(s.setIrcPassword(U1, NET, ""), "invalid-argument");
    });

    it("stores the first OTR private key and returns it to every later writer", async () => {
      const s = await make();
      assert.equal(await s.getOtrPrivateKey(U1, NET), null);
      const k1 = new Uint8Array([1, 2, 3, 4, 5, 0, 255]);
      const k2 = new Uint8Array([9, 9, 9]);
      assert.deepEqual(await s.putOtrPrivateKeyIfAbsent(U1, NET, k1), k1);
      assert.deepEqual(await s.putOtrPrivateKeyIfAbsent(U1, NET, k2), k1);
      const got = await s.getOtrPrivateKey(U1, NET);
      assert.deepEqual(got, k1);
      got![0] = 77; // callers own what they get back
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k1);
      assert.equal(await s.getOtrPrivateKey(U1, NET2), null);
      assert.equal(await s.getOtrPrivateKey(U2, NET), null);
      await rejectsCode(s.putOtrPrivateKeyIfAbsent(U2, NET, new Uint8Array(0)), "invalid-argument");
    });

    it("keeps its own copy of a private key given as a Buffer (whose slice() is a view, not a copy)", async () => {
      const s = await make();
      const k = new Uint8Array([5, 6, 7, 8]);
      const input = Buffer.from(k);
      const first = await s.putOtrPrivateKeyIfAbsent(U1, NET, input);
      input.fill(0);
      assert.deepEqual(first, k, "the returned key is not the caller's buffer");
      assert.deepEqual(await s.getOtrPrivateKey(U1, NET), k, "changing the caller's buffer after put changes nothing");
      assert.deepEqual(await s.putOtrPrivateKeyIfAbsent(U1, NET, new Uint8Array([1])), k);
    });

    it("lets exactly one of many concurrent key writers win, and all of them see the winner", async () => {
      const s = await make();
      const keys = Array.from({ length: 8 }, (_, i) => new Uint8Array(32).fill(i + 1));
      await Promise.all(keys.map(() => s.getState("warm-up"))); // overlapping writers on a pooled engine
      const results = await Promise.all(keys.map((k) => s.putOtrPrivateKeyIfAbsent(U1, NET, k)));
      const stored = await s.getOtrPrivateKey(U1, NET);
      assert.ok(stored && keys.some((k) => Buffer.from(k).equals(Buffer.from(stored))));
      for (const r of results) assert.deepEqual(r, stored);
    });

    it("keeps instance tags first-writer-wins and inside the OTR range", async () => {
      const s = await make();
      assert.equal(await s.getInstanceTag(U1, NET), null);
      assert.equal(await s.putInstanceTagIfAbsent(U1, NET, 0xffffffff), 0xffffffff);
      assert.equal(await s.putInstanceTagIfAbsent(U1, NET, 0x1234), 0xffffffff);
      assert.equal(await s.getInstanceTag(U1, NET), 0xffffffff);
      assert.equal(await s.putInstanceTagIfAbsent(U2, NET, 0x100), 0x100);
      await rejectsCode(s.putInstanceTagIfAbsent(U1, NET2, 0xff), "invalid-argument");
      await rejectsCode(s.putInstanceTagIfAbsent(U1, NET2, 0x100000000), "invalid-argument");
      await rejectsCode(s.putInstanceTagIfAbsent(U1, NET2, 300.5), "invalid-argument");
      assert.equal(await s.getInstanceTag(U1, NET2), null);
    });

    it("records fingerprints per peer, updates trust, lists them in a stable order", async () => {
      const s = await make();
      await s.putFingerprint(fp({ peerNick: "zed", firstSeen: 1 }));
      await s.putFingerprint(fp({ fingerprint: FP_B, firstSeen: 3000, lastSeen: 3000 }));
      await s.putFingerprint(fp());
      await s.putFingerprint(fp({ userId: U2 }));
      await s.putFingerprint(fp({ networkId: NET2 }));
      assert.deepEqual(
        (await s.listFingerprints(U1, NET)).map((r) => [r.peerNick, r.fingerprint]),
        [["carol", FP_A], ["carol", FP_B], ["zed", FP_A]],
      );
      await s.putFingerprint(fp({ trust: "verified", verifiedBy: "smp", lastSeen: 5000 }));
      const carol = (await s.listFingerprints(U1, NET)).find((r) => r.peerNick === "carol" && r.fingerprint === FP_A);
      assert.deepEqual(carol, fp({ trust: "verified", verifiedBy: "smp", lastSeen: 5000 }));
      assert.equal((await s.listFingerprints(U2, NET))[0]!.trust, "unverified", "another user's trust is separate");
    });

    it("normalises libotr's human fingerprint form and rejects inconsistent trust records", async () => {
      const s = await make();
      await s.putFingerprint(fp({ fingerprint: "01234567 89ABCDEF 01234567 89ABCDEF 01234567" }));
      assert.equal((await s.listFingerprints(U1, NET))[0]!.fingerprint, FP_A);
      await rejectsCode(s.putFingerprint(fp({ fingerprint: "abc" })), "invalid-argument");
      await rejectsCode(s.putFingerprint(fp({ trust: "verified", verifiedBy: null })), "invalid-argument");
      await rejectsCode(s.putFingerprint(fp({ trust: "unverified", verifiedBy: "manual" })), "invalid-argument");
      await rejectsCode(s.putFingerprint(fp({ trust: "trusted" as never })), "invalid-argument");
      assert.equal((await s.listFingerprints(U1, NET)).length, 1);
    });

    it("deletes a fingerprint for one peer or for all peers of (user, network)", async () => {
      const s = await make();
      await s.putFingerprint(fp({ peerNick: "carol" }));
      await s.putFingerprint(fp({ peerNick: "dave" }));
      await s.putFingerprint(fp({ peerNick: "dave", fingerprint: FP_B }));
      await s.putFingerprint(fp({ userId: U2, peerNick: "dave" }));
      await s.deleteFingerprint(U1, NET, FP_A.toUpperCase(), "dave");
      assert.deepEqual((await s.listFingerprints(U1, NET)).map((r) => `${r.peerNick}:${r.fingerprint}`), [`carol:${FP_A}`, `dave:${FP_B}`]);
      await s.deleteFingerprint(U1, NET, FP_A);
      assert.deepEqual((await s.listFingerprints(U1, NET)).map((r) => r.fingerprint), [FP_B]);
      assert.equal((await s.listFingerprints(U2, NET)).length, 1, "other users untouched");
    });

    it("maps DM rooms both ways, moves a key to a new room, refuses a room owned by another DM", async () => {
      const s = await make();
      assert.equal(await s.getDmRoom(U1, NET, "carol"), null);
      assert.equal(await s.findDmByRoom("!a:x"), null);
      await s.putDmRoom(U1, NET, "carol", "!a:x");
      await s.putDmRoom(U1, NET, "carol", "!a:x"); // idempotent
      await s.putDmRoom(U1, NET, "[dave]", "!b:x");
      await s.putDmRoom(U2, NET, "carol", "!c:x");
      assert.equal(await s.getDmRoom(U1, NET, "carol"), "!a:x");
      assert.deepEqual(await s.findDmByRoom("!b:x"), { userId: U1, networkId: NET, foldedNick: "[dave]" });
      await rejectsCode(s.putDmRoom(U1, NET2, "carol", "!c:x"), "room-conflict");
      assert.equal(await s.getDmRoom(U1, NET2, "carol"), null, "a refused mapping writes nothing");
      assert.deepEqual(await s.findDmByRoom("!c:x"), { userId: U2, networkId: NET, foldedNick: "carol" });
      await s.putDmRoom(U1, NET, "carol", "!new:x");
      assert.equal(await s.findDmByRoom("!a:x"), null, "the old room is released");
      assert.deepEqual(await s.findDmByRoom("!new:x"), { userId: U1, networkId: NET, foldedNick: "carol" });
      await s.putDmRoom(U1, NET2, "erin", "!a:x"); // a released room can be reused
      assert.deepEqual((await s.listDmRooms(U1)).map((r) => `${r.networkId}/${r.foldedNick}=${r.roomId}`), [`${NET}/[dave]=!b:x`, `${NET}/carol=!new:x`, `${NET2}/erin=!a:x`]);
      assert.deepEqual((await s.listDmRooms(U1, NET2)).map((r) => r.foldedNick), ["erin"]);
      await s.deleteDmRoom(U1, NET, "carol");
      assert.equal(await s.getDmRoom(U1, NET, "carol"), null);
      assert.equal(await s.findDmByRoom("!new:x"), null);
      await s.deleteDmRoom(U1, NET, "carol"); // deleting nothing is fine
    });

    it("gives a contested room to exactly one of many concurrent DM keys", async () => {
      const s = await make();
      const nicks = ["n0", "n1", "n2", "n3", "n4", "n5"];
      // Warm a connection pool first so the writers really overlap (PostgreSQL: the unique index decides the race).
      await Promise.all(nicks.map(() => s.getState("warm-up")));
      const outcomes = await Promise.allSettled(nicks.map((n) => s.putDmRoom(U1, NET, n, "!contested:x")));
      assert.equal(outcomes.filter((o) => o.status === "fulfilled").length, 1);
      for (const o of outcomes) if (o.status === "rejected") assert.equal((o.reason as { code?: string }).code, "room-conflict");
      const owner = await s.findDmByRoom("!contested:x");
      assert.ok(owner);
      assert.equal(nicks.indexOf(owner.foldedNick), outcomes.findIndex((o) => o.status === "fulfilled"));
      for (const n of nicks) assert.equal(await s.getDmRoom(U1, NET, n), n === owner.foldedNick ? "!contested:x" : null);
    });

    it("keeps one management room per user and finds its owner", async () => {
      const s = await make();
      assert.equal(await s.getManagementRoom(U1), null);
      await s.putManagementRoom(U1, "!m1:x");
      await s.putManagementRoom(U2, "!m2:x");
      assert.equal(await s.getManagementRoom(U1), "!m1:x");
      assert.equal(await s.findManagementRoomOwner("!m2:x"), U2);
      await rejectsCode(s.putManagementRoom(U1, "!m2:x"), "room-conflict");
      assert.equal(await s.getManagementRoom(U1), "!m1:x");
      await s.putManagementRoom(U1, "!m3:x");
      assert.equal(await s.findManagementRoomOwner("!m1:x"), null);
      assert.equal(await s.findManagementRoomOwner("!m3:x"), U1);
    });

    it("maps channels to rooms both ways and lists them per network", async () => {
      const s = await make();
      await s.putChannelRoom(NET, "#otr", "!c1:x");
      await s.putChannelRoom(NET, "#a", "!c2:x");
      await s.putChannelRoom(NET2, "#otr", "!c3:x");
      assert.equal(await s.getChannelRoom(NET, "#otr"), "!c1:x");
      assert.deepEqual(await s.findChannelByRoom("!c3:x"), { networkId: NET2, foldedChannel: "#otr" });
      await rejectsCode(s.putChannelRoom(NET, "#b", "!c3:x"), "room-conflict");
      assert.equal(await s.getChannelRoom(NET, "#b"), null);
      assert.deepEqual((await s.listChannelRooms()).map((r) => `${r.networkId}${r.foldedChannel}`), [`${NET}#a`, `${NET}#otr`, `${NET2}#otr`]);
      assert.deepEqual((await s.listChannelRooms(NET2)).map((r) => r.roomId), ["!c3:x"]);
      await s.putChannelRoom(NET, "#otr", "!c4:x");
      assert.equal(await s.findChannelByRoom("!c1:x"), null);
      await s.deleteChannelRoom(NET, "#otr");
      assert.equal(await s.getChannelRoom(NET, "#otr"), null);
      assert.equal(await s.findChannelByRoom("!c4:x"), null);
    });

    it("stores channel keys per (user, network, channel), replaces and deletes them", async () => {
      const s = await make();
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), null);
      await s.setChannelKey(U1, NET, "#otr", "s3cr3t-✓");
      await s.setChannelKey(U2, NET, "#otr", "bobs-key");
      await s.setChannelKey(U1, NET2, "#otr", "oftc-key");
      await s.setChannelKey(U1, NET, "#other", "other-key");
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "s3cr3t-✓");
      assert.equal(await s.getChannelKey(U2, NET, "#otr"), "bobs-key", "each user has their own key for a channel");
      assert.equal(await s.getChannelKey(U1, NET2, "#otr"), "oftc-key", "the same channel name on another network is another channel");
      assert.equal(await s.getChannelKey(U1, NET, "#other"), "other-key");
      assert.equal(await s.getChannelKey(U2, NET, "#other"), null);
      // The store never folds: "#OTR" is another key than "#otr" (the caller folds with the network's casemapping).
      assert.equal(await s.getChannelKey(U1, NET, "#OTR"), null);
      await s.setChannelKey(U1, NET, "#otr", "replaced");
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "replaced");
      await s.setChannelKey(U1, NET, "#otr", null);
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), null);
      await s.setChannelKey(U1, NET, "#otr", null); // deleting nothing is fine
      assert.equal(await s.getChannelKey(U2, NET, "#otr"), "bobs-key", "deleting one user's key leaves the others");
      assert.equal(await s.getChannelKey(U1, NET2, "#otr"), "oftc-key");
      assert.equal(await s.getChannelKey(U1, NET, "#other"), "other-key");
      // Channel keys, channel rooms and IRC passwords are separate things.
      await s.putChannelRoom(NET, "#other", "!chan:x");
      await s.deleteChannelRoom(NET, "#other");
      assert.equal(await s.getChannelKey(U1, NET, "#other"), "other-key", "unbridging a channel keeps its keys");
      assert.equal(await s.getIrcPassword(U1, NET), null);
    });

    it("accepts a channel key of exactly 100 UTF-8 bytes and the printable punctuation IRC allows", async () => {
      const s = await make();
      const longest = "é".repeat(50); // 100 bytes, 50 UTF-16 units: the limit is in bytes, not characters
      await s.setChannelKey(U1, NET, "#a", longest);
      assert.equal(await s.getChannelKey(U1, NET, "#a"), longest);
      const punct = "!\"#$%&'()*+-./:;<=>?@[\\]^_`{|}~";
      await s.setChannelKey(U1, NET, "#b", punct);
      assert.equal(await s.getChannelKey(U1, NET, "#b"), punct);
    });

    it("rejects channel keys that would break or inject an IRC line with invalid-argument, changing nothing", async () => {
      const s = await make();
      await s.setChannelKey(U1, NET, "#otr", "good");
      const bad: [string, unknown][] = [
        ["empty", ""],
        ["space", "two words"],
        ["tab", "a\tb"],
        ["CR", "a\rb"],
        ["LF", "a\nb"],
        ["CRLF injection", "x\r\nPRIVMSG #otr :owned"],
        ["NUL", "a\0b"],
        ["comma", "k1,k2"],
        ["BEL", "a\x07b"],
        ["DEL", "a\x7fb"],
        ["C1 control", "a\u0085b"],
        ["no-break space", "a\u00a0b"],
        ["ideographic space", "a\u3000b"],
        ["line separator", "a\u2028b"],
        ["lone surrogate", "a\ud800b"],
        ["101 bytes", "x".repeat(101)],
        ["101 bytes in multibyte characters", "x" + "é".repeat(50)],
        ["not a string", 1234],
      ];
      for (const [what, key] of bad) {
        await rejectsCode(s.setChannelKey(U1, NET, "#otr", key as string), "invalid-argument").catch((e: unknown) => {
          throw new Error(`${what} was not refused`, { cause: e });
        });
        await rejectsCode(s.setChannelKey(U2, NET, "#new", key as string), "invalid-argument");
      }
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "good", "a refused key leaves the stored one");
      assert.equal(await s.getChannelKey(U2, NET, "#new"), null, "a refused key creates nothing");
      await rejectsCode(s.setChannelKey(U1, NET, "", "k"), "invalid-argument");
      await rejectsCode(s.setChannelKey(U1, NET, "#a\0b", "k"), "invalid-argument");
      await rejectsCode(s.setChannelKey("", NET, "#otr", "k"), "invalid-argument");
      await rejectsCode(s.setChannelKey(U1, "", "#otr", null), "invalid-argument");
      await rejectsCode(s.getChannelKey(U1, NET, ""), "invalid-argument");
      await rejectsCode(s.getChannelKey(U1, NET, "lone\ud800"), "invalid-argument");
      assert.equal(await s.getChannelKey(U1, NET, "#otr"), "good");
    });

    it("stores crypto state per (owner, device), replaces and deletes it, each device on its own", async () => {
      const s = await make();
      const BOT = "@ircbot:example.org";
      const GHOST = "@irc_carol:example.org";
      assert.equal(await s.getCryptoState(BOT, "BOTDEVICE"), null);
      assert.deepEqual(await s.listCryptoDevices(), []);
      const bot = cryptoBlob(3000, 1);
      const ghostA = cryptoBlob(5000, 2);
      const ghostB = cryptoBlob(64, 3);
      const sameIdOtherOwner = cryptoBlob(70, 4);
      await s.putCryptoState(BOT, "BOTDEVICE", bot);
      await s.putCryptoState(GHOST, "GHOSTA", ghostA);
      await s.putCryptoState(GHOST, "GHOSTB", ghostB);
      await s.putCryptoState(BOT, "GHOSTA", sameIdOtherOwner); // device ids are only unique per owner
      assert.deepEqual(await s.getCryptoState(BOT, "BOTDEVICE"), bot);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTA"), ghostA);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTB"), ghostB);
      assert.deepEqual(await s.getCryptoState(BOT, "GHOSTA"), sameIdOtherOwner, "the same device id under another owner is another device");
      assert.equal(await s.getCryptoState(GHOST, "BOTDEVICE"), null);
      assert.equal(await s.getCryptoState(BOT, "botdevice"), null, "device ids are compared exactly, never folded");
      // Ids that would collide if the store concatenated owner and device.
      await s.putCryptoState("@a:x", "bc", cryptoBlob(10, 5));
      assert.equal(await s.getCryptoState("@a:xb", "c"), null);

      const replaced = cryptoBlob(4000, 6);
      await s.putCryptoState(GHOST, "GHOSTA", replaced);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTA"), replaced, "a put replaces the whole state");
      const shorter = new Uint8Array([42]);
      await s.putCryptoState(GHOST, "GHOSTA", shorter);
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTA"), shorter, "a shorter state leaves nothing of the longer one");
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTB"), ghostB, "replacing one device leaves its owner's other devices");

      await s.deleteCryptoState(GHOST, "GHOSTA");
      assert.equal(await s.getCryptoState(GHOST, "GHOSTA"), null);
      await s.deleteCryptoState(GHOST, "GHOSTA"); // deleting nothing is fine
      await s.deleteCryptoState("@nobody:example.org", "NODEVICE");
      assert.deepEqual(await s.getCryptoState(GHOST, "GHOSTB"), ghostB, "deleting one device leaves the others");
      assert.deepEqual(await s.getCryptoState(BOT, "GHOSTA"), sameIdOtherOwner);
      assert.deepEqual(await s.getCryptoState(BOT, "BOTDEVICE"), bot);
      assert.deepEqual(await s.listCryptoDevices(), [
        { ownerUserId: "@a:x", deviceId: "bc" },
        { ownerUserId: GHOST, deviceId: "GHOSTB" }, // "_" sorts before "b"
        { ownerUserId: BOT, deviceId: "BOTDEVICE" },
        { ownerUserId: BOT, deviceId: "GHOSTA" },
      ]);
      // A crypto state is not an OTR identity, a password or resume state.
      assert.equal(await s.getOtrPrivateKey(BOT, "BOTDEVICE"), null);
      assert.equal(await s.getIrcPassword(BOT, "BOTDEVICE"), null);
    });

    it("keeps an OTR session state per (user, network, peer), replaces and deletes it, and copies it in and out", async () => {
      const s = await make();
      assert.equal(await s.getOtrSession(U1, NET, "carol"), null);
      const a = cryptoBlob(1800, 1), b = cryptoBlob(1700, 2), c = cryptoBlob(900, 3);
      await s.putOtrSession(U1, NET, "carol", a);
      await s.putOtrSession(U1, NET, "dave", b);
      await s.putOtrSession(U1, NET2, "carol", c);
      await s.putOtrSession(U2, NET, "carol", c);
      assert.deepEqual(await s.getOtrSession(U1, NET, "carol"), a);
      assert.deepEqual(await s.getOtrSession(U1, NET, "dave"), b);
      assert.deepEqual(await s.getOtrSession(U1, NET2, "carol"), c);
      assert.equal(await s.getOtrSession(U1, NET, "Carol"), null, "nicks are compared exactly (the caller folds)");
      const input = Buffer.from(cryptoBlob(500, 4));
      await s.putOtrSession(U1, NET, "carol", input);
      input.fill(0);
      const out = await s.getOtrSession(U1, NET, "carol");
      assert.deepEqual(out, cryptoBlob(500, 4), "replaced whole, and the caller's buffer is copied");
      out!.fill(9);
      assert.deepEqual(await s.getOtrSession(U1, NET, "carol"), cryptoBlob(500, 4), "what get returned is a copy");
      await s.deleteOtrSession(U1, NET, "carol");
      await s.deleteOtrSession(U1, NET, "carol");
      assert.equal(await s.getOtrSession(U1, NET, "carol"), null);
      assert.deepEqual(await s.getOtrSession(U1, NET, "dave"), b, "other peers untouched");
      assert.deepEqual(await s.getOtrSession(U2, NET, "carol"), c, "other users untouched");
      await rejectsCode(s.putOtrSession(U1, NET, "carol", new Uint8Array(0)), "invalid-argument");
      await rejectsCode(s.putOtrSession(U1, NET, "carol", new Uint8Array(64 * 1024 + 1)), "invalid-argument");
      await rejectsCode(s.putOtrSession(U1, NET, "a\u0000b", a), "invalid-argument");
      assert.equal(await s.getOtrSession(U1, NET, "carol"), null, "nothing was stored by a refused put");
      if (engine.reopen) {
        const t = await engine.reopen(s);
        open.push(t);
        assert.deepEqual(await t.getOtrSession(U1, NET, "dave"), b, "durable");
      }
    });

    it("copies crypto state in and out: neither the caller's buffer nor the returned one aliases the store", async () => {
      const s = await make();
      const original = cryptoBlob(256, 7);
      const input = Buffer.from(original); // a Buffer, whose slice() is a view, not a copy
      await s.putCryptoState(U1, "DEV", input);
      input.fill(0);
      assert.deepEqual(await s.getCryptoState(U1, "DEV"), original, "changing the caller's buffer after put changes nothing");
      const out = await s.getCryptoState(U1, "DEV");
      assert.ok(out instanceof Uint8Array && !Buffer.isBuffer(out), "a plain Uint8Array comes back on every engine");
      out.fill(1);
      assert.deepEqual(await s.getCryptoState(U1, "DEV"), original, "changing what get returned changes nothing");
      // A view into a larger buffer stores only the view's bytes.
      const big = cryptoBlob(1000, 8);
      await s.putCryptoState(U1, "VIEW", big.subarray(100, 200));
      assert.deepEqual(await s.getCryptoState(U1, "VIEW"), big.slice(100, 200));
    });

    it("lists crypto devices by owner then device, in code-unit order on every engine, without their states", async () => {
      const s = await make();
      const devices: [string, string][] = [
        ["@zed:example.org", "B"], ["@alice:example.org", "b"], ["@Zed:example.org", "A"], ["@alice:example.org", "B"],
        ["@alice:example.org", "ä"], ["@alice:example.org", "A1"], ["@alice:example.org", "A"], ["@ålice:example.org", "X"],
        ["@alice:example.org", "😀"], ["@alice:example.org", "\uffff"],
      ];
      for (const [i, [o, d]] of devices.entries()) await s.putCryptoState(o, d, cryptoBlob(20, i));
      await s.putCryptoState("@alice:example.org", "b", cryptoBlob(30, 99)); // a replace adds no second entry
      const expected = [...devices].sort(([o1, d1], [o2, d2]) => (o1 < o2 ? -1 : o1 > o2 ? 1 : d1 < d2 ? -1 : d1 > d2 ? 1 : 0));
      assert.deepEqual(await s.listCryptoDevices(), expected.map(([ownerUserId, deviceId]) => ({ ownerUserId, deviceId })));
      assert.deepEqual((await s.listCryptoDevices()).slice(0, 2), [
        { ownerUserId: "@Zed:example.org", deviceId: "A" }, // upper case sorts before lower case (no locale collation)
        { ownerUserId: "@alice:example.org", deviceId: "A" },
      ]);
      await s.deleteCryptoState("@zed:example.org", "B");
      assert.equal((await s.listCryptoDevices()).some((d) => d.ownerUserId === "@zed:example.org"), false);
    });

    it("keeps a 1 MiB crypto state intact, and the largest one allowed", async () => {
      const s = await make();
      const mib = cryptoBlob(1024 * 1024, 9);
      await s.putCryptoState(U1, "BIG", mib);
      assert.ok(sameBytes(await s.getCryptoState(U1, "BIG"), mib), "1 MiB round trip");
      const largest = cryptoBlob(MAX_CRYPTO_STATE_BYTES, 10);
      await s.putCryptoState(U1, "LARGEST", largest);
      assert.ok(sameBytes(await s.getCryptoState(U1, "LARGEST"), largest), `${MAX_CRYPTO_STATE_BYTES} bytes round trip`);
      await s.putCryptoState(U1, "BIG", new Uint8Array([1, 2, 3]));
      assert.deepEqual(await s.getCryptoState(U1, "BIG"), new Uint8Array([1, 2, 3]));
    });

    it("rejects a malformed owner, device id or state with invalid-argument, changing nothing", async () => {
      const s = await make();
      const good = cryptoBlob(50, 11);
      await s.putCryptoState(U1, "DEV", good);
      const badOwners: [string, unknown][] = [
        ["empty", ""],
        ["no sigil", "alice:example.org"],
        ["a network id", NET],
        ["a room id", "!room:example.org"],
        ["no server", "@alice"],
        ["empty localpart", "@:example.org"],
        ["empty server", "@alice:"],
        ["space", "@al ice:example.org"],
        ["newline", "@alice:example.org\n"],
        ["NUL", "@alice\0:example.org"],
        ["lone surrogate", "@al\ud800:example.org"],
        ["256 bytes", `@${"a".repeat(243)}:example.org`],
        ["not a string", 42],
      ];
      for (const [what, owner] of badOwners) {
        for (const call of [
          () => s.putCryptoState(owner as string, "DEV", good),
          () => s.getCryptoState(owner as string, "DEV"),
          () => s.deleteCryptoState(owner as string, "DEV"),
        ]) {
          await rejectsCode(call, "invalid-argument").catch((e: unknown) => { throw new Error(`owner ${what} was not refused`, { cause: e }); });
        }
      }
      const badDevices: [string, unknown][] = [
        ["empty", ""],
        ["NUL", "DEV\0ICE"],
        ["lone surrogate", "DEV\udc00"],
        ["256 bytes", "D".repeat(256)],
        ["256 bytes in multibyte characters", "é".repeat(128)],
        ["not a string", null],
      ];
      for (const [what, device] of badDevices) {
        for (const call of [
          () => s.putCryptoState(U1, device as string, good),
          () => s.getCryptoState(U1, device as string),
          () => s.deleteCryptoState(U1, device as string),
        ]) {
          await rejectsCode(call, "invalid-argument").catch((e: unknown) => { throw new Error(`device ${what} was not refused`, { cause: e }); });
        }
      }
      const badStates: [string, unknown][] = [
        ["empty", new Uint8Array(0)],
        ["one byte over the bound", new Uint8Array(MAX_CRYPTO_STATE_BYTES + 1)],
        ["an array of numbers", [1, 2, 3]],
        ["an ArrayBuffer", new ArrayBuffer(8)],
        ["a string", "serialized state"],
        ["null", null],
      ];
      for (const [what, state] of badStates) {
        await rejectsCode(s.putCryptoState(U1, "DEV", state as Uint8Array), "invalid-argument").catch((e: unknown) => { throw new Error(`state ${what} was not refused`, { cause: e }); });
        await rejectsCode(s.putCryptoState(U2, "NEW", state as Uint8Array), "invalid-argument");
      }
      assert.deepEqual(await s.getCryptoState(U1, "DEV"), good, "a refused put leaves the stored state");
      assert.equal(await s.getCryptoState(U2, "NEW"), null, "a refused put creates nothing");
      assert.deepEqual(await s.listCryptoDevices(), [{ ownerUserId: U1, deviceId: "DEV" }]);
      // The bounds themselves are accepted: a 255-byte owner, a 255-byte device id.
      const longestOwner = `@${"a".repeat(242)}:example.org`;
      const longestDevice = "é".repeat(127) + "x";
      assert.equal(Buffer.byteLength(longestOwner), 255);
      assert.equal(Buffer.byteLength(longestDevice), 255);
      await s.putCryptoState(longestOwner, longestDevice, good);
      assert.deepEqual(await s.getCryptoState(longestOwner, longestDevice), good);
      // Historical localparts and a server name with a port are Matrix user ids too.
      await s.putCryptoState("@Old_Style=Name/1:matrix.example.org:8448", "DEV", good);
      assert.deepEqual(await s.getCryptoState("@Old_Style=Name/1:matrix.example.org:8448", "DEV"), good);
    });

    it("sets and clears per-peer OTR policies", async () => {
      const s = await make();
      assert.equal(await s.getPeerPolicy(U1, NET, "carol"), null);
      await s.putPeerPolicy(U1, NET, "carol", "always");
      await s.putPeerPolicy(U1, NET, "dave", "never");
      assert.equal(await s.getPeerPolicy(U1, NET, "carol"), "always");
      await s.putPeerPolicy(U1, NET, "carol", "manual");
      assert.equal(await s.getPeerPolicy(U1, NET, "carol"), "manual");
      await s.putPeerPolicy(U1, NET, "carol", null);
      assert.equal(await s.getPeerPolicy(U1, NET, "carol"), null);
      assert.equal(await s.getPeerPolicy(U1, NET, "dave"), "never");
      assert.equal(await s.getPeerPolicy(U2, NET, "dave"), null);
      await rejectsCode(s.putPeerPolicy(U1, NET, "dave", "loud" as never), "invalid-argument");
      assert.equal(await s.getPeerPolicy(U1, NET, "dave"), "never");
    });

    it("keeps small key/value state", async () => {
      const s = await make();
      assert.equal(await s.getState("sync-token"), null);
      await s.putState("sync-token", "s1");
      await s.putState("empty", "");
      await s.putState("sync-token", "s2 ✓");
      assert.equal(await s.getState("sync-token"), "s2 ✓");
      assert.equal(await s.getState("empty"), "");
      await s.deleteState("sync-token");
      assert.equal(await s.getState("sync-token"), null);
    });

    it("refuses every call after close with store-closed", async () => {
      const s = await make();
      await s.close();
      await rejectsCode(s.getState("x"), "store-closed");
      await rejectsCode(s.putOtrPrivateKeyIfAbsent(U1, NET, new Uint8Array([1])), "store-closed");
      await rejectsCode(s.setChannelKey(U1, NET, "#otr", "k"), "store-closed");
      await rejectsCode(s.getChannelKey(U1, NET, "#otr"), "store-closed");
      await rejectsCode(s.putCryptoState(U1, "DEV", new Uint8Array([1])), "store-closed");
      await rejectsCode(s.getCryptoState(U1, "DEV"), "store-closed");
      await rejectsCode(s.deleteCryptoState(U1, "DEV"), "store-closed");
      await rejectsCode(s.listCryptoDevices(), "store-closed");
      await s.close(); // closing twice is harmless
    });

    if (engine.reopen) {
      const reopen = engine.reopen;
      it("holds everything after close and reopen", async () => {
        const s = await make();
        const key = new Uint8Array(200).map((_, i) => (i * 7) & 0xff);
        await s.putUserNetwork({ userId: U1, networkId: NET, nick: "alice", otrPolicy: "opportunistic", updatedAt: 42 });
        await s.setIrcPassword(U1, NET, "pw");
        await s.putOtrPrivateKeyIfAbsent(U1, NET, key);
        await s.putInstanceTagIfAbsent(U1, NET, 0xdeadbeef);
        await s.putFingerprint(fp({ trust: "verified", verifiedBy: "manual" }));
        await s.putDmRoom(U1, NET, "carol", "!dm:x");
        await s.putManagementRoom(U1, "!mgmt:x");
        await s.putChannelRoom(NET, "#otr", "!chan:x");
        await s.putPeerPolicy(U1, NET, "carol", "always");
        await s.setChannelKey(U1, NET, "#otr", "chan-key");
        const crypto = cryptoBlob(100_000, 12);
        await s.putCryptoState(U1, "DEVICE", crypto);
        await s.putCryptoState(U1, "GONE", new Uint8Array([1]));
        await s.deleteCryptoState(U1, "GONE");
        await s.putState("k", "v");
        const t = await reopen(s);
        open.push(t);
        assert.deepEqual(await t.getUserNetwork(U1, NET), { userId: U1, networkId: NET, nick: "alice", otrPolicy: "opportunistic", updatedAt: 42 });
        assert.equal(await t.getIrcPassword(U1, NET), "pw");
        assert.deepEqual(await t.getOtrPrivateKey(U1, NET), key);
        assert.equal(await t.getInstanceTag(U1, NET), 0xdeadbeef);
        assert.deepEqual(await t.listFingerprints(U1, NET), [fp({ trust: "verified", verifiedBy: "manual" })]);
        assert.equal(await t.getDmRoom(U1, NET, "carol"), "!dm:x");
        assert.deepEqual(await t.findDmByRoom("!dm:x"), { userId: U1, networkId: NET, foldedNick: "carol" });
        assert.equal(await t.getManagementRoom(U1), "!mgmt:x");
        assert.equal(await t.getChannelRoom(NET, "#otr"), "!chan:x");
        assert.equal(await t.getPeerPolicy(U1, NET, "carol"), "always");
        assert.equal(await t.getChannelKey(U1, NET, "#otr"), "chan-key");
        assert.deepEqual(await t.getCryptoState(U1, "DEVICE"), crypto);
        assert.equal(await t.getCryptoState(U1, "GONE"), null);
        assert.deepEqual(await t.listCryptoDevices(), [{ ownerUserId: U1, deviceId: "DEVICE" }]);
        assert.equal(await t.getState("k"), "v");
      });
    }
    inboxContract(engine, make, (t) => open.push(t));
    outboxContract(engine, make, (t) => open.push(t));
  });
}
