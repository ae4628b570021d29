// End-to-bridge encryption, end to end (issue 14): the real daemon with encryption required, Synapse with the
// appservice E2EE flags, ngIRCd, and Alice on matrix-js-sdk with its Rust crypto (the engine Element runs), with
// cross-signing bootstrapped. Her management room and her DMs with IRC contacts are encrypted; a plain IRC
// contact and a libotr contact talk to her. The last test searches Synapse's own database for every plaintext
// and secret used: the point of the issue is that none of them is there.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { LONG, NOTICE_KEY, OtrWorld } from "../harness/otr-e2e.js";
import type { E2eeUser, E2eeMessage } from "../harness/e2ee-user.js";
import type { IrcClient } from "../harness/irc-client.js";

/** Everything Alice or a contact wrote, and every secret: none may be in Synapse's database. */
const PRIVATE: string[] = [];
const priv = <T extends string>(s: T): T => { PRIVATE.push(s); return s; };

const LONG_TEXT = priv(Array.from({ length: 90 }, (_, i) => `${i}: Grüße, café, 日本語 ✓`).join(" "));

describe("end-to-bridge encryption (daemon, Synapse with appservice E2EE, ngIRCd, js-sdk Rust crypto)", { timeout: 900_000 }, () => {
  const world = new OtrWorld("e2ee", { encryption: true, defaultPolicy: "manual" });
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
  });

  it("Synapse's database holds none of the plaintexts or secrets (and does hold a control text sent unencrypted)", async () => {
    const control = "control-plaintext-7c1e unencrypted on purpose";
    const room = await alice.createUnencryptedRoom({ name: "control" });
    await alice.sendText(room, control, { expectEncrypted: false });
    await waitUntil(async () => world.hs.dbContains(control), "the control text reaches Synapse's database");
    const found = PRIVATE.filter((p) => world.hs.dbContains(p));
    assert.deepEqual(found, [], "no plaintext or secret in Synapse's database");
    assert.equal(alice.decryptionFailures.length, 0, JSON.stringify(alice.decryptionFailures));
  });
});

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
