// matrix_rooms{kind} and matrix_ghosts: seeded from the store, kept current through the store and Matrix port.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BridgedTracker, createMetrics, findUnsafeLabels } from "../../src/metrics/index.js";

const value = async (m: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string> = {}) => {
  const metric = (await m.registry.getSingleMetric(name)!.get()).values;
  return metric.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value;
};
const namer = {
  ghostUserId: (n: string, nick: string) => `@irc_${n}_${nick}:example.org`,
  parseGhost: (u: string) => {
    const m = /^@irc_([a-z]+)_(.+):example\.org$/.exec(u);
    return m ? { networkId: m[1]!, foldedNick: m[2]! } : null;
  },
};

function fakeStore() {
  const dms = new Map<string, string>();
  const channels = new Map<string, string>([["local\u0000#chat", "!c1:example.org"]]);
  const mgmt = new Map<string, string>([["@alice:example.org", "!m:example.org"]]);
  dms.set("@alice:example.org\u0000local\u0000bob", "!d1:example.org");
  dms.set("@alice:example.org\u0000local\u0000carol", "!d2:example.org");
  dms.set("@dave:example.org\u0000local\u0000bob", "!d3:example.org");
  return {
    async listDmRooms(userId: string) {
      return [...dms].filter(([k]) => k.startsWith(userId + "\u0000")).map(([k, roomId]) => {
        const [, networkId, foldedNick] = k.split("\u0000");
        return { userId, networkId: networkId!, foldedNick: foldedNick!, roomId };
      });
    },
    async listChannelRooms() {
      return [...channels].map(([k, roomId]) => ({ networkId: k.split("\u0000")[0]!, foldedChannel: k.split("\u0000")[1]!, roomId }));
    },
    async getManagementRoom(u: string) { return mgmt.get(u) ?? null; },
    async putDmRoom(u: string, n: string, nick: string, room: string) {
      if (room === "!taken:example.org") throw Object.assign(new Error("conflict"), { code: "room-conflict" });
      dms.set([u, n, nick].join("\u0000"), room);
    },
    async deleteDmRoom(u: string, n: string, nick: string) { dms.delete([u, n, nick].join("\u0000")); },
    async putChannelRoom(n: string, ch: string, room: string) { channels.set(`${n}\u0000${ch}`, room); },
    async deleteChannelRoom(n: string, ch: string) { channels.delete(`${n}\u0000${ch}`); },
    async putManagementRoom(u: string, room: string) { mgmt.set(u, room); },
    async getState(_k: string) { return "x"; },
  };
}

test("rooms and ghosts: counted from the store at start-up, by kind, without ids in labels", async () => {
  const m = createMetrics();
  const t = new BridgedTracker(m, namer);
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "dm" }), 0);
  assert.equal(await value(m, "matrix_otr_irc_matrix_ghosts"), 0);
  await t.seed(fakeStore(), ["@alice:example.org", "@dave:example.org", "@alice:example.org"]);
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "dm" }), 3);
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "channel" }), 1);
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "management" }), 1);
  // bob is one ghost even though two users talk to him.
  assert.equal(await value(m, "matrix_otr_irc_matrix_ghosts"), 2);
  assert.deepEqual(await findUnsafeLabels(m.registry, ["@alice:example.org", "bob", "#chat", "!d1:example.org", "@irc_local_bob:example.org"]), []);
});

test("rooms follow the store's mappings; failed mappings and other calls change nothing", async () => {
  const m = createMetrics();
  const t = new BridgedTracker(m, namer);
  const raw = fakeStore();
  await t.seed(raw, ["@alice:example.org"]);
  const store = t.store(raw);
  assert.equal(await store.getState("k"), "x");
  await store.putDmRoom("@alice:example.org", "local", "erin", "!d4:example.org");
  await store.putDmRoom("@alice:example.org", "local", "erin", "!d4:example.org");
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "dm" }), 3);
  assert.equal(await value(m, "matrix_otr_irc_matrix_ghosts"), 3);
  await assert.rejects(store.putDmRoom("@alice:example.org", "local", "frank", "!taken:example.org"), /conflict/);
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "dm" }), 3);
  await store.deleteDmRoom("@alice:example.org", "local", "bob");
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "dm" }), 2);
  await store.putChannelRoom("local", "#dev", "!c2:example.org");
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "channel" }), 2);
  await store.deleteChannelRoom("local", "#chat");
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "channel" }), 1);
  await store.putManagementRoom("@zoe:example.org", "!m2:example.org");
  await store.putManagementRoom("@zoe:example.org", "!m3:example.org");
  assert.equal(await value(m, "matrix_otr_irc_matrix_rooms", { kind: "management" }), 2);
});

test("ghosts the Matrix port acts as or on count once each; real users do not count", async () => {
  const m = createMetrics();
  const t = new BridgedTracker(m, namer);
  const sent: string[] = [];
  const port = t.matrix({
    ...namer,
    async send(room: string, from: string | null, _kind: string, body: string) { sent.push(`${room}/${from}/${body}`); return "$e"; },
    async invite(_room: string, _as: string | null, _u: string) {},
  });
  assert.equal(await port.send("!c:example.org", "@irc_local_gina:example.org", "m.text", "@irc_local_hal:example.org hi"), "$e");
  await port.send("!c:example.org", "@irc_local_gina:example.org", "m.text", "again");
  await port.invite("!c:example.org", null, "@alice:example.org");
  await port.invite("!c:example.org", "@irc_local_gina:example.org", "@irc_local_ivy:example.org");
  assert.equal(port.ghostUserId("local", "x"), "@irc_local_x:example.org");
  // gina and ivy; the message body names hal, which is not a ghost argument but a text.
  assert.equal(sent.length, 2);
  assert.equal(await value(m, "matrix_otr_irc_matrix_ghosts"), 2);
});
