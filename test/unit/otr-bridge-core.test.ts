// The OTR pipeline behind the real BridgeCore and DmRouter: `!otr` in a DM room never reaches IRC, secrets are
// redacted through the event id the core passes down, the management room's `otr <network> <nick> ...` mirror
// answers there, and commands are answered even while disconnected.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import { OtrPipeline } from "../../src/bridge/otr/manager.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";
import { TestEnv, testKey } from "../otr/fixtures.js";

const ALICE = "@alice:test.local";
const MGMT = "!mgmt:test.local";

async function setup() {
  const store = new MemoryStore();
  const matrix = new FakeMatrix();
  const puppets: FakePuppet[] = [];
  const pipeline = new OtrPipeline({
    store, matrix, logger: silentLogger, defaultPolicy: "opportunistic", trustOnFirstUse: false,
    env: new TestEnv("core"), pollIntervalMs: 0, generateKey: async () => testKey(0),
  });
  const core = new BridgeCore({
    store, matrix, pipeline, logger: silentLogger,
    createPuppet: (req, events) => {
      const p = new FakePuppet(req, events);
      puppets.push(p);
      return p;
    },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}" }],
    permission: () => "user",
  });
  let ev = 0;
  const say = async (roomId: string, body: string) => {
    const eventId = `$m${++ev}`;
    await core.onMessage({ roomId, sender: ALICE, eventId, kind: "text", body });
    await core.idle();
    return eventId;
  };
  matrix.joinedMembersResult = [ALICE, matrix.botUserId];
  await core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: matrix.botUserId, isDirect: true });
  await core.idle();
  await say(MGMT, "connect local");
  puppets[0]!.up();
  await core.idle();
  const puppet = puppets[0]!;
  puppet.events.onMessage({ kind: "privmsg", from: "Bob", text: "hi alice" });
  await core.idle();
  const room = (await store.getDmRoom(ALICE, "local", "bob"))!;
  return { store, matrix, core, puppet, pipeline, room, say };
}

test("!otr in a DM room is answered by the ghost, never sent to IRC; a secret is redacted by its event id", async () => {
  const s = await setup();
  const ghost = s.matrix.ghostUserId("local", "bob");
  assert.ok(s.matrix.states.some((e) => e.roomId === s.room && e.type === "org.matrix_otr_irc.otr_status"));
  const before = s.puppet.lines.length;
  const id = await s.say(s.room, "!otr smp hunter2");
  assert.deepEqual(s.matrix.redactions, [{ roomId: s.room, eventId: id }]);
  assert.equal(s.puppet.lines.length, before, "nothing went to IRC");
  const last = s.matrix.sent.at(-1)!;
  assert.equal(last.from, ghost);
  assert.match(last.body, /private conversation/);
  assert.ok(!s.matrix.sent.some((m) => m.body.includes("hunter2")));
  assert.ok(!s.matrix.sent.some((m) => /Not delivered/.test(m.body)), "no generic failure notice for a command");
  await s.say(s.room, "!otr start");
  assert.ok(s.puppet.lines.at(-1)!.text.startsWith("?OTRv"), "the query went to Bob");
});

test("otr <network> <nick> <command> in the management room answers there and redacts secrets as the bot", async () => {
  const s = await setup();
  const before = s.matrix.sent.length;
  await s.say(MGMT, "otr local Bob status");
  const reply = s.matrix.sent.slice(before).find((m) => m.roomId === MGMT)!;
  assert.equal(reply.from, null);
  assert.match(reply.body, /not private/);
  const id = await s.say(MGMT, "otr local Bob ask where? ; there");
  assert.ok(s.matrix.redactions.some((r) => r.roomId === MGMT && r.eventId === id));
  await s.say(MGMT, "otr local");
  assert.match(s.matrix.sent.at(-1)!.body, /Usage: otr <network> <nick>/);
  await s.say(MGMT, "help");
  assert.match(s.matrix.sent.at(-1)!.body, /otr <network> <nick> <command>/);
});

test("commands are answered while disconnected; ordinary text is not delivered then", async () => {
  const s = await setup();
  s.puppet.connected = false;
  await s.say(s.room, "!otr help");
  assert.match(s.matrix.sent.at(-1)!.body, /!otr start/);
  await s.say(s.room, "hello?");
  assert.match(s.matrix.sent.at(-1)!.body, /not connected/);
});
