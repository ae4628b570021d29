// Restart at the daemon level (issue 5): the daemon on its SQLite store and master key file creates a DM room and an
// OTR key (through an AKE with a libotr contact), is stopped and started again on the same files, and comes back
// with the same room for that contact and the same OTR identity, as libotr sees it in the next AKE. A channel with a
// key (+k) that Alice joined is rejoined with that key, which the store keeps sealed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { LONG, OtrWorld } from "../harness/otr-e2e.js";
import { generateContactKey, type LibotrIrcContact } from "../harness/libotr-irc.js";
import type { IrcClient } from "../harness/irc-client.js";

describe("the daemon restarts on its SQLite store with rooms and OTR keys intact", { timeout: 600_000 }, () => {
  const world = new OtrWorld("restart");
  const key = generateContactKey("Frank");
  let frank: LibotrIrcContact;
  let room = "";
  let fpBefore = "";
  let keeper: IrcClient;
  const CHANNEL_KEY = "door-k3y-7781";

  before(async () => { await world.start(); });
  after(async () => { keeper?.destroy(); await world.stop(); });

  it("first run: a DM room and an OTR key, made by an AKE", async () => {
    frank = await world.contact("Frank", key.keyFile);
    room = await world.openDmFromIrc(frank, "hello before the restart");
    const lib = frank.mark();
    frank.startOtr();
    fpBefore = (await frank.waitForSecure(lib)).fpRaw;
    assert.match(fpBefore, /^[0-9a-f]{40}$/);
    await world.status(room, (x) => x.state === "encrypted", "encrypted");
    const db = join(world.dir, "bridge.db");
    assert.ok(existsSync(db) && statSync(db).size > 0, "the SQLite store is a file");
  });

  it("first run: Alice joins a channel that has a key", async () => {
    keeper = await world.rawIrc("keeper");
    keeper.join("#locked");
    await keeper.waitFor((m) => m.command === "366", LONG);
    const modeMark = keeper.mark();
    keeper.send(`MODE #locked +k ${CHANNEL_KEY}`);
    await keeper.waitFor((m) => m.command === "MODE" && m.params[1] === "+k", LONG, modeMark);
    // Without the key: the portal is made, but the server refuses the puppet's JOIN, and Alice is told why.
    let from = world.alice.mark();
    await world.alice.sendText(world.mgmt, "join local #locked");
    await world.alice.waitForMessage(world.mgmt, /Invited you to #locked/, { sender: world.botId, timeoutMs: LONG, from });
    const portal = await world.alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.name" && /#locked/.test(String(e.content.name))), LONG);
    await world.alice.join(portal);
    const refused = await world.alice.waitForMessage(world.mgmt, /could not join #locked on local: the channel needs a key/, { sender: world.botId, timeoutMs: LONG, from });
    assert.equal(refused.content["org.matrix_otr_irc.channel_refused"], "bad-key");
    // With the key: the command is redacted, and the puppet gets in.
    const mark = keeper.mark();
    from = world.alice.mark();
    const eventId = await world.alice.sendText(world.mgmt, `join local #locked ${CHANNEL_KEY}`);
    const reply = await world.alice.waitForMessage(world.mgmt, /already in #locked/, { sender: world.botId, timeoutMs: LONG, from });
    assert.match(String(reply.content.body), /redacted/);
    await world.waitRedacted(world.mgmt, eventId);
    await keeper.waitFor((m) => m.command === "JOIN" && m.nick === "alice" && m.params[0] === "#locked", LONG, mark);
  });

  it("after a stop and a start: the same room, the same fingerprint", async () => {
    const keeperMark = keeper.mark();
    await world.restartBridge(frank);
    // The server refuses JOIN without the key (475): seeing it means the stored key was used.
    await keeper.waitFor((m) => m.command === "JOIN" && m.nick === "alice" && m.params[0] === "#locked", LONG, keeperMark);
    const from = world.alice.mark();
    frank.irc.privmsg("alice", "hello after the restart");
    const m = await world.alice.waitForMessage(null, "hello after the restart", { sender: world.ghost("Frank"), timeoutMs: LONG, from });
    assert.equal(m.room_id, room, "the contact's messages land in the same room");
    assert.ok(![...world.alice.invites.keys()].length, "no new room was opened");
    const lib = frank.mark();
    frank.startOtr();
    const after = await frank.waitForSecure(lib);
    assert.equal(after.fpRaw, fpBefore, "the same OTR key");
    await world.status(room, (x) => x.state === "encrypted", "encrypted again");
  });

  it("neither run logged a message, the tokens, the master key or the OTR key", async () => {
    await world.stopBridge();
    const log = world.readLog();
    assert.match(log, /"level":"debug"/);
    const needles = ["hello before the restart", "hello after the restart", CHANNEL_KEY, ...world.infrastructureSecrets(), ...(await world.otrKeySecrets())];
    for (const s of needles) assert.ok(!log.includes(s), `the log contains ${JSON.stringify(s.slice(0, 12))}… (see ${world.logPath})`);
    const db = join(world.dir, "bridge.db");
    for (const f of [db, `${db}-wal`]) {
      if (existsSync(f)) assert.ok(!readFileSync(f).includes(CHANNEL_KEY), `${f} holds the channel key in plaintext`);
    }
  });
});
