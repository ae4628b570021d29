// A contact who changes nick (seen in a shared channel) keeps one DM room: the mapping moves to the new folded nick,
// the new ghost is invited with the new display name, and later messages from the new nick land in the same room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";
import { PlaintextPipeline, type DmContext, type DmPipeline } from "../../src/bridge/dm-pipeline.js";

const ALICE = "@alice:test.local";
const MGMT = "!mgmt:test.local";

/** Records power grants: DM rooms are private chats, so only a member with power (the old ghost) can grant. */
class PowerMatrix extends FakeMatrix {
  power: Array<[string, string, number, string | null | undefined]> = [];
  async setPowerLevel(roomId: string, userId: string, level: number, as?: string | null): Promise<void> {
    this.power.push([roomId, userId, level, as]);
  }
}

async function connected(pipeline?: DmPipeline) {
  const store = new MemoryStore();
  const matrix = new PowerMatrix();
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
    ...(pipeline ? { pipeline } : {}),
  });
  matrix.joinedMembersResult = [ALICE, matrix.botUserId];
  await core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: matrix.botUserId, isDirect: true });
  await core.idle();
  await core.onMessage({ roomId: MGMT, sender: ALICE, eventId: "$c", kind: "text", body: "connect local" });
  await core.idle();
  const p = puppets[0]!;
  p.up();
  await core.idle();
  return { store, matrix, core, p };
}

test("a renamed contact keeps the DM room: mapping moved, new ghost invited and named, notice, later messages there", async () => {
  const { store, matrix, core, p } = await connected();
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi" });
  await core.idle();
  const roomId = (await store.getDmRoom(ALICE, "local", "bob"))!;
  assert.ok(roomId);
  p.events.onChannel!({ type: "nick", oldNick: "Bob", newNick: "Robert[away]" });
  await core.idle();
  const newGhost = matrix.ghostUserId("local", "robert{away}");
  assert.equal(await store.getDmRoom(ALICE, "local", "bob"), null);
  assert.equal(await store.getDmRoom(ALICE, "local", "robert{away}"), roomId);
  assert.ok(matrix.rooms.get(roomId)!.invited.includes(newGhost));
  assert.ok(matrix.joined.some((j) => j.roomId === roomId && j.as === newGhost));
  assert.equal(matrix.displayNames.get(newGhost), "Robert[away]");
  assert.deepEqual(matrix.power, [[roomId, newGhost, 100, matrix.ghostUserId("local", "bob")]], "the old ghost gives the new one its power");
  const notice = matrix.sent.at(-1)!;
  assert.deepEqual([notice.roomId, notice.from, notice.kind, notice.body], [roomId, newGhost, "notice", "Bob is now known as Robert[away]"]);
  p.events.onMessage({ kind: "privmsg", from: "robert{AWAY}", text: "still me" });
  await core.idle();
  assert.equal(matrix.rooms.size, 1, "no second DM room");
  assert.deepEqual([matrix.sent.at(-1)!.roomId, matrix.sent.at(-1)!.from, matrix.sent.at(-1)!.body], [roomId, newGhost, "still me"]);
  // What Alice writes there goes to the new nick (as last spelled).
  await core.onMessage({ roomId, sender: ALICE, eventId: "$r", kind: "text", body: "hello again" });
  await core.idle();
  assert.deepEqual(p.lines.at(-1), { cmd: "say", target: "robert{AWAY}", text: "hello again" });
});

test("a nick change of someone without a DM room, or onto a nick that has its own, moves nothing", async () => {
  const { store, matrix, core, p } = await connected();
  p.events.onChannel!({ type: "nick", oldNick: "Stranger", newNick: "Other" });
  await core.idle();
  assert.equal(matrix.rooms.size, 0);
  assert.deepEqual(await store.listDmRooms(ALICE), []);
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "1" });
  p.events.onMessage({ kind: "privmsg", from: "Carol", text: "2" });
  await core.idle();
  const bobRoom = await store.getDmRoom(ALICE, "local", "bob");
  const carolRoom = await store.getDmRoom(ALICE, "local", "carol");
  const sentBefore = matrix.sent.length;
  p.events.onChannel!({ type: "nick", oldNick: "Bob", newNick: "carol" });
  await core.idle();
  assert.equal(await store.getDmRoom(ALICE, "local", "bob"), bobRoom);
  assert.equal(await store.getDmRoom(ALICE, "local", "carol"), carolRoom);
  assert.equal(matrix.sent.length, sentBefore);
  // A change of case only keeps the key and renames the ghost.
  p.events.onChannel!({ type: "nick", oldNick: "Bob", newNick: "BOB" });
  await core.idle();
  assert.equal(await store.getDmRoom(ALICE, "local", "bob"), bobRoom);
  assert.equal(matrix.displayNames.get(matrix.ghostUserId("local", "bob")), "BOB");
});

test("the per-peer OTR policy override and the pipeline's per-peer state follow the contact to the new nick", async () => {
  const moved: Array<[string, string, string, string]> = [];
  class Recording extends PlaintextPipeline {
    async renamed(oldFolded: string, ctx: DmContext) { moved.push([oldFolded, ctx.foldedNick, ctx.peerNick, ctx.roomId]); }
  }
  const { store, core, p } = await connected(new Recording());
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi" });
  await core.idle();
  const roomId = (await store.getDmRoom(ALICE, "local", "bob"))!;
  await store.putPeerPolicy(ALICE, "local", "bob", "always");
  p.events.onChannel!({ type: "nick", oldNick: "Bob", newNick: "Robert" });
  await core.idle();
  assert.equal(await store.getPeerPolicy(ALICE, "local", "robert"), "always");
  assert.equal(await store.getPeerPolicy(ALICE, "local", "bob"), null);
  assert.deepEqual(moved, [["bob", "robert", "Robert", roomId]]);
});

test("a message from the new nick right after the NICK line lands in the moved room, not a second one", async () => {
  const { store, matrix, core, p } = await connected();
  p.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi" });
  await core.idle();
  const roomId = (await store.getDmRoom(ALICE, "local", "bob"))!;
  p.events.onChannel!({ type: "nick", oldNick: "Bob", newNick: "Robert" });
  p.events.onMessage({ kind: "privmsg", from: "Robert", text: "at once" });
  await core.idle();
  assert.equal(matrix.rooms.size, 1);
  assert.deepEqual(matrix.textsIn(roomId).slice(-2), ["Bob is now known as Robert", "at once"]);
});
