// Self-test of the E2EE harness, with no bridge involved: real Synapse (with the appservice E2EE flags on),
// two matrix-js-sdk users with Rust crypto and one matrix-nio (libolm) user exchange encrypted messages, and
// Synapse's own database is searched for the plaintexts. If this fails, every E2EE bridge suite would fail for
// reasons that are not the bridge's.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { E2eeUser } from "../harness/e2ee-user.js";
import { NioUser } from "../harness/nio-user.js";

const tag = () => randomBytes(6).toString("hex");

/** A message of exactly `bytes` UTF-8 bytes, starting with a unique marker and mixing 1-, 2-, 3- and 4-byte characters. */
function messageOfBytes(marker: string, bytes: number): string {
  const pieces = ["a", "é", "€", "😀"];
  let s = `${marker} `;
  let i = 0;
  while (Buffer.byteLength(s) < bytes) {
    const next = pieces[i++ % pieces.length] ?? "a";
    s += Buffer.byteLength(s + next) <= bytes ? next : "a";
  }
  return s;
}

async function until<T>(what: string, timeoutMs: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("harness: E2EE users against Synapse", { timeout: 150_000 }, () => {
  let hs: SynapseInstance;
  let alice: E2eeUser;
  let bob: E2eeUser;
  let carol: NioUser;
  const others: { stop(): Promise<void> }[] = [];
  let dm = "";
  /** Every plaintext sent in an encrypted room: none may be in Synapse's database. */
  const secret: string[] = [];

  before(async () => {
    hs = await startSynapse({ e2ee: true });
    await Promise.all([hs.registerUser("alice", "alice-pw"), hs.registerUser("bob", "bob-pw"), hs.registerUser("carol", "carol-pw")]);
    [alice, bob, carol] = await Promise.all([
      E2eeUser.login(hs, "alice", "alice-pw"), E2eeUser.login(hs, "bob", "bob-pw"), NioUser.login(hs, "carol", "carol-pw"),
    ]);
  });
  after(async () => {
    await Promise.allSettled([alice?.stop(), bob?.stop(), carol?.stop(), ...others.map((o) => o.stop())]);
    await hs?.stop();
  });

  it("turns on the appservice E2EE flags in homeserver.yaml", () => {
    const yaml = readFileSync(join(hs.hostDir, "homeserver.yaml"), "utf8");
    assert.match(yaml, /^experimental_features:\n {2}msc2409_to_device_messages_enabled: true\n {2}msc3202_transaction_extensions: true$/m);
  });

  it("two js-sdk users exchange encrypted messages both ways in an encrypted DM", { timeout: 60_000 }, async () => {
    dm = await alice.createEncryptedDm(bob.userId);
    assert.equal(await bob.waitForInvite((r, inviter) => r === dm && inviter === alice.userId), dm);
    await bob.joinRoom(dm);
    await alice.waitForMessage(dm, (m) => m.type === "m.room.member" && m.event.getStateKey() === bob.userId
      && m.content.membership === "join");

    const fromAlice = [`plain ascii ${tag()}`, `Grüße, 世界, ça va? 😀 ${tag()}`, messageOfBytes(`long-${tag()}`, 3000)];
    const fromBob = [`bob ascii ${tag()}`, `ответ ✓ 🎉 ${tag()}`, messageOfBytes(`blong-${tag()}`, 3000)];
    assert.equal(Buffer.byteLength(fromAlice[2] ?? ""), 3000);
    secret.push(...fromAlice, ...fromBob);

    for (const [sender, receiver, texts] of [[alice, bob, fromAlice], [bob, alice, fromBob]] as const) {
      for (const text of texts) {
        const eventId = await sender.sendText(dm, text);
        const m = await receiver.waitForMessage(dm, text);
        assert.equal(m.eventId, eventId);
        assert.equal(m.sender, sender.userId);
        assert.equal(m.type, "m.room.message");
        assert.equal(m.encrypted, true);
        assert.equal(m.event.getWireType(), "m.room.encrypted");
        assert.deepEqual(m.content, { msgtype: "m.text", body: text });
        // Nobody has cross-signing yet: the sending device is not signed by its owner.
        assert.deepEqual(m.shield, { colour: "red", reason: "UNSIGNED_DEVICE" });
      }
    }
    assert.deepEqual(alice.decryptionFailures, []);
    assert.deepEqual(bob.decryptionFailures, []);
    // sendText refuses to send in the clear by accident.
    await assert.rejects(alice.sendText(dm, "x", { expectEncrypted: false }), /is encrypted/);
  });

  it("after alice bootstraps cross-signing, bob sees her device signed by its owner and her messages without a warning", { timeout: 60_000 }, async () => {
    assert.equal((await bob.deviceVerification(alice.userId, alice.deviceId))?.signedByOwner, false);
    await alice.bootstrapCrossSigning();
    const own = await alice.deviceVerification(alice.userId, alice.deviceId);
    assert.equal(own?.signedByOwner, true);
    const seen = await until("bob sees alice's device cross-signed", 30_000, async () => {
      const v = await bob.deviceVerification(alice.userId, alice.deviceId);
      return v?.signedByOwner ? v : undefined;
    });
    assert.deepEqual(seen, { signedByOwner: true, crossSigningVerified: false, localVerified: false });

    const text = `after cross-signing ${tag()}`;
    secret.push(text);
    await alice.sendText(dm, text);
    const m = await bob.waitForMessage(dm, text);
    // Cross-signed but not verified by bob: trusted on first use, no shield.
    assert.deepEqual(m.shield, { colour: "none", reason: null });
  });

  it("a nio (libolm) user joins an encrypted room with a js-sdk user and they exchange messages both ways", { timeout: 60_000 }, async () => {
    const room = await alice.createEncryptedRoom({ invite: [carol.userId], name: "with nio" });
    assert.deepEqual(await carol.waitForInvite(room), { roomId: room, inviter: alice.userId });
    assert.deepEqual(await carol.joinRoom(room), { roomId: room, encrypted: true });
    await alice.waitForMessage(room, (m) => m.type === "m.room.member" && m.event.getStateKey() === carol.userId
      && m.content.membership === "join");

    const toCarol = [`to nio ${tag()}`, `naïve café 🐍 ${tag()}`, messageOfBytes(`nlong-${tag()}`, 3000)];
    const toAlice = [`from nio ${tag()}`, `日本語 ✓ ${tag()}`, messageOfBytes(`nfrom-${tag()}`, 3000)];
    secret.push(...toCarol, ...toAlice);
    for (const text of toCarol) {
      const eventId = await alice.sendText(room, text);
      const m = await carol.waitForMessage(room, { body: text, sender: alice.userId });
      assert.equal(m.eventId, eventId);
      assert.equal(m.encrypted, true);
      assert.deepEqual(m.content, { msgtype: "m.text", body: text });
    }
    for (const text of toAlice) {
      const eventId = await carol.sendText(room, text);
      const m = await alice.waitForMessage(room, text);
      assert.equal(m.eventId, eventId);
      assert.equal(m.sender, carol.userId);
      assert.equal(m.encrypted, true);
      assert.deepEqual(m.content, { msgtype: "m.text", body: text });
      // nio has no cross-signing: its device is never signed by its owner.
      assert.deepEqual(m.shield, { colour: "red", reason: "UNSIGNED_DEVICE" });
    }
    assert.deepEqual(await carol.decryptionFailures(), []);
    assert.deepEqual(alice.decryptionFailures, []);
    // Trusting makes nio report alice's device as verified on her next message.
    assert.ok((await carol.trustAllDevices([alice.userId])).includes(`${alice.userId} ${alice.deviceId}`));
    const text = `after trust ${tag()}`;
    secret.push(text);
    await alice.sendText(room, text);
    assert.equal((await carol.waitForMessage(room, { body: text })).verified, true);
  });

  it("a second device of alice reads new messages; devices can be deleted and logged out", { timeout: 60_000 }, async () => {
    const second = await alice.loginAnotherDevice(hs, { deviceName: "second" });
    others.push(second);
    assert.notEqual(second.deviceId, alice.deviceId);
    // bob must know the new device before he sends, or he shares the room key without it.
    await until("bob sees alice's second device", 30_000, async () =>
      (await bob.devicesOf(alice.userId)).includes(second.deviceId) ? true : undefined);
    const text = `to both devices ${tag()}`;
    secret.push(text);
    await bob.sendText(dm, text);
    assert.equal((await second.waitForMessage(dm, text)).encrypted, true);
    await alice.waitForMessage(dm, text);

    const third = await alice.loginAnotherDevice(hs, { deviceName: "third" });
    others.push(third);
    // (registerUser's own login made one more device, which stays.)
    const serverDevices = async () => (await alice.client.getDevices()).devices.map((d) => d.device_id)
      .filter((d) => [alice.deviceId, second.deviceId, third.deviceId].includes(d)).sort();
    assert.deepEqual(await serverDevices(), [alice.deviceId, second.deviceId, third.deviceId].sort());
    await third.logout();
    await second.stop();
    await alice.deleteDevice(second.deviceId);
    assert.deepEqual(await serverDevices(), [alice.deviceId]);
    assert.deepEqual(second.decryptionFailures, []);
    // What was sent before it logged in is there, unreadable, and told apart.
    assert.ok(second.historicalDecryptionFailures.length > 0);
    assert.ok(second.historicalDecryptionFailures.every((f) => f.code === "HISTORICAL_MESSAGE_NO_KEY_BACKUP"));
  });

  it("Synapse's database holds no plaintext of the encrypted messages, but does hold an unencrypted one", { timeout: 30_000 }, async () => {
    assert.ok(secret.length >= 14, `only ${secret.length} encrypted plaintexts recorded (earlier tests failed?)`);
    const control = await alice.createUnencryptedRoom({ invite: [bob.userId] });
    await bob.joinRoom(control);
    const clear = `control plaintext ${tag()}`;
    const clearNonAscii = `contrôle ✓ 😀 ${tag()}`;
    await assert.rejects(alice.sendText(control, clear), /not encrypted/);
    await alice.sendText(control, clear, { expectEncrypted: false });
    await alice.sendText(control, clearNonAscii, { expectEncrypted: false });
    await bob.waitForMessage(control, clearNonAscii);
    assert.ok(hs.dbFiles().includes(hs.dbPath));
    // The grep can find things: both control texts are there (the second one \u-escaped, as Synapse writes JSON).
    assert.equal(hs.dbContains(clear), true, "the control plaintext is not in Synapse's database: the search is broken");
    assert.equal(hs.dbContains(clearNonAscii), true, "the non-ASCII control plaintext is not in Synapse's database");
    const leaked = secret.filter((s) => hs.dbContains(s) || hs.dbContains(s.slice(0, 40)));
    assert.deepEqual(leaked, [], `plaintexts found in ${hs.dbFiles().join(", ")}`);
  });
});
