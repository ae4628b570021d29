// The list of who should be connected (restored after a restart) under a mass connect: every connect is in it
// once its call resolved, a restarted manager restores all of them, and the writes are coalesced instead of one
// whole-list rewrite per user.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectionManager, CONNECTIONS_STATE_KEY } from "../../src/bridge/connections.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakePuppet, silentLogger } from "./bridge-fakes.js";

const N = 200;
const users = Array.from({ length: N }, (_, i) => `@u${i}:test.local`);

function manager(store: MemoryStore, made: FakePuppet[] = []): ConnectionManager {
  return new ConnectionManager({
    store,
    createPuppet: (req, events) => { const p = new FakePuppet(req, events); made.push(p); return p; },
    networks: [{ id: "local", name: "Local IRC", nickTemplate: "{localpart}", idleTimeoutMs: 0 }],
    logger: silentLogger,
    metrics: { messageBridged() {}, messageFailed() {}, connectionState() {} },
    notify: async () => undefined,
    onIrcMessage: () => undefined,
  });
}

test("a mass connect is listed whole, survives a restart, and costs far fewer list writes than connects", async () => {
  const store = new MemoryStore();
  let writes = 0;
  const put = store.putState.bind(store);
  // A write takes as long as a commit with fsync does.
  store.putState = async (k, v) => {
    if (k === CONNECTIONS_STATE_KEY) { writes++; await new Promise((r) => setTimeout(r, 5)); }
    return put(k, v);
  };
  const m = manager(store);
  // Each connect's promise resolves only once the list holding it is stored.
  await Promise.all(users.map(async (u) => {
    await m.connect(u, "local");
    const stored = JSON.parse((await store.getState(CONNECTIONS_STATE_KEY)) ?? "[]") as [string, string][];
    assert.ok(stored.some(([x]) => x === u), `${u} is stored when its connect resolved`);
  }));
  assert.ok(writes < N / 4, `${writes} list writes for ${N} connects`);
  await m.disconnect(users[0]!, "local");
  await m.stopAll(() => "bye");

  const made: FakePuppet[] = [];
  assert.equal(await manager(store, made).restore(), N - 1);
  assert.deepEqual(made.map((p) => p.req.userId).sort(), users.slice(1).sort());
});
