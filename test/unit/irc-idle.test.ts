// Idle policy: a puppet whose user was quiet on Matrix past the network's timeout is disconnected (one notice),
// is not reconnected by a bridge restart, and comes back with the user's next message, which is then sent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";
import type { Store } from "../../src/store/types.js";

const ALICE = "@alice:test.local";
const MGMT = "!mgmt:test.local";
const HOUR = 3_600_000;

class HoldingPuppet extends FakePuppet {
  get canSend() { return this.connected || !this.disconnected; }
  override say(target: string, text: string) { this.lines.push({ cmd: "say", target, text }); return this.canSend ? 1 : 0; }
}

function setup(store: Store, clock: { t: number }) {
  const matrix = new FakeMatrix();
  const puppets: HoldingPuppet[] = [];
  const core = new BridgeCore({
    store,
    matrix,
    createPuppet: (req, events) => {
      const p = new HoldingPuppet(req, events);
      puppets.push(p);
      return p;
    },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}", idleTimeoutMs: 2 * HOUR }],
    permission: (u) => (u.endsWith(":test.local") ? "user" : null),
    logger: silentLogger,
  });
  // The clock is the manager's option; BridgeCore builds the manager, so set it through the instance.
  (core.connections as unknown as { o: { now: () => number } }).o.now = () => clock.t;
  return { matrix, puppets, core };
}

/** Alice has a management room and a connected puppet. */
async function connectedWithManagementRoom(s: ReturnType<typeof setup>): Promise<void> {
  s.matrix.joinedMembersResult = [ALICE, s.matrix.botUserId];
  await s.core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: s.matrix.botUserId, isDirect: true });
  await s.core.idle();
  await s.core.onMessage({ roomId: MGMT, sender: ALICE, eventId: "$1", kind: "text", body: "connect local" });
  await s.core.idle();
  s.puppets[0]!.up();
}

test("idle users are disconnected once, stay so across a restart, and their next message reconnects and is sent", async () => {
  const store = new MemoryStore();
  const clock = { t: 1_000_000 };
  const s = setup(store, clock);
  await connectedWithManagementRoom(s);
  await store.putDmRoom(ALICE, "local", "dave", "!dm:test.local");

  clock.t += HOUR;
  assert.equal(await s.core.connections.sweepIdle(), 0, "not idle yet");
  clock.t += 2 * HOUR;
  assert.equal(await s.core.connections.sweepIdle(), 1);
  assert.equal(await s.core.connections.sweepIdle(), 0, "once");
  assert.ok(s.puppets[0]!.disconnected);
  assert.equal(s.core.connections.get(ALICE, "local"), undefined);
  const notices = () => s.matrix.textsIn(MGMT).filter((t) => /no activity/.test(t)).length;
  for (let i = 0; i < 100 && notices() === 0; i++) await new Promise((res) => setImmediate(res));
  assert.equal(notices(), 1);
  await s.core.connections.stopAll(() => "bye");

  // A restart does not wake idle users.
  const r = setup(store, clock);
  assert.equal(await r.core.connections.restore(), 0);
  assert.equal(r.puppets.length, 0);

  // Their next DM reconnects, and the message is held for the new connection rather than refused.
  await r.core.onMessage({ roomId: "!dm:test.local", sender: ALICE, eventId: "$2", kind: "text", body: "back again" });
  await r.core.idle();
  assert.equal(r.puppets.length, 1);
  assert.equal(r.puppets[0]!.connectCalls, 1);
  assert.deepEqual(r.puppets[0]!.lines, [{ cmd: "say", target: "dave", text: "back again" }]);
  assert.ok(!r.matrix.textsIn("!dm:test.local").some((t) => /Not delivered/.test(t)));
  // No longer idle: a restart now reconnects the user.
  await r.core.connections.stopAll(() => "bye");
  const r2 = setup(store, clock);
  assert.equal(await r2.core.connections.restore(), 1);
  await r2.core.connections.stopAll(() => "bye");
});

test("`msg <network> <nick> <text>` from the management room wakes an idle puppet and sends the text", async () => {
  const store = new MemoryStore();
  const clock = { t: 1_000_000 };
  const s = setup(store, clock);
  await connectedWithManagementRoom(s);
  clock.t += 3 * HOUR;
  assert.equal(await s.core.connections.sweepIdle(), 1);
  await s.core.onMessage({ roomId: MGMT, sender: ALICE, eventId: "$2", kind: "text", body: "msg local dave are you there" });
  await s.core.idle();
  assert.equal(s.puppets.length, 2, "a new connection");
  assert.deepEqual(s.puppets[1]!.lines, [{ cmd: "say", target: "dave", text: "are you there" }]);
  assert.ok(!s.matrix.textsIn(MGMT).some((t) => /not connected/.test(t)));
  await s.core.connections.stopAll(() => "bye");
});
