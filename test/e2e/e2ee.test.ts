// End-to-bridge encryption, end to end (issue 14): the real daemon with encryption required, Synapse with the
// appservice E2EE flags, ngIRCd, and Alice on matrix-js-sdk with its Rust crypto (the engine Element runs), with
// cross-signing bootstrapped. Her management room and her DMs with IRC contacts are encrypted; a plain IRC
// contact and a libotr contact talk to her. The last test searches Synapse's own database for every plaintext
// and secret used: the point of the issue is that none of them is there.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { LONG, NOTICE_KEY, OTR_KEY, OtrWorld } from "../harness/otr-e2e.js";
import { generateContactKey } from "../harness/libotr-irc.js";
import type { E2eeUser, E2eeMessage } from "../harness/e2ee-user.js";
import { NioUser, type NioMessage } from "../harness/nio-user.js";
import type { IrcClient } from "../harness/irc-client.js";

/** Everything Alice or a contact wrote, and every secret: none may be in Synapse's database. */
const PRIVATE: string[] = [];
const priv = <T extends string>(s: T): T => { PRIVATE.push(s); return s; };
/** Events the test forged on purpose: Alice's own client may fail to decrypt them too. */
const FORGED = new Set<string>();
/** The wire content of an event Alice sent and the bridge passed on: replayed before and after a restart. */
let replayable: Record<string, unknown> | null = null;

const LONG_TEXT = priv(Array.from({ length: 90 }, (_, i) => `${i}: Grüße, café, 日本語 ✓`).join(" "));

describe("end-to-bridge encryption (daemon, Synapse with appservice E2EE, ngIRCd, js-sdk Rust crypto)", { timeout: 900_000 }, () => {
  const world = new OtrWorld("e2ee", { encryption: true, defaultPolicy: "manual", moreUsers: ["nora"] });
  let alice: E2eeUser;
  let dave: IrcClient;
  let daveRoom = "";

  before(async () => {
    await world.start();
    alice = world.ealice!;
  });
  after(async () => { await dave?.destroy(); await world.stop(); });

  it("the management room is encrypted: the bot's answers decrypt, from a device signed by the bot itself", async () => {
    const intro = await alice.waitForMessage(world.mgmt, (m) => m.sender === world.botId && /management room/.test(String(m.content.body)));
    assert.equal(intro.encrypted, true, "the bot answered with an encrypted event");
    assert.notEqual(intro.shield?.colour, "red", `no red shield: ${JSON.stringify(intro.shield)}`);
    const devices = await alice.devicesOf(world.botId);
    assert.equal(devices.length, 1, `the bot has one device: ${devices.join(",")}`);
    const v = await alice.deviceVerification(world.botId, devices[0]!);
    assert.equal(v?.signedByOwner, true, "the bot's device is cross-signed by the bot's own identity");
  });

  it("an IRC contact writes first: the ghost opens an encrypted DM, its messages decrypt with no warning shield", async () => {
    dave = await world.rawIrc("Dave");
    const ghost = world.ghost("Dave");
    const hello = priv("héllo Alice, 秘密 ✓ from Dave");
    dave.privmsg("alice", hello);
    daveRoom = await alice.waitForInvite((_r, inviter) => inviter === ghost, LONG);
    await alice.joinRoom(daveRoom);
    const m = await alice.waitForMessage(daveRoom, hello, LONG);
    assert.equal(m.encrypted, true);
    assert.equal(m.sender, ghost);
    assert.equal(m.shield?.colour, "none", `Element would show no shield: ${JSON.stringify(m.shield)}`);
    const devices = await alice.devicesOf(ghost);
    assert.equal(devices.length, 1);
    assert.match(devices[0]!, /^MOTR/);
    const v = await alice.deviceVerification(ghost, devices[0]!);
    assert.equal(v?.signedByOwner, true, "the ghost's device is signed by the ghost's own cross-signing identity");
    const enc = await world.alice.getStateEvent(daveRoom, "m.room.encryption");
    assert.equal(enc?.["algorithm"], "m.megolm.v1.aes-sha2");
    const hv = await world.alice.getStateEvent(daveRoom, "m.room.history_visibility");
    assert.equal(hv?.["history_visibility"], "invited");
  });

  it("Alice's encrypted replies reach IRC whole: non-ASCII and a 3,000-byte message", async () => {
    const short = priv("réponse 👩🏽‍🚀 chiffrée");
    let from = dave.mark();
    await alice.sendText(daveRoom, short);
    await dave.waitForPrivmsg("alice", short, LONG, from);
    assert.ok(Buffer.byteLength(LONG_TEXT) > 3000);
    from = dave.mark();
    await alice.sendText(daveRoom, LONG_TEXT);
    let got = "";
    const deadline = Date.now() + LONG;
    while (got.length < LONG_TEXT.length && Date.now() < deadline) {
      const line = await dave.waitForPrivmsg("alice", () => true, LONG, from);
      from = dave.messages.indexOf(line) + 1;
      got += (got ? " " : "") + line.params.at(-1);
    }
    assert.equal(got.replace(/\s+/g, " "), LONG_TEXT.replace(/\s+/g, " "));
  });

  it("Alice starts an encrypted DM with a ghost (Element's default): the ghost joins and bridges both ways", async () => {
    const erin = await world.rawIrc("Erin");
    try {
      const ghost = world.ghost("Erin");
      const room = await alice.createEncryptedDm(ghost);
      const text = priv("Erin, ça va? encrypted from the start");
      const from = erin.mark();
      // The ghost joins from the invite; the first message may be sent before its device is known to Alice's
      // client, so wait for the join before writing (as a person would see "Erin joined").
      await waitUntil(async () => (await world.alice.getStateEvent(room, "m.room.member", ghost))?.["membership"] === "join", "the ghost joins");
      // And until Alice's client has the ghost's device: a message her client encrypts before its device query
      // returns gets no room key for the ghost (it is then reported undecryptable; see docs/encryption.md).
      await waitUntil(async () => (await alice.devicesOf(ghost)).length === 1, "Alice's client knows the ghost's device");
      await alice.sendText(room, text);
      await erin.waitForPrivmsg("alice", text, LONG, from);
      const back = priv("Erin answers, ünïcödé");
      erin.privmsg("alice", back);
      const m = await alice.waitForMessage(room, back, LONG);
      assert.equal(m.encrypted, true);
    } finally {
      erin.destroy();
    }
  });

  it("OTR and SMP from an encrypted DM: a libotr contact goes secure, texts both ways, Alice verifies it by SMP with `!otr` commands", async () => {
    const bob = await world.contact("Bob", generateContactKey("Bob").keyFile);
    try {
      const ghost = world.ghost("Bob");
      const hello = priv("hello Alice, Bob in plaintext first");
      bob.irc.privmsg("alice", hello);
      const room = await alice.waitForInvite((_r, inviter) => inviter === ghost, LONG);
      await alice.joinRoom(room);
      await alice.waitForMessage(room, hello, LONG);
      let seen = marks(alice, room);
      let lib = bob.mark();
      bob.startOtr();
      await bob.waitForSecure(lib);
      const secure = await alice.waitForMessage(room, (m) => !seen.has(m.eventId) && notice(m) === "gone-secure", LONG);
      assert.equal(secure.encrypted, true, "the OTR notice itself is Megolm-encrypted");
      assert.match(String(secure.content.body), /unverified/i);

      const fromBob = priv("Bob inside OTR inside Megolm: naïve 秘密");
      await bob.send(fromBob);
      const m = await alice.waitForMessage(room, fromBob, LONG);
      assert.equal(m.encrypted, true);
      assert.equal((m.content[OTR_KEY] as { encrypted?: unknown } | undefined)?.encrypted, true, "flagged as received under OTR");
      const fromAlice = priv("Alice answers under both layers ✓");
      lib = bob.mark();
      const tap = world.tap.mark();
      await alice.sendText(room, fromAlice);
      const got = await bob.waitForText(fromAlice, lib);
      assert.equal(got.otr, true, "libotr received it encrypted");
      assert.ok(!world.tap.sawSent(fromAlice, tap), "never in clear on the IRC server");

      // SMP started by Alice with a question; Bob answers right; the command carrying the secret is redacted.
      seen = marks(alice, room);
      lib = bob.mark();
      const question = priv("Which café, in 2019?");
      const answer = priv("Café Müller e2ee");
      const cmd = await alice.sendText(room, `!otr ask ${question} ; ${answer}`);
      const ask = await bob.waitForSmp(["ASK_FOR_ANSWER"], lib);
      assert.equal(ask.question, question);
      await bob.smpRespond(answer);
      assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "SUCCESS");
      await alice.waitForMessage(room, (x) => !seen.has(x.eventId) && notice(x) === "smp-success", LONG);
      await world.waitRedacted(room, cmd);
      await world.status(room, (x) => x.verified === true && x.state === "encrypted", "verified by SMP");

      // SMP started by Bob, answered by Alice from the encrypted room.
      await alice.sendText(room, "!otr distrust");
      await world.status(room, (x) => x.verified === false, "unverified after distrust");
      seen = marks(alice, room);
      lib = bob.mark();
      const secret2 = priv("sesame e2ee 2");
      await bob.smpStart(secret2);
      await alice.waitForMessage(room, (x) => !seen.has(x.eventId) && notice(x) === "smp-question", LONG);
      await alice.sendText(room, `!otr smp ${secret2}`);
      assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "SUCCESS");
      await world.status(room, (x) => x.verified === true, "verified by Bob's SMP");
    } finally {
      await bob.close();
    }
  });

  it("a second, independent client (matrix-nio on libolm) talks with the bot and a ghost in encrypted rooms", async () => {
    await world.hs.registerUser("nora", "nora-pw");
    const nora = await NioUser.login(world.hs, "nora", "nora-pw", { deviceName: "nora-nio" });
    const frank = await world.rawIrc("Frank");
    try {
      const mgmt = await nora.createEncryptedDm(world.botId);
      await nioWait(nora, mgmt, (m) => m.sender === world.botId && /management room/.test(String(m.content.body)), "the bot's introduction");
      await nora.sendText(mgmt, "connect local");
      const connected = await nioWait(nora, mgmt, (m) => m.content.body === "Connected to local as nora.", "connected");
      assert.equal(connected.encrypted, true);
      const hello = priv("Frank to Nora: grüß dich, libolm ✓");
      frank.privmsg("nora", hello);
      const invite = await nora.waitForInvite(undefined, LONG);
      assert.equal(invite.inviter, world.ghost("Frank"));
      const joined = await nora.joinRoom(invite.roomId);
      assert.equal(joined.encrypted, true);
      const m = await nora.waitForMessage(invite.roomId, { body: hello }, LONG);
      assert.equal(m.encrypted, true);
      assert.equal(m.sender, world.ghost("Frank"));
      const reply = priv("Nora replies from nio, ça marche");
      const from = frank.mark();
      await nora.sendText(invite.roomId, reply);
      await frank.waitForPrivmsg("nora", reply, LONG, from);
      assert.deepEqual(await nora.decryptionFailures(), []);
    } finally {
      frank.destroy();
      await nora.stop();
    }
  });

  it("Alice adds a second device: it reads the ghost's new messages; once removed, it gets no key for later ones", async () => {
    const ghost = world.ghost("Dave");
    const phone = await alice.loginAnotherDevice(world.hs, { deviceName: "alice-phone" });
    try {
      await phone.bootstrapCrossSigning();
      // The ghost learns about the new device from the device-list change the homeserver sends the appservice.
      const seenByPhone = priv("Dave to both of Alice's devices");
      dave.privmsg("alice", seenByPhone);
      const onPhone = await phone.waitForMessage(daveRoom, seenByPhone, LONG);
      assert.equal(onPhone.encrypted, true);
      const first = await alice.waitForMessage(daveRoom, seenByPhone, LONG);
      const firstSession = sessionOf(first);

      await alice.deleteDevice(phone.deviceId);
      await waitUntil(async () => !(await alice.devicesOf(alice.userId)).includes(phone.deviceId), "the phone is gone from Alice's device list");
      const afterRemoval = priv("Dave after the phone was removed");
      dave.privmsg("alice", afterRemoval);
      const later = await alice.waitForMessage(daveRoom, afterRemoval, LONG);
      const laterSession = sessionOf(later);
      assert.notEqual(laterSession, firstSession, "the ghost rotated its Megolm session when a member's device went away");
      const phoneKeys = new Set((await phone.crypto.exportRoomKeys()).map((k) => k.session_id));
      assert.ok(phoneKeys.has(firstSession), "the phone had the key of the message it read");
      assert.ok(!phoneKeys.has(laterSession), "the removed phone never got the key of the later message");
      assert.ok(!phone.messages(daveRoom).some((m) => m.content.body === afterRemoval));
    } finally {
      await phone.stop();
    }
  });

  it("a replayed and a tampered encrypted event: a clear notice to the sender, nothing reaches IRC, and the next message bridges", async () => {
    const original = priv("Alice once, never twice");
    let from = dave.mark();
    const id = await alice.sendText(daveRoom, original);
    await dave.waitForPrivmsg("alice", original, LONG, from);
    const wire = (await world.alice.getEvent(daveRoom, id)).content as Record<string, unknown>;
    assert.equal(typeof wire["ciphertext"], "string");
    replayable = wire;

    let seen = marks(alice, daveRoom);
    from = dave.mark();
    const replay = await world.alice.sendEvent(daveRoom, "m.room.encrypted", { ...wire });
    const n1 = await alice.waitForMessage(daveRoom, (m) => !seen.has(m.eventId) && notice(m) === "undecryptable", LONG);
    assert.deepEqual(noticeDetail(n1), { reason: "replayed", event_id: replay });

    seen = marks(alice, daveRoom);
    const tampered = await world.alice.sendEvent(daveRoom, "m.room.encrypted", { ...wire, ciphertext: flipPayloadBit(String(wire["ciphertext"])) });
    const n2 = await alice.waitForMessage(daveRoom, (m) => !seen.has(m.eventId) && notice(m) === "undecryptable", LONG);
    FORGED.add(tampered);
    assert.deepEqual(noticeDetail(n2), { reason: "tampered", event_id: tampered });

    const next = priv("Alice, a genuine message after the forgeries");
    await alice.sendText(daveRoom, next);
    const got = await dave.waitForPrivmsg("alice", next, LONG, from);
    const between = dave.messages.slice(from, dave.messages.indexOf(got));
    assert.deepEqual(between.filter((l) => l.command === "PRIVMSG").map((l) => l.params.at(-1)), [], "nothing reached IRC for the replay or the forgery");
  });

  it("a password given with `login` in the encrypted management room is used and never reaches the homeserver in clear", async () => {
    const pw = priv("hunter2-e2ee-Pässwort");
    await alice.sendText(world.mgmt, `login local ${pw}`);
    await alice.waitForMessage(world.mgmt, (m) => m.sender === world.botId && /password/i.test(String(m.content.body)) && /local/.test(String(m.content.body)), LONG);
  });

  it("after a restart of the bridge, the next messages both ways decrypt with no new unable-to-decrypt", async () => {
    const failuresBefore = alice.decryptionFailures.length;
    await world.stopBridge();
    await world.startBridge();
    const afterText = priv("after the restart, still encrypted");
    const from = dave.mark();
    await alice.sendText(daveRoom, afterText);
    await dave.waitForPrivmsg("alice", afterText, LONG, from);
    const back = priv("Dave after the restart ✓");
    dave.privmsg("alice", back);
    const m = await alice.waitForMessage(daveRoom, back, LONG);
    assert.equal(m.encrypted, true);
    assert.equal(alice.decryptionFailures.length, failuresBefore, JSON.stringify(alice.decryptionFailures.slice(failuresBefore)));

    // What the bridge saw before the restart it still remembers: the old ciphertext replayed again is refused.
    const seen = marks(alice, daveRoom);
    const ircFrom = dave.mark();
    const replay = await world.alice.sendEvent(daveRoom, "m.room.encrypted", { ...replayable! });
    const n = await alice.waitForMessage(daveRoom, (x) => !seen.has(x.eventId) && notice(x) === "undecryptable", LONG);
    assert.deepEqual(noticeDetail(n), { reason: "replayed", event_id: replay });
    const marker = priv("Alice after the replay that followed the restart");
    await alice.sendText(daveRoom, marker);
    const got = await dave.waitForPrivmsg("alice", marker, LONG, ircFrom);
    assert.deepEqual(dave.messages.slice(ircFrom, dave.messages.indexOf(got)).filter((l) => l.command === "PRIVMSG").map((l) => l.params.at(-1)), []);
  });

  it("Synapse's database holds none of the plaintexts or secrets (and does hold a control text sent unencrypted)", async () => {
    const control = "control-plaintext-7c1e unencrypted on purpose";
    const room = await alice.createUnencryptedRoom({ name: "control" });
    await alice.sendText(room, control, { expectEncrypted: false });
    await waitUntil(async () => world.hs.dbContains(control), "the control text reaches Synapse's database");
    const found = PRIVATE.filter((p) => world.hs.dbContains(p));
    assert.deepEqual(found, [], "no plaintext or secret in Synapse's database");
    const failures = alice.decryptionFailures.filter((f) => !FORGED.has(f.eventId));
    assert.deepEqual(failures, [], "Alice could decrypt every event but the forged one");
  });
});

async function nioWait(u: NioUser, room: string, pred: (m: NioMessage) => boolean, what: string): Promise<NioMessage> {
  const deadline = Date.now() + LONG;
  for (;;) {
    const found = (await u.messages(room)).find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`nio: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The Megolm session an encrypted event came in. */
function sessionOf(m: Omit<E2eeMessage, "shield">): string {
  const id = m.event.getWireContent()["session_id"];
  assert.equal(typeof id, "string");
  return id as string;
}

/** A Megolm ciphertext with one bit of its encrypted payload flipped; the version and index in front stay valid. */
function flipPayloadBit(b64: string): string {
  const bytes = Buffer.from(b64, "base64");
  bytes[8] = bytes[8]! ^ 0x01;
  return bytes.toString("base64").replace(/=+$/, "");
}

function noticeDetail(m: Omit<E2eeMessage, "shield">): unknown {
  const { reason, event_id } = (m.content["org.matrix_otr_irc.undecryptable"] ?? {}) as { reason?: unknown; event_id?: unknown };
  return { reason, event_id };
}

/** Event ids Alice has already seen in `room`: later waits skip them. */
function marks(u: E2eeUser, room: string): Set<string> {
  return new Set(u.messages(room).map((m) => m.eventId));
}

function notice(m: Omit<E2eeMessage, "shield">): unknown {
  return m.content[NOTICE_KEY];
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = LONG): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
