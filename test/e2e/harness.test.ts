// Self-test of the shared e2e harness against the real servers: if this fails, every e2e suite would fail for
// reasons that are not theirs.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, parseIrcLine, type IrcClient } from "../harness/irc-client.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { createServer } from "node:net";

describe("harness: Synapse", { timeout: 300_000 }, () => {
  let hs: SynapseInstance;
  before(async () => { hs = await startSynapse(); });
  after(async () => { await hs?.stop(); });

  it("registers two users who meet in a room and read each other", async () => {
    const a = await hs.registerUser("alice", "alice-pw");
    const b = await hs.registerUser("bob", "bob-pw");
    assert.equal(a.userId, `@alice:${hs.domain}`);
    const alice = new MatrixClient(hs.url, a.userId, a.accessToken);
    const bob = new MatrixClient(hs.url, b.userId, b.accessToken);
    assert.equal(await bob.whoami(), b.userId);

    const roomId = await alice.createRoom({ name: "harness" });
    await alice.invite(roomId, bob.userId);
    const invited = await bob.waitForInvite((r) => r === roomId);
    assert.equal(bob.inviterOf(invited), alice.userId);
    await bob.join(roomId);
    await alice.waitForEvent(roomId, (e) => e.type === "m.room.member" && e.state_key === bob.userId
      && e.content.membership === "join");

    const eventId = await alice.sendText(roomId, "hello bob");
    const seen = await bob.waitForMessage(roomId, "hello bob", { sender: alice.userId });
    assert.equal(seen.event_id, eventId);

    const members = await bob.getJoinedMembers(roomId);
    assert.deepEqual(members.sort(), [alice.userId, bob.userId].sort());
    const state = await bob.getState(roomId);
    assert.ok(state.some((e) => e.type === "m.room.name" && e.content.name === "harness"));

    // Only later events match once a mark is taken.
    const from = bob.mark();
    await alice.redact(roomId, eventId, "test");
    const red = await bob.waitForEvent(roomId, (e) => e.type === "m.room.redaction", 60_000, from);
    assert.equal(red.redacts ?? (red.content.redacts as string), eventId);
  });

  it("logs in with a password and rejects a wrong one", async () => {
    await hs.registerUser("carol", "carol-pw");
    const c = await MatrixClient.login(hs.url, "carol", "carol-pw");
    assert.equal(c.userId, `@carol:${hs.domain}`);
    await assert.rejects(MatrixClient.login(hs.url, "carol", "wrong"), /login carol/);
  });
});

describe("harness: ngIRCd", { timeout: 120_000 }, () => {
  let irc: NgircdInstance;
  const clients: IrcClient[] = [];
  before(async () => { irc = await startNgircd(); });
  after(async () => {
    for (const c of clients) c.destroy();
    await irc?.stop();
  });

  it("lets two raw clients exchange a PRIVMSG", async () => {
    const x = await connectIrc(irc.host, irc.port, "xavier");
    const y = await connectIrc(irc.host, irc.port, "yolanda");
    clients.push(x, y);
    x.privmsg("yolanda", "hi there: with a colon");
    const m = await y.waitForPrivmsg("xavier", "hi there: with a colon");
    assert.equal(m.params[0], "yolanda");
    assert.match(m.prefix ?? "", /^xavier!/);
  });

  it("refuses a nick that is taken", async () => {
    const z = await connectIrc(irc.host, irc.port, "zed");
    clients.push(z);
    await assert.rejects(connectIrc(irc.host, irc.port, "zed"), /registration of zed failed/);
  });

  it("restart() drops clients and serves again on the same port", async () => {
    const c = await connectIrc(irc.host, irc.port, "before");
    clients.push(c);
    const port = irc.port;
    await irc.restart();
    await c.closed;
    assert.equal(c.isConnected(), false);
    assert.equal(irc.port, port);
    const d = await connectIrc(irc.host, irc.port, "after");
    const e = await connectIrc(irc.host, irc.port, "another");
    clients.push(d, e);
    d.privmsg("another", "still here");
    await e.waitForPrivmsg("after", "still here");
  });
});

describe("harness: helpers", () => {
  it("parses IRC lines with prefix, params and trailing", () => {
    const m = parseIrcLine(":nick!user@host PRIVMSG #chan :hello :world");
    assert.equal(m.nick, "nick");
    assert.equal(m.command, "PRIVMSG");
    assert.deepEqual(m.params, ["#chan", "hello :world"]);
    assert.deepEqual(parseIrcLine("PING :abc").params, ["abc"]);
    assert.equal(parseIrcLine(":irc.test 001 me :Welcome").nick, "irc.test");
  });

  it("hands out a port that can be listened on", async () => {
    const port = await freePort();
    const srv = createServer();
    await new Promise<void>((resolve, reject) => { srv.once("error", reject); srv.listen(port, "127.0.0.1", resolve); });
    assert.equal((srv.address() as { port: number }).port, port);
    await new Promise((r) => srv.close(r));
  });
});
