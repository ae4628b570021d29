// `login <network> <password>` in the management room: the event is redacted, the password stored (sealed by the
// store), used as the services account on the next connect, and sent to NickServ at once when connected.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import { parseCommand } from "../../src/bridge/commands.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";

const ALICE = "@alice:test.local";
const MGMT = "!mgmt:test.local";

class IdentifyingPuppet extends FakePuppet {
  identified: { account: string; password: string }[] = [];
  identify(account: string, password: string): boolean {
    if (!this.connected) return false;
    this.identified.push({ account, password });
    return true;
  }
}

async function setup() {
  const store = new MemoryStore();
  const matrix = new FakeMatrix();
  const puppets: IdentifyingPuppet[] = [];
  const core = new BridgeCore({
    store,
    matrix,
    createPuppet: (req, events) => {
      const p = new IdentifyingPuppet(req, events);
      puppets.push(p);
      return p;
    },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}" }],
    permission: (u) => (u.endsWith(":test.local") ? "user" : null),
    logger: silentLogger,
  });
  matrix.joinedMembersResult = [ALICE, matrix.botUserId];
  await core.onInvite({ roomId: MGMT, inviter: ALICE, invitee: matrix.botUserId, isDirect: true });
  await core.idle();
  let ev = 0;
  const say = async (body: string) => {
    const eventId = `$m${++ev}`;
    await core.onMessage({ roomId: MGMT, sender: ALICE, eventId, kind: "text", body });
    await core.idle();
    return eventId;
  };
  return { store, matrix, puppets, core, say };
}

test("parse: the password is the rest of the line, spaces included; a missing one is a usage error", () => {
  assert.deepEqual(parseCommand("login local pass with spaces "), { name: "login", network: "local", password: "pass with spaces" });
  assert.equal(parseCommand("login local").name, "invalid");
});

test("login while disconnected: redacted, stored, used as the account on the next connect; the reply has no password", async () => {
  const s = await setup();
  const id = await s.say("login local hunter2 x");
  assert.deepEqual(s.matrix.redactions, [{ roomId: MGMT, eventId: id }]);
  assert.equal(await s.store.getIrcPassword(ALICE, "local"), "hunter2 x");
  assert.ok(s.matrix.textsIn(MGMT).every((t) => !t.includes("hunter2")));
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, /stored/);
  await s.say("connect local");
  assert.deepEqual(s.puppets[0]!.req.account, { name: "alice", password: "hunter2 x" });
});

test("login while connected identifies to NickServ at once", async () => {
  const s = await setup();
  await s.say("connect local");
  s.puppets[0]!.up();
  await s.core.idle();
  await s.say("login local s3cret");
  assert.deepEqual(s.puppets[0]!.identified, [{ account: "alice", password: "s3cret" }]);
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, /identifying/);
});

test("an unknown network is refused, and the event is still redacted", async () => {
  const s = await setup();
  const id = await s.say("login nowhere s3cret");
  assert.deepEqual(s.matrix.redactions, [{ roomId: MGMT, eventId: id }]);
  assert.equal(await s.store.getIrcPassword(ALICE, "nowhere"), null);
  assert.match(s.matrix.textsIn(MGMT).at(-1)!, /Unknown network/);
});
