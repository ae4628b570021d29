import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore, ENCRYPTED_DM_TEXT, ENCRYPTED_MGMT_TEXT, REFUSAL_TEXT } from "../../src/bridge/core.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";
import type { MessageKind } from "../../src/bridge/ports.js";
import type { Store } from "../../src/store/types.js";

const ALICE = "@alice:test.local";
const MALLORY = "@mallory:evil.example";
const MGMT = "!mgmt:test.local";

function setup(store: Store = new MemoryStore(), matrix: FakeMatrix = new FakeMatrix()) {
  const counted: string[] = [];
  const puppets: FakePuppet[] = [];
  const core = new BridgeCore({
    store,
    matrix,
    createPuppet: (req, events) => {
      const p = new FakePuppet(req, events);
      puppets.push(p);
      return p;
    },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}" }],
    permission: (u) => (u.endsWith(":test.local") ? "user" : null),
    logger: silentLogger,
    metrics: {
      messageBridged: (d, n, e) => counted.push(`bridged ${d} ${n} ${e}`),
      messageFailed: (d, r) => counted.push(`failed ${d} ${r}`),
      connectionState: (n, f, t) => counted.push(`state ${n} ${f}->${t}`),
    },
  });
  let ev = 0;
  const say = async (roomId: string, sender: string, body: string, kind: "text" | "emote" | "notice" = "text") => {
    await core.onMessage({ roomId, sender, eventId: `$m${++ev}`, kind, body });
    await core.idle();
  };
  return { store, matrix, puppets, core, say, counted };
}

async function withManagementRoom(s: ReturnType<typeof setup>) {
  s.matrix.joinedMembersResult = [ALICE, s.matrix.botUserId];
  await s.core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: s.matrix.botUserId, isDirect: true });
  await s.core.idle();
}

async function connected(s: ReturnType<typeof setup>) {
  await withManagementRoom(s);
  await s.say(MGMT, ALICE, "connect local");
  s.puppets[0]!.up();
  await s.core.idle();
  return s.puppets[0]!;
}

test("an allowed user's 1:1 invite makes the management room and gets the help text", async () => {
  const s = setup();
  await withManagementRoom(s);
  assert.deepEqual(s.matrix.joined, [{ roomId: MGMT, as: null }]);
  assert.equal(await s.store.getManagementRoom(ALICE), MGMT);
  assert.match(s.matrix.textsIn(MGMT)[0]!, /management room[\s\S]*connect <network>/);
});

test("a room with other members is not taken as a management room", async () => {
  const s = setup();
  s.matrix.joinedMembersResult = [ALICE, s.matrix.botUserId, "@bob:test.local"];
  await s.core.onInvite({ roomId: "!group:test.local", inviter: ALICE, invitee: s.matrix.botUserId, isDirect: false });
  await s.core.idle();
  assert.equal(await s.store.getManagementRoom(ALICE), null);
  assert.deepEqual(s.matrix.left, [{ roomId: "!group:test.local", as: null }]);
});

test("a user without permission gets exactly one polite refusal", async () => {
  const s = setup();
  await s.core.onInvite({ roomId: "!m1:evil.example", inviter: MALLORY, invitee: s.matrix.botUserId, isDirect: true });
  await s.core.onInvite({ roomId: "!m2:evil.example", inviter: MALLORY, invitee: s.matrix.botUserId, isDirect: true });
  await s.core.idle();
  const refusals = s.matrix.sent.filter((m) => m.body === REFUSAL_TEXT);
  assert.equal(refusals.length, 1);
  assert.equal(await s.store.getManagementRoom(MALLORY), null);
  assert.equal(s.matrix.left.length, 2, "both rooms left");
});

test("a user whose permission went away is refused once, however many messages", async () => {
  let allowed = true;
  const matrix = new FakeMatrix();
  const core = new BridgeCore({
    store: new MemoryStore(), matrix, createPuppet: (r, e) => new FakePuppet(r, e),
    networks: [{ id: "local", name: "L", nickTemplate: "{localpart}" }],
    permission: () => (allowed ? "user" : null), logger: silentLogger,
  });
  matrix.joinedMembersResult = [ALICE, matrix.botUserId];
  await core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: matrix.botUserId, isDirect: true });
  allowed = false;
  for (let i = 0; i < 3; i++) await core.onMessage({ roomId: MGMT, sender: ALICE, eventId: `$${i}`, kind: "text", body: "help" });
  await core.idle();
  assert.equal(matrix.sent.filter((m) => m.body === REFUSAL_TEXT).length, 1);
  assert.ok(!matrix.sent.some((m) => m.body.startsWith("Commands")), "no command ran");
});

test("every command answers, including unknown ones and bad arguments", async () => {
  const s = setup();
  await withManagementRoom(s);
  const before = s.matrix.sent.length;
  const inputs = ["help", "frobnicate", "connect", "connect nowhere", "disconnect local", "nick local 9bad", "nick local alice2", "msg local", "msg local bob hi", "networks"];
  for (const body of inputs) await s.say(MGMT, ALICE, body);
  const replies = s.matrix.sent.slice(before).map((m) => m.body);
  assert.equal(replies.length, inputs.length);
  assert.match(replies[0]!, /connect <network>/);
  assert.match(replies[1]!, /Unknown command `frobnicate`/);
  assert.match(replies[2]!, /Usage: connect/);
  assert.match(replies[3]!, /Unknown network `nowhere`/);
  assert.match(replies[4]!, /not connected to local/);
  assert.match(replies[5]!, /not a valid IRC nick/);
  assert.match(replies[6]!, /will be alice2 when you connect/);
  assert.match(replies[7]!, /Usage: msg/);
  assert.match(replies[8]!, /not connected to local/);
  assert.match(replies[9]!, /local: Local IRC/);
  assert.equal((await s.store.getUserNetwork(ALICE, "local"))?.nick, "alice2");
});

test("connect creates one puppet with the template nick and reports when connected; disconnect closes it", async () => {
  const s = setup();
  await withManagementRoom(s);
  await s.say(MGMT, ALICE, "connect local");
  assert.equal(s.puppets.length, 1);
  assert.equal(s.puppets[0]!.req.nick, "alice");
  assert.equal(s.puppets[0]!.connectCalls, 1);
  await s.say(MGMT, ALICE, "connect local");
  assert.equal(s.puppets.length, 1, "second connect reuses");
  s.puppets[0]!.up();
  await new Promise((r) => setTimeout(r, 10));
  const texts = s.matrix.textsIn(MGMT);
  assert.ok(texts.some((t) => /Connecting to local as alice/.test(t)));
  assert.ok(texts.some((t) => /already have a connection/.test(t)));
  assert.ok(texts.some((t) => t === "Connected to local as alice."));
  await s.say(MGMT, ALICE, "nick local alice_x");
  assert.deepEqual(s.puppets[0]!.nicks, ["alice_x"]);
  await s.say(MGMT, ALICE, "disconnect local");
  assert.ok(s.puppets[0]!.disconnected);
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, /Disconnected from local/);
});

test("IRC messages from one contact create exactly one DM room, whatever the nick's case, and keep order", async () => {
  const s = setup();
  const p = await connected(s);
  const nicks = ["Bob[1]", "bob{1}", "BOB[1]", "bob{1}", "Bob[1]"];
  nicks.forEach((from, i) => p.events.onMessage({ kind: "privmsg", from, text: `m${i}` }));
  await s.core.idle();
  assert.equal(s.matrix.rooms.size, 1);
  const [roomId, room] = [...s.matrix.rooms][0]!;
  assert.equal(room.creator, "@irc_local_bob=7b1=7d:test.local");
  assert.deepEqual(room.invited, [ALICE]);
  assert.deepEqual(s.matrix.textsIn(roomId), ["m0", "m1", "m2", "m3", "m4"]);
  assert.ok(s.matrix.sent.filter((m) => m.roomId === roomId).every((m) => m.from === room.creator && m.kind === "text"));
  assert.equal(await s.store.getDmRoom(ALICE, "local", "bob{1}"), roomId);
  p.events.onMessage({ kind: "action", from: "bob[1]", text: "waves" });
  p.events.onMessage({ kind: "notice", from: "bob[1]", text: "fyi" });
  await s.core.idle();
  assert.deepEqual(s.matrix.sent.slice(-2).map((m) => [m.roomId, m.kind, m.body]), [[roomId, "emote", "waves"], [roomId, "notice", "fyi"]]);
  assert.equal(s.matrix.rooms.size, 1);
});

test("what the user writes in the DM room goes to IRC: text as PRIVMSG, emote as ACTION, notice as NOTICE", async () => {
  const s = setup();
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi" });
  await s.core.idle();
  const roomId = [...s.matrix.rooms.keys()][0]!;
  await s.say(roomId, ALICE, "hello bob");
  await s.say(roomId, ALICE, "smiles", "emote");
  await s.say(roomId, ALICE, "note", "notice");
  await s.say(roomId, "@eve:test.local", "not the owner");
  assert.deepEqual(p.lines, [
    { cmd: "say", target: "Bob", text: "hello bob" },
    { cmd: "action", target: "Bob", text: "smiles" },
    { cmd: "notice", target: "Bob", text: "note" },
  ]);
});

/** A Matrix port that keeps call order (as the outbox does) and whose sends to DM rooms wait until released. */
class GatedOrderedMatrix extends FakeMatrix {
  readonly sendsInOrder = true;
  open: () => void = () => undefined;
  private readonly gate = new Promise<void>((r) => (this.open = r));
  override async send(roomId: string, from: string | null, kind: MessageKind, body: string): Promise<string> {
    if (roomId.startsWith("!dm")) await this.gate;
    return super.send(roomId, from, kind, body);
  }
}

test("a DM's line to IRC does not wait for the homeserver to take the contact's earlier message; their order holds", async () => {
  const s = setup(new MemoryStore(), new GatedOrderedMatrix());
  const matrix = s.matrix as GatedOrderedMatrix;
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "one" });
  let roomId: string | undefined;
  for (let i = 0; i < 200 && !roomId; i++) {
    await new Promise((r) => setTimeout(r, 5));
    roomId = [...matrix.rooms.keys()][0];
  }
  assert.ok(roomId, "the DM room was made");
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "two" });
  void s.core.onMessage({ roomId, sender: ALICE, eventId: "$reply", kind: "text", body: "hello bob" });
  for (let i = 0; i < 200 && p.lines.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(p.lines, [{ cmd: "say", target: "Bob", text: "hello bob" }], "the reply reached IRC while Matrix had not taken 'one'");
  assert.deepEqual(matrix.textsIn(roomId), []);
  matrix.open();
  for (let i = 0; i < 200 && matrix.textsIn(roomId).length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  await s.core.idle();
  assert.deepEqual(matrix.textsIn(roomId), ["one", "two"]);
  assert.ok(s.counted.includes("bridged irc_to_matrix local false"), "counted once the homeserver took it");
});

test("writing in a DM room while disconnected says so instead of losing the message silently", async () => {
  const s = setup();
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "bob", text: "hi" });
  await s.core.idle();
  const roomId = [...s.matrix.rooms.keys()][0]!;
  await s.say(MGMT, ALICE, "disconnect local");
  await s.say(roomId, ALICE, "are you there");
  assert.match(s.matrix.textsIn(roomId).at(-1)!, /Not delivered: you are not connected to local/);
});

test("msg opens the DM room once, reuses it, re-invites a user who is not in it, and sends the text", async () => {
  const s = setup();
  const p = await connected(s);
  await s.say(MGMT, ALICE, "msg local Carol hello there");
  assert.equal(s.matrix.rooms.size, 1);
  const roomId = [...s.matrix.rooms.keys()][0]!;
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, new RegExp(`Opened your direct chat with Carol on local: ${roomId.replace(/[.$!]/g, "\\$&")}`));
  assert.deepEqual(p.lines, [{ cmd: "say", target: "Carol", text: "hello there" }]);
  assert.equal(s.matrix.displayNames.get("@irc_local_carol:test.local"), "Carol");
  s.matrix.memberships.set(`${roomId} ${ALICE}`, "join");
  await s.say(MGMT, ALICE, "msg local CAROL");
  assert.equal(s.matrix.rooms.size, 1);
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, /Reusing your direct chat/);
  assert.deepEqual(s.matrix.rooms.get(roomId)!.invited, [ALICE], "joined user not re-invited");
  s.matrix.memberships.set(`${roomId} ${ALICE}`, "leave");
  await s.say(MGMT, ALICE, "msg local carol");
  assert.deepEqual(s.matrix.rooms.get(roomId)!.invited, [ALICE, ALICE], "user who left is invited again");
});

test("when the user leaves a DM room it is forgotten and the next message opens a new one", async () => {
  const s = setup();
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "bob", text: "one" });
  await s.core.idle();
  const first = [...s.matrix.rooms.keys()][0]!;
  await s.core.onMembership({ roomId: first, userId: ALICE, sender: ALICE, membership: "leave" });
  await s.core.idle();
  assert.equal(await s.store.getDmRoom(ALICE, "local", "bob"), null);
  p.events.onMessage({ kind: "privmsg", from: "bob", text: "two" });
  await s.core.idle();
  assert.equal(s.matrix.rooms.size, 2);
  assert.notEqual(await s.store.getDmRoom(ALICE, "local", "bob"), first);
});

test("a user's invite of a ghost makes that room the DM with the contact", async () => {
  const s = setup();
  const p = await connected(s);
  await s.core.onInvite({ roomId: "!mine:test.local", inviter: ALICE, invitee: "@irc_local_dave:test.local", isDirect: true });
  await s.core.idle();
  assert.deepEqual(s.matrix.joined.at(-1), { roomId: "!mine:test.local", as: "@irc_local_dave:test.local" });
  await s.say("!mine:test.local", ALICE, "hey dave");
  assert.deepEqual(p.lines.at(-1), { cmd: "say", target: "dave", text: "hey dave" });
  await s.core.onInvite({ roomId: "!mine2:test.local", inviter: ALICE, invitee: "@irc_local_dave:test.local", isDirect: true });
  await s.core.idle();
  assert.equal(await s.store.getDmRoom(ALICE, "local", "dave"), "!mine2:test.local");
  assert.deepEqual(s.matrix.left.at(-1), { roomId: "!mine:test.local", as: "@irc_local_dave:test.local" }, "the ghost leaves the old room");
  await s.core.onInvite({ roomId: "!m3:evil.example", inviter: MALLORY, invitee: "@irc_local_dave:test.local", isDirect: true });
  await s.core.idle();
  assert.deepEqual(s.matrix.left.at(-1), { roomId: "!m3:evil.example", as: "@irc_local_dave:test.local" });
});

test("after a restart, users who were connected are reconnected and nobody else", async () => {
  const store = new MemoryStore();
  const s1 = setup(store);
  await withManagementRoom(s1);
  await s1.say(MGMT, ALICE, "connect local");
  await s1.core.connections.stopAll(() => "restart");
  const s2 = setup(store);
  assert.equal(await s2.core.connections.restore(), 1);
  assert.equal(s2.puppets.length, 1);
  assert.equal(s2.puppets[0]!.req.userId, ALICE);
  assert.equal(s2.puppets[0]!.connectCalls, 1);
  await s2.say(MGMT, ALICE, "disconnect local");
  const s3 = setup(store);
  assert.equal(await s3.core.connections.restore(), 0);
});

test("a refused user is not refused again after a restart", async () => {
  const store = new MemoryStore();
  const s1 = setup(store);
  await s1.core.onInvite({ roomId: "!m1:evil.example", inviter: MALLORY, invitee: s1.matrix.botUserId, isDirect: true });
  await s1.core.idle();
  const s2 = setup(store);
  await s2.core.onInvite({ roomId: "!m2:evil.example", inviter: MALLORY, invitee: s2.matrix.botUserId, isDirect: true });
  await s2.core.idle();
  assert.equal(s1.matrix.sent.filter((m) => m.body === REFUSAL_TEXT).length, 1);
  assert.equal(s2.matrix.sent.length, 0);
  assert.deepEqual(s2.matrix.left, [{ roomId: "!m2:evil.example", as: null }]);
});

test("metrics count bridged and failed messages and connection states, without user or room labels", async () => {
  const s = setup();
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "bob", text: "hi" });
  await s.core.idle();
  const roomId = [...s.matrix.rooms.keys()][0]!;
  await s.say(roomId, ALICE, "hello");
  p.events.onDisconnected({ reason: "connection lost", willRetry: true, retryInMs: 1000 });
  p.connected = false;
  await s.say(roomId, ALICE, "lost");
  await s.say(MGMT, ALICE, "disconnect local");
  assert.deepEqual(s.counted, [
    "state local null->connecting",
    "state local connecting->connected",
    "bridged irc_to_matrix local false",
    "bridged matrix_to_irc local false",
    "state local connected->backoff",
    "failed matrix_to_irc not-connected",
    "state local backoff->null",
  ]);
});

test("an encrypted DM with the bot is answered with an unencrypted management room", async () => {
  const s = setup();
  s.matrix.encryptedRooms.add("!enc:test.local");
  await s.core.onInvite({ roomId: "!enc:test.local", inviter: ALICE, invitee: s.matrix.botUserId, isDirect: true });
  await s.core.idle();
  assert.deepEqual(s.matrix.textsIn("!enc:test.local"), [ENCRYPTED_MGMT_TEXT]);
  assert.deepEqual(s.matrix.left, [{ roomId: "!enc:test.local", as: null }]);
  const mgmt = await s.store.getManagementRoom(ALICE);
  assert.ok(mgmt && mgmt !== "!enc:test.local");
  assert.deepEqual(s.matrix.rooms.get(mgmt)!.invited, [ALICE]);
  assert.equal(s.matrix.rooms.get(mgmt)!.creator, s.matrix.botUserId);
  await s.say(mgmt, ALICE, "help");
  assert.match(s.matrix.textsIn(mgmt).at(-1)!, /connect <network>/);
});

test("inviting a ghost into an encrypted room gets a notice and an unencrypted DM instead", async () => {
  const s = setup();
  const p = await connected(s);
  s.matrix.encryptedRooms.add("!enc2:test.local");
  await s.core.onInvite({ roomId: "!enc2:test.local", inviter: ALICE, invitee: "@irc_local_erin:test.local", isDirect: true });
  await s.core.idle();
  assert.deepEqual(s.matrix.textsIn("!enc2:test.local"), [ENCRYPTED_DM_TEXT]);
  assert.deepEqual(s.matrix.left.at(-1), { roomId: "!enc2:test.local", as: "@irc_local_erin:test.local" });
  const dm = await s.store.getDmRoom(ALICE, "local", "erin");
  assert.ok(dm && dm !== "!enc2:test.local");
  assert.deepEqual(s.matrix.rooms.get(dm)!.invited, [ALICE]);
  await s.say(dm, ALICE, "hi erin");
  assert.deepEqual(p.lines.at(-1), { cmd: "say", target: "erin", text: "hi erin" });
});

test("a crafted ghost id whose nick is not a valid IRC nick is declined and never reaches IRC", async () => {
  const s = setup();
  const p = await connected(s);
  const crafted = "@irc_local_x=0d=0aquit=20=3abye:test.local"; // nick "x\r\nquit :bye"
  assert.deepEqual(s.matrix.parseGhost(crafted), { networkId: "local", foldedNick: "x\r\nquit :bye" });
  await s.core.onInvite({ roomId: "!crafted:test.local", inviter: ALICE, invitee: crafted, isDirect: true });
  await s.core.idle();
  assert.deepEqual(s.matrix.left.at(-1), { roomId: "!crafted:test.local", as: crafted });
  assert.equal(await s.store.findDmByRoom("!crafted:test.local"), null);
  await s.say("!crafted:test.local", ALICE, "hello");
  assert.deepEqual(p.lines, []);
});

test("a ghost's display name the homeserver does not take (down) does not cost the contact's message", async () => {
  const s = setup();
  const p = await connected(s);
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "first" });
  await s.core.idle();
  s.matrix.setDisplayName = async () => { throw Object.assign(new Error("down"), { code: "ECONNREFUSED" }); };
  p.events.onMessage({ kind: "privmsg", from: "BOB", text: "renamed while down" });
  await s.core.idle();
  const roomId = (await s.store.getDmRoom(ALICE, "local", "bob"))!;
  assert.deepEqual(s.matrix.textsIn(roomId), ["first", "renamed while down"]);
});
