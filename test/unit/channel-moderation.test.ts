// Bans, power levels and channel keys in channel portals, against the in-process fakes (the e2e test runs the
// same paths against Synapse and ngIRCd).
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseCommand } from "../../src/bridge/commands.js";
import { maskMatches } from "../../src/irc/mask.js";
import { foldNick } from "../../src/irc/casemap.js";
import { ALICE, BOB, inChannel, restarted } from "./channel-fakes.js";

const g = (nick: string) => `@irc_local_${nick}:test.local`;

describe("IRC ban masks", () => {
  const fold = (s: string) => foldNick(s);
  it("match with * and ?, case-insensitively under rfc1459, and only what they say", () => {
    assert.ok(maskMatches("carol!*@*", "Carol!c@host.example", fold));
    assert.ok(maskMatches("*!*@*.example", "x!y@a.b.example", fold));
    assert.ok(maskMatches("b?b[1]!*@*", "bob{1}!u@h", fold), "[ ] fold to { } under rfc1459");
    assert.ok(maskMatches("*", "a!b@c", fold));
    assert.ok(!maskMatches("carol!*@*", "carolyn!c@h", fold));
    assert.ok(!maskMatches("*!*@evil.example", "carol!*@*", fold), "an unknown host is matched by no host ban");
    assert.ok(maskMatches("carol!*@*", "carol!*@*", fold), "an unknown host is matched by a nick ban");
    assert.ok(!maskMatches("", "a", fold) && maskMatches("", "", fold));
  });

  it("a mask built to backtrack still answers (and correctly) on a long candidate", () => {
    const mask = `${"*a".repeat(40)}*b`;
    assert.equal(maskMatches(mask, "a".repeat(5000), (s) => s), false);
    assert.equal(maskMatches(mask, `${"a".repeat(5000)}b`, (s) => s), true);
  });
});

describe("bans between Matrix and IRC", () => {
  it("a Matrix ban of a ghost sets +b nick!*@* and kicks through the acting user's puppet; the unban lifts it", async () => {
    const { core, matrix, p, roomId } = await inChannel();
    const kicks: string[] = [];
    Object.assign(p, { kick: (c: string, n: string) => kicks.push(`${c} ${n}`) });
    p.emit({ type: "message", channel: "#chan", from: "Carol", kind: "privmsg", text: "spam" });
    await core.idle();
    matrix.memberships.set(`${roomId} ${g("carol")}`, "ban");
    await core.onMembership({ roomId, userId: g("carol"), sender: ALICE, membership: "ban", prevMembership: "join" });
    assert.deepEqual(p.modes, ["#chan +b Carol!*@*"]);
    assert.deepEqual(kicks, ["#chan Carol"]);
    // The server echoes the MODE: it is recorded, and the room is not asked to ban twice.
    p.emit({ type: "ban", channel: "#chan", mask: "Carol!*@*", set: true, by: "alice" });
    await core.idle();
    assert.deepEqual(matrix.bans, []);
    // While banned, what the nick says on IRC is not shown in the room.
    const sent = matrix.sent.length;
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "evading" });
    await core.idle();
    assert.equal(matrix.sent.length, sent);
    // A Matrix unban (ban -> leave) lifts the ban on IRC; a plain kick would not say -b.
    matrix.memberships.set(`${roomId} ${g("carol")}`, "leave");
    await core.onMembership({ roomId, userId: g("carol"), sender: ALICE, membership: "leave", prevMembership: "ban" });
    assert.deepEqual(p.modes, ["#chan +b Carol!*@*", "#chan -b carol!*@*"]);
    assert.deepEqual(kicks, ["#chan Carol"], "an unban kicks nobody");
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "back" });
    await core.idle();
    assert.equal(matrix.textsIn(roomId).at(-1), "back");
  });

  it("an op lifting on IRC the ban a Matrix moderator set lets the ghost back into the room", async () => {
    const { core, matrix, p, roomId } = await inChannel();
    p.emit({ type: "message", channel: "#chan", from: "Carol", kind: "privmsg", text: "spam" });
    await core.idle();
    matrix.memberships.set(`${roomId} ${g("carol")}`, "ban");
    await core.onMembership({ roomId, userId: g("carol"), sender: ALICE, membership: "ban", prevMembership: "join" });
    p.emit({ type: "ban", channel: "#chan", mask: "CAROL!*@*", set: false, by: "op" });
    await core.idle();
    assert.deepEqual(matrix.unbans.map((u) => u.userId), [g("carol")]);
  });

  it("an IRC +b bans the ghosts and Matrix users it matches from the room, and -b lets them back", async () => {
    const { core, matrix, p, roomId, puppets } = await inChannel();
    await core.connections.connect(BOB, "local");
    const q = puppets.get(BOB)!;
    q.up();
    await core.onMembership({ roomId, userId: BOB, sender: BOB, membership: "join" });
    q.emit({ type: "join", channel: "#chan", nick: "bob", mask: "bob!~bob@bridge.host" });
    p.emit({ type: "join", channel: "#chan", nick: "bob", mask: "bob!~bob@bridge.host" });
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "x", mask: "carol!~c@evil.example" });
    p.emit({ type: "message", channel: "#chan", from: "dave", kind: "privmsg", text: "y" });
    await core.idle();
    // A host ban: carol's host is known and matches; dave's host is unknown, so it cannot match him.
    p.emit({ type: "ban", channel: "#chan", mask: "*!*@evil.example", set: true, by: "op" });
    p.emit({ type: "ban", channel: "#chan", mask: "BOB!*@*", set: true, by: "op" });
    p.emit({ type: "ban", channel: "#chan", mask: "nobody!*@*", set: true, by: "op" });
    // erin is in another channel only: a ban in #chan is not hers to suffer in this room.
    await core.connections.connect("@erin:test.local", "local");
    await core.channels!.joinCommand("@erin:test.local", "local", "#other");
    p.emit({ type: "ban", channel: "#chan", mask: "erin!*@*", set: true, by: "op" });
    await core.idle();
    assert.deepEqual(matrix.bans.map((b) => [b.userId, b.reason]), [
      [g("carol"), "banned on IRC by op (*!*@evil.example)"],
      [BOB, "banned on IRC by op (BOB!*@*)"],
    ]);
    // The room's ban of bob takes his puppet out of the channel (the homeserver does not echo the bot's own ban).
    assert.deepEqual(q.parts, ["#chan"]);
    // The IRC KICK that usually follows a ban does not kick the already banned ghost a second time.
    p.emit({ type: "kick", channel: "#chan", nick: "carol", by: "op", reason: "" });
    await core.idle();
    assert.deepEqual(matrix.kicks, []);
    p.emit({ type: "ban", channel: "#chan", mask: "*!*@EVIL.example", set: false, by: "op" });
    p.emit({ type: "ban", channel: "#chan", mask: "bob!*@*", set: false, by: "op" });
    await core.idle();
    assert.deepEqual(matrix.unbans.map((u) => u.userId), [g("carol"), BOB]);
  });

  it("mirrored bans are kept in the store: after a restart an IRC -b still unbans", async () => {
    const { core, matrix, p, roomId, store } = await inChannel();
    p.emit({ type: "message", channel: "#chan", from: "carol", kind: "privmsg", text: "x", mask: "carol!c@h" });
    await core.idle();
    p.emit({ type: "ban", channel: "#chan", mask: "*!c@h", set: true, by: "op" });
    await core.idle();
    assert.equal(matrix.bans.length, 1);
    const { core: core2, matrix: m2, puppets } = restarted(store);
    m2.memberships.set(`${roomId} ${g("carol")}`, "ban");
    await core2.channels!.restore();
    await core2.connections.restore();
    const q = puppets.get(ALICE)!;
    q.up();
    q.emit({ type: "join", channel: "#chan", nick: "alice" });
    q.emit({ type: "ban", channel: "#chan", mask: "*!c@h", set: false, by: "op" });
    await core2.idle();
    assert.deepEqual(m2.unbans.map((u) => u.userId), [g("carol")]);
  });
});

describe("power levels to IRC modes", () => {
  it("levels a Matrix user changes become +o/-o/+v/-v from their puppet; untouched users and the bot's own changes send nothing", async () => {
    const { core, matrix, p, roomId } = await inChannel(["alice", "carol", "dave", "erin"]);
    // carol is op on IRC (see inChannel); erin is voiced.
    p.emit({ type: "mode", channel: "#chan", nick: "erin", mode: "+v", by: "carol" });
    await core.idle();
    const change = (users: Record<string, number>, prevUsers: Record<string, number>, sender = ALICE) =>
      core.onPowerLevels({ roomId, sender, users, usersDefault: 0, prevUsers, prevUsersDefault: 0 });
    await change({ [ALICE]: 100, [g("dave")]: 50, [g("carol")]: 50, [g("erin")]: 10 }, { [ALICE]: 100, [g("carol")]: 50, [g("erin")]: 10 });
    assert.deepEqual(p.modes, ["#chan +o dave"]);
    await change({ [ALICE]: 100, [g("dave")]: 10, [g("erin")]: 10 }, { [ALICE]: 100, [g("dave")]: 50, [g("carol")]: 50, [g("erin")]: 10 });
    // dave has no +o on IRC yet (the server has not echoed it), so lowering him to voice only adds +v.
    assert.deepEqual(p.modes.slice(1), ["#chan +v dave", "#chan -o carol"]);
    await change({ [ALICE]: 100 }, { [ALICE]: 100, [g("erin")]: 10 });
    assert.deepEqual(p.modes.slice(3), ["#chan -v erin"]);
    await change({ [g("dave")]: 100 }, {}, matrix.botUserId);
    await change({ [g("nobody")]: 100 }, {});
    assert.equal(p.modes.length, 4, "the bot's own change, and someone not in the channel, send nothing");
  });

  it("a user whose puppet is not in the channel changes nothing on IRC", async () => {
    const { core, p, roomId } = await inChannel();
    await core.onPowerLevels({ roomId, sender: BOB, users: { [g("dave")]: 50 }, usersDefault: 0, prevUsers: {}, prevUsersDefault: 0 });
    assert.deepEqual(p.modes, []);
  });
});

describe("channel keys", () => {
  it("are kept sealed per user, used to rejoin, follow +k/-k, and go when the user parts", async () => {
    const { core, store, puppets, matrix } = await inChannel();
    await core.connections.connect(BOB, "local");
    const q = puppets.get(BOB)!;
    q.up();
    await store.putManagementRoom(BOB, "!mgmt-bob");
    await core.onMessage({ roomId: "!mgmt-bob", sender: BOB, eventId: "$join", kind: "text", body: "join local #Chan s3cret" });
    assert.match(matrix.textsIn("!mgmt-bob").at(-1)!, /redacted/);
    assert.deepEqual(matrix.redactions, [{ roomId: "!mgmt-bob", eventId: "$join" }]);
    await core.channels!.idle();
    assert.equal(await store.getChannelKey(BOB, "local", "#chan"), "s3cret");
    // A reconnect rejoins with the key.
    core.channels!.connected(BOB, "local");
    assert.equal(q.keys.at(-1), "s3cret");
    // Joining again without a key keeps it.
    await core.channels!.joinCommand(BOB, "local", "#chan");
    await core.channels!.idle();
    assert.equal(await store.getChannelKey(BOB, "local", "#chan"), "s3cret");
    // An op changes the key (seen by alice's listening puppet): everyone's stored key follows.
    puppets.get(ALICE)!.emit({ type: "key", channel: "#chan", key: "n3w", by: "carol" });
    await core.channels!.idle();
    assert.equal(await store.getChannelKey(BOB, "local", "#chan"), "n3w");
    assert.equal(await store.getChannelKey(ALICE, "local", "#chan"), "n3w");
    // After a restart the puppet rejoins with the stored key.
    const after = restarted(store);
    await after.core.channels!.restore();
    await after.core.connections.restore();
    after.puppets.get(BOB)!.up();
    assert.deepEqual([after.puppets.get(BOB)!.joins, after.puppets.get(BOB)!.keys], [["#chan"], ["n3w"]]);
    puppets.get(ALICE)!.emit({ type: "key", channel: "#chan", key: null, by: "carol" });
    await core.channels!.idle();
    assert.equal(await store.getChannelKey(ALICE, "local", "#chan"), null);
    await core.channels!.joinCommand(BOB, "local", "#chan", "again");
    await core.channels!.partCommand(BOB, "local", "#chan");
    await core.channels!.idle();
    assert.equal(await store.getChannelKey(BOB, "local", "#chan"), null);
  });

  it("a key that would break the JOIN line is refused before anything happens", () => {
    assert.equal(parseCommand("join local #c a,b").name, "invalid");
    assert.equal(parseCommand("join local #c a\x07b").name, "invalid");
    assert.equal(parseCommand("join local #c a\u0085b").name, "invalid");
    assert.equal(parseCommand(`join local #c ${"k".repeat(101)}`).name, "invalid");
    assert.deepEqual(parseCommand("join local #c k€y"), { name: "join", network: "local", channel: "#c", key: "k€y" });
  });
});

describe("refusals from the server", () => {
  it("reach the user they concern, in their management room, with a code; the listener's other traffic is not involved", async () => {
    const { core, matrix, puppets, store, p } = await inChannel();
    await store.putManagementRoom(BOB, "!mgmt-bob");
    await core.connections.connect(BOB, "local");
    const q = puppets.get(BOB)!;
    q.up();
    await core.channels!.joinCommand(BOB, "local", "#chan");
    // bob is not the listener (alice is), yet his own refusal is reported; alice has no management room: the portal.
    q.emit({ type: "refused", channel: "#chan", reason: "bad-key" });
    p.emit({ type: "refused", channel: "#chan", reason: "not-operator" });
    q.emit({ type: "refused", channel: "#elsewhere", reason: "banned" });
    await core.idle();
    const notices = matrix.sent.filter((m) => /Your IRC connection/.test(m.body)).map((m) => [m.roomId, m.body]);
    assert.deepEqual(notices, [
      ["!mgmt-bob", "Your IRC connection could not join #chan on local: the channel needs a key. Send `join local #chan <key>`."],
      ["!chan1:test.local", "Your IRC connection is not a channel operator in #chan on local: the server refused the kick, ban, mode or topic change, so IRC did not follow the room."],
    ]);
    assert.ok(matrix.extras.some((x) => x?.["org.matrix_otr_irc.channel_refused"] === "bad-key"));
  });
});
