// Restart at the daemon level (issue 5): the daemon on its SQLite store and master key file creates a DM room and an
// OTR key (through an AKE with a libotr contact), is stopped and started again on the same files, and comes back
// with the same room for that contact and the same OTR identity, as libotr sees it in the next AKE.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { LONG, OtrWorld } from "../harness/otr-e2e.js";
import { generateContactKey, type LibotrIrcContact } from "../harness/libotr-irc.js";

describe("the daemon restarts on its SQLite store with rooms and OTR keys intact", { timeout: 600_000 }, () => {
  const world = new OtrWorld("restart");
  const key = generateContactKey("Frank");
  let frank: LibotrIrcContact;
  let room = "";
  let fpBefore = "";

  before(async () => { await world.start(); });
  after(async () => { await world.stop(); });

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

  it("after a stop and a start: the same room, the same fingerprint", async () => {
    await world.restartBridge(frank);
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
    const needles = ["hello before the restart", "hello after the restart", ...world.infrastructureSecrets(), ...(await world.otrKeySecrets())];
    for (const s of needles) assert.ok(!log.includes(s), `the log contains ${JSON.stringify(s.slice(0, 12))}… (see ${world.logPath})`);
  });
});
