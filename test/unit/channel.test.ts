import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseCommand } from "../../src/bridge/commands.js";
import { RateLimiter } from "../../src/bridge/channels/rate-limiter.js";
import { ALICE, BOB, bridgeOn, inChannel, restarted, setup } from "./channel-fakes.js";

describe("channel portals (bridge, fakes)", () => {
  it("join creates one portal per folded channel with the alias from the template and invites the user", async () => {
    const { core, matrix } = setup();
    await core.channels!.joinCommand(ALICE, "local", "#Chan");
    await core.channels!.joinCommand(BOB, "local", "#CHAN");
    assert.deepEqual(matrix.created, [{ name: "#Chan (local)", aliasLocalpart: "irc_local_#chan" }]);
    assert.deepEqual(matrix.rooms.size, 0);
    assert.equal(await core.onAliasQuery("#irc_local_#chan:test.local"), "!chan1:test.local");
    assert.equal(await core.onAliasQuery("#irc_nope_#chan:test.local"), null);
    assert.equal(await core.onAliasQuery("#irc_local_#chan:elsewhere"), null);
  });

  it("alias queries create nothing when the network does not allow dynamic channels", async () => {
    const { core, matrix } = setup({}, false);
    assert.equal(await core.onAliasQuery("#irc_local_#x:test.local"), null);
    assert.equal(matrix.created.length, 0);
  });

  it("channel traffic is counted as kind channel in both directions, never as a DM", async () => {
    const bridged: string[] = [];
    const { core, p, roomId } = await inChannel(undefined, bridged);
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "hi all" });
    await core.idle();
    await core.onMessage({ roomId, sender: ALICE, eventId: "$1", kind: "text", body: "hello channel" });
    await core.idle();
    assert.deepEqual(bridged, ["irc_to_matrix channel false", "matrix_to_irc channel false"]);
  });

  it("IRC lines arrive in server order, from ghosts with the nick as display name, formatted", async () => {
    const { core, matrix, p, roomId } = await inChannel();
    for (let i = 0; i < 100; i++) p.emit({ type: "message", channel: "#chan", from: i % 2 ? "Carol" : "dave", kind: "privmsg", text: `m${i}` });
    p.emit({ type: "message", channel: "#chan", from: "Carol", kind: "action", text: "\x02waves\x02" });
    p.emit({ type: "message", channel: "#chan", from: "alice", kind: "privmsg", text: "echo of our own puppet" });
    await core.idle();
    const texts = matrix.textsIn(roomId);
    assert.deepEqual(texts.slice(0, 100), Array.from({ length: 100 }, (_, i) => `m${i}`));
    assert.equal(texts[100], "waves");
    assert.equal(texts.length, 101, "the puppet's own line is not echoed");
    assert.equal(matrix.sent[100]!.kind, "emote");
    assert.deepEqual(matrix.extras.at(-1), { format: "org.matrix.custom.html", formatted_body: "<b>waves</b>" });
    assert.equal(matrix.displayNames.get("@irc_local_carol:test.local"), "Carol");
    // carol is +o in NAMES: her ghost gets the op level when it joins the room.
    assert.deepEqual(matrix.power, [{ roomId, userId: "@irc_local_carol:test.local", level: 50 }]);
  });

  it("Matrix messages go out through the user's puppet, rendered for IRC", async () => {
    const { core, p, roomId } = await inChannel();
    await core.onMessage({ roomId, sender: ALICE, eventId: "$1", kind: "text", body: "x", html: '<b>hi</b> <a href="https://matrix.to/#/@irc_local_carol:test.local">Carol (IRC)</a>' });
    await core.onMessage({ roomId, sender: ALICE, eventId: "$2", kind: "emote", body: "dances" });
    await core.onMessage({ roomId, sender: ALICE, eventId: "$3", kind: "text", body: "fixed", edit: true });
    await core.onMessage({ roomId, sender: ALICE, eventId: "$4", kind: "text", body: "sure", replyTo: "$0",
      html: '<mx-reply><blockquote><a href="https://matrix.to/#/$0">In reply to</a> <a href="https://matrix.to/#/@irc_local_dave:test.local">@irc_local_dave:test.local</a><br>q</blockquote></mx-reply>sure' });
    await core.onMessage({ roomId, sender: ALICE, eventId: "$5", kind: "text", body: "1\n2\n3\n4" });
    assert.deepEqual(p.lines.map((l) => [l.cmd, l.target, l.text]), [
      ["say", "#chan", "\x02hi\x02 carol"],
      ["action", "#chan", "dances"],
      ["say", "#chan", "* fixed"],
      ["say", "#chan", "dave: sure"],
      ["say", "#chan", `1 … (4 lines: https://matrix.to/#/${encodeURIComponent(roomId)}/%245)`],
    ]);
  });

  it("a message from a user whose puppet is not in the channel is refused with a notice", async () => {
    const { core, matrix, roomId } = await inChannel();
    await core.onMessage({ roomId, sender: BOB, eventId: "$1", kind: "text", body: "hello" });
    assert.match(matrix.textsIn(roomId).at(-1)!, /Not delivered to #chan/);
  });

  it("leaving the room parts the puppet; a kick on IRC removes the user from the room", async () => {
    const { core, matrix, p, roomId } = await inChannel();
    await core.onMembership({ roomId, userId: ALICE, sender: ALICE, membership: "leave" });
    assert.deepEqual(p.parts, ["#chan"]);
    await core.onMembership({ roomId, userId: ALICE, sender: ALICE, membership: "join" });
    p.emit({ type: "join", channel: "#chan", nick: "alice" });
    p.emit({ type: "kick", channel: "#chan", nick: "alice", by: "carol", reason: "out" });
    await core.idle();
    assert.deepEqual(matrix.kicks, [{ roomId, userId: ALICE, reason: "kicked from #chan by carol: out" }]);
  });

  it("topic, nick change, part and kick of IRC users are mirrored", async () => {
    const { core, matrix, p, roomId } = await inChannel();
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "hi" });
    p.emit({ type: "message", channel: "#chan", from: "dave", kind: "privmsg", text: "hi" });
    p.emit({ type: "topic", channel: "#chan", topic: "new topic", by: "carol" });
    p.emit({ type: "nick", oldNick: "carol", newNick: "carla" });
    p.emit({ type: "part", channel: "#chan", nick: "carla", reason: "" });
    p.emit({ type: "message", channel: "#chan", from: "eve", kind: "privmsg", text: "hi" });
    p.emit({ type: "kick", channel: "#chan", nick: "eve", by: "dave", reason: "spam" });
    await core.idle();
    assert.deepEqual(matrix.states.map((s) => [s.type, s.content]), [["m.room.topic", { topic: "new topic" }]]);
    const g = (n: string) => `@irc_local_${n}:test.local`;
    assert.deepEqual(matrix.joined.map((j) => j.as), [g("carol"), g("dave"), g("carla"), g("eve")]);
    assert.deepEqual(matrix.left.map((l) => l.as), [g("carol"), g("carla")]);
    assert.deepEqual(matrix.kicks.map((k) => [k.userId, k.reason]), [[g("eve"), "kicked by dave: spam"]]);
  });

  it("a Matrix kick of a ghost and a Matrix topic go to IRC through the acting user's puppet", async () => {
    const kicks: string[][] = [];
    const topics: string[][] = [];
    const { core, p, roomId } = await inChannel();
    Object.assign(p, {
      kick: (c: string, n: string, r?: string) => kicks.push([c, n, r ?? ""]),
      setTopic: (c: string, t: string) => topics.push([c, t]),
    });
    p.emit({ type: "message", channel: "#chan", from: "Carol", kind: "privmsg", text: "hi" });
    await core.idle();
    await core.onMembership({ roomId, userId: "@irc_local_carol:test.local", sender: ALICE, membership: "leave" });
    // A ghost leaving by itself (the bridge's own doing) kicks nobody.
    await core.onMembership({ roomId, userId: "@irc_local_dave:test.local", sender: "@irc_local_dave:test.local", membership: "leave" });
    await core.onTopic({ roomId, sender: ALICE, topic: "from matrix\nsecond line" });
    await core.onTopic({ roomId, sender: "@bridge:test.local", topic: "echo" });
    assert.deepEqual(kicks, [["#chan", "Carol", `by ${ALICE}`]]);
    assert.deepEqual(topics, [["#chan", "from matrix"]]);
  });

  it("quits are gathered, ghosts that came back stay, the rest leave once", async () => {
    const nicks = Array.from({ length: 30 }, (_, i) => `n${i}`);
    const { core, matrix, p, roomId } = await inChannel(["alice", ...nicks]);
    for (const n of nicks) p.emit({ type: "message", channel: "#chan", from: n, kind: "privmsg", text: "x" });
    await core.idle();
    for (const n of nicks) p.emit({ type: "quit", nick: n, reason: "*.net *.split" });
    p.emit({ type: "join", channel: "#chan", nick: "n0" });
    await core.idle();
    assert.equal(matrix.left.length, 0, "nothing leaves before the debounce window ends");
    core.channels!.flushQuits();
    await core.idle();
    assert.deepEqual(matrix.left.map((l) => l.as).sort(), nicks.slice(1).map((n) => `@irc_local_${n}:test.local`).sort());
    assert.ok(matrix.left.every((l) => l.roomId === roomId));
  });

  it("a second puppet in the same channel does not double the lines; the next one listens when the first leaves", async () => {
    const { core, matrix, p, roomId, puppets } = await inChannel();
    await core.connections.connect(BOB, "local");
    const q = puppets.get(BOB)!;
    q.up();
    await core.onMembership({ roomId, userId: BOB, sender: BOB, membership: "join" });
    q.emit({ type: "join", channel: "#chan", nick: "bob" });
    for (const pp of [p, q]) pp.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "once" });
    await core.onMembership({ roomId, userId: ALICE, sender: ALICE, membership: "leave" });
    for (const pp of [p, q]) pp.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "twice?" });
    await core.idle();
    assert.deepEqual(matrix.textsIn(roomId), ["once", "twice?"]);
  });
});

describe("plumbed rooms (admin link/unlink)", () => {
  it("only admins link; the bot joins, relays people without a puppet, and unlink undoes it", async () => {
    const { core, matrix, puppets, store } = bridgeOn({ permission: (u) => (u === ALICE ? "admin" : u === BOB ? "user" : null) });
    const run = async (userId: string, body: string) => {
      await store.putManagementRoom(userId, `!mgmt-${userId}`);
      await core.onMessage({ roomId: `!mgmt-${userId}`, sender: userId, eventId: "$c", kind: "text", body });
      return matrix.textsIn(`!mgmt-${userId}`).at(-1)!;
    };
    assert.match(await run(BOB, "link local #plumb !room:test.local"), /Only bridge admins/);
    assert.match(await run(ALICE, "link local #plumb !room:test.local"), /Linked !room:test.local to #plumb/);
    assert.deepEqual(matrix.joined.at(-1), { roomId: "!room:test.local", as: null });
    const relay = puppets.get(matrix.botUserId)!;
    relay.up();
    assert.deepEqual(relay.joins, ["#plumb"]);
    relay.emit({ type: "join", channel: "#plumb", nick: relay.nick });
    await core.onMessage({ roomId: "!room:test.local", sender: "@stranger:elsewhere", eventId: "$1", kind: "text", body: "hi\nthere" });
    await core.onMessage({ roomId: "!room:test.local", sender: "@stranger:elsewhere", eventId: "$2", kind: "emote", body: "waves" });
    assert.deepEqual(relay.lines.map((l) => [l.cmd, l.text]), [["say", "<stranger> hi\n<stranger> there"], ["say", "* stranger waves"]]);
    relay.emit({ type: "message", channel: "#plumb", from: "carol", kind: "privmsg", text: "from irc" });
    await core.idle();
    assert.deepEqual(matrix.textsIn("!room:test.local"), ["from irc"]);
    assert.match(await run(ALICE, "unlink local #plumb"), /Unlinked/);
    assert.equal(await store.getChannelRoom("local", "#plumb"), null);
    assert.deepEqual(relay.parts, ["#plumb"]);
    assert.ok(matrix.left.some((l) => l.roomId === "!room:test.local" && l.as === null));
  });
});

describe("channel memberships survive a restart", () => {
  it("a new bridge on the same store rejoins the user's channels when the puppet connects", async () => {
    const { core, p, store } = await inChannel();
    await core.idle();
    assert.equal(p.joins.length, 1);
    // Same store, new core: as after a restart.
    const { core: core2, matrix: m2, puppets } = restarted(store);
    m2.joinedMembersResult = ["@irc_local_carol:test.local", ALICE];
    assert.equal(await core2.channels!.restore(), 1);
    assert.equal(await core2.connections.restore(), 1);
    const q = puppets.get(ALICE)!;
    q.up();
    assert.deepEqual(q.joins, ["#chan"]);
    // carol's ghost was in the room before the restart: her QUIT removes it.
    q.emit({ type: "join", channel: "#chan", nick: "alice" });
    q.emit({ type: "names", channel: "#chan", users: [{ nick: "alice", modes: [] }, { nick: "carol", modes: [] }] });
    q.emit({ type: "quit", nick: "carol", reason: "bye" });
    core2.channels!.flushQuits();
    await core2.idle();
    assert.deepEqual(m2.left.map((l) => l.as), ["@irc_local_carol:test.local"]);
  });
});

describe("the room follows NAMES", () => {
  it("ghosts whose nick is not in the channel after a restart leave when the NAMES reply comes", async () => {
    const { core, p, store } = await inChannel();
    await core.idle();
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "before" });
    await core.idle();
    const { core: core2, matrix: m2, puppets } = restarted(store);
    m2.joinedMembersResult = ["@irc_local_carol:test.local", "@irc_local_dave:test.local", ALICE];
    await core2.channels!.restore();
    await core2.connections.restore();
    const q = puppets.get(ALICE)!;
    q.up();
    q.emit({ type: "join", channel: "#chan", nick: "alice" });
    // carol left IRC while the bridge was down; dave is still there.
    q.emit({ type: "names", channel: "#chan", users: [{ nick: "alice", modes: [] }, { nick: "Dave", modes: ["v"] }] });
    await core2.idle();
    assert.deepEqual(m2.left.map((l) => l.as), ["@irc_local_carol:test.local"]);
  });
});

describe("channel commands and the request rate limiter", () => {
  it("join and part parse; bad channel names are refused with the usage", () => {
    assert.deepEqual(parseCommand("join local #c key"), { name: "join", network: "local", channel: "#c", key: "key" });
    assert.deepEqual(parseCommand("part local #c"), { name: "part", network: "local", channel: "#c" });
    assert.equal(parseCommand("join local c").name, "invalid");
    assert.equal(parseCommand("join local #a,#b").name, "invalid");
  });

  it("the token bucket allows a burst, then the configured rate", async () => {
    let t = 0;
    const sleeps: number[] = [];
    const rl = new RateLimiter(10, 10, () => t, async (ms) => { sleeps.push(ms); t += ms; });
    for (let i = 0; i < 30; i++) await rl.take();
    // 10 at once, then 20 more at 10/s: 2 s of simulated time.
    assert.equal(t, 2000);
    assert.ok(sleeps.every((ms) => ms <= 100));
  });
});
