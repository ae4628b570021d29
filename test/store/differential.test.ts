// "Same behaviour" checked by construction: random sequences of operations (small id alphabets so keys, rooms
// and fingerprints collide often) run against MemoryStore, SQLite and PostgreSQL side by side; every result and
// every error code must agree, and a final dump of everything listable must be identical.
import { after, before, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { MemoryStore, openStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";

const dir = mkdtempSync(join(tmpdir(), "motr-diff-"));
let server: PostgresServer | undefined;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const user = fc.constantFrom("@a:x", "@b:x", "");
const net = fc.constantFrom("n1", "n2");
const nick = fc.constantFrom("carol", "[dave]", "ÿ", "bad\0nick", "😀", "lone\ud800");
const room = fc.constantFrom("!r1:x", "!r2:x", "!r3:x");
const fpHex = fc.constantFrom("aa".repeat(20), "BB".repeat(20), "cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc cc", "zz");
const policy = fc.constantFrom("never", "manual", "opportunistic", "always", null, "bogus");
const time = fc.constantFrom(0, 5, 1_700_000_000_000, -1);
const bytes = fc.uint8Array({ minLength: 0, maxLength: 40 });
// Valid keys, the 100-byte boundary on both sides, and each kind of character a key must not hold.
const chanKey = fc.constantFrom("k1", "sëcret", "é".repeat(50), "x".repeat(101), "", "a b", "a,b", "a\r\nQUIT", "a\0", "a\x7f", "\ud800", null);

// Crypto-state owners must be Matrix user ids ("a:x" is not one); device ids are compared exactly ("D1" vs "d1").
const owner = fc.constantFrom("@a:x", "@b:x", "a:x", "");
const device = fc.constantFrom("D1", "d1", "ÿ", "", "bad\0dev", "lone\udc00");

type Op = (s: Store) => Promise<unknown>;
const op: fc.Arbitrary<[string, Op]> = fc.oneof(
  fc.tuple(user, net, fc.option(nick, { nil: null }), policy, time).map(([u, n, k, p, t]) => [`putUserNetwork ${u} ${n} ${k} ${p} ${t}`, (s: Store) => s.putUserNetwork({ userId: u, networkId: n, nick: k, otrPolicy: p as never, updatedAt: t })] as [string, Op]),
  fc.tuple(user, net).map(([u, n]) => [`getUserNetwork ${u} ${n}`, (s: Store) => s.getUserNetwork(u, n)] as [string, Op]),
  fc.tuple(user).map(([u]) => [`listUserNetworks ${u}`, (s: Store) => s.listUserNetworks(u)] as [string, Op]),
  fc.tuple(user, net, fc.constantFrom("pw", "", null, "✓", "\ud800x")).map(([u, n, p]) => [`setIrcPassword ${u} ${n} ${p}`, (s: Store) => s.setIrcPassword(u, n, p)] as [string, Op]),
  fc.tuple(user, net).map(([u, n]) => [`getIrcPassword ${u} ${n}`, (s: Store) => s.getIrcPassword(u, n)] as [string, Op]),
  fc.tuple(user, net, bytes).map(([u, n, b]) => [`putKey ${u} ${n} ${b.length}`, (s: Store) => s.putOtrPrivateKeyIfAbsent(u, n, b)] as [string, Op]),
  fc.tuple(user, net).map(([u, n]) => [`getKey ${u} ${n}`, (s: Store) => s.getOtrPrivateKey(u, n)] as [string, Op]),
  fc.tuple(user, net, fc.constantFrom(0x100, 0xffffffff, 0xff, 12345)).map(([u, n, t]) => [`putTag ${u} ${n} ${t}`, (s: Store) => s.putInstanceTagIfAbsent(u, n, t)] as [string, Op]),
  fc.tuple(user, net).map(([u, n]) => [`getTag ${u} ${n}`, (s: Store) => s.getInstanceTag(u, n)] as [string, Op]),
  fc.tuple(user, net, nick, fpHex, fc.constantFrom(["unverified", null], ["verified", "smp"], ["verified", null]), time, time).map(([u, n, k, f, [tr, vb], a, b]) =>
    [`putFingerprint ${u} ${n} ${k} ${f} ${tr} ${vb} ${a} ${b}`, (s: Store) => s.putFingerprint({ userId: u, networkId: n, peerNick: k, fingerprint: f, trust: tr as never, verifiedBy: vb as never, firstSeen: a, lastSeen: b })] as [string, Op]),
  fc.tuple(user, net, fpHex, fc.option(nick, { nil: undefined })).map(([u, n, f, k]) => [`deleteFingerprint ${u} ${n} ${f} ${k}`, (s: Store) => s.deleteFingerprint(u, n, f, k)] as [string, Op]),
  fc.tuple(user, net).map(([u, n]) => [`listFingerprints ${u} ${n}`, (s: Store) => s.listFingerprints(u, n)] as [string, Op]),
  fc.tuple(user, net, nick, room).map(([u, n, k, r]) => [`putDmRoom ${u} ${n} ${k} ${r}`, (s: Store) => s.putDmRoom(u, n, k, r)] as [string, Op]),
  fc.tuple(user, net, nick).map(([u, n, k]) => [`getDmRoom ${u} ${n} ${k}`, (s: Store) => s.getDmRoom(u, n, k)] as [string, Op]),
  fc.tuple(user, net, nick).map(([u, n, k]) => [`deleteDmRoom ${u} ${n} ${k}`, (s: Store) => s.deleteDmRoom(u, n, k)] as [string, Op]),
  fc.tuple(room).map(([r]) => [`findDmByRoom ${r}`, (s: Store) => s.findDmByRoom(r)] as [string, Op]),
  fc.tuple(user, fc.option(net, { nil: undefined })).map(([u, n]) => [`listDmRooms ${u} ${n}`, (s: Store) => s.listDmRooms(u, n)] as [string, Op]),
  fc.tuple(user, room).map(([u, r]) => [`putManagementRoom ${u} ${r}`, (s: Store) => s.putManagementRoom(u, r)] as [string, Op]),
  fc.tuple(room).map(([r]) => [`findManagementRoomOwner ${r}`, (s: Store) => s.findManagementRoomOwner(r)] as [string, Op]),
  fc.tuple(net, nick, room).map(([n, c, r]) => [`putChannelRoom ${n} ${c} ${r}`, (s: Store) => s.putChannelRoom(n, c, r)] as [string, Op]),
  fc.tuple(net, nick).map(([n, c]) => [`deleteChannelRoom ${n} ${c}`, (s: Store) => s.deleteChannelRoom(n, c)] as [string, Op]),
  fc.tuple(room).map(([r]) => [`findChannelByRoom ${r}`, (s: Store) => s.findChannelByRoom(r)] as [string, Op]),
  fc.tuple(fc.option(net, { nil: undefined })).map(([n]) => [`listChannelRooms ${n}`, (s: Store) => s.listChannelRooms(n)] as [string, Op]),
  fc.tuple(user, net, nick, chanKey).map(([u, n, c, k]) => [`setChannelKey ${u} ${n} ${c} ${JSON.stringify(k)}`, (s: Store) => s.setChannelKey(u, n, c, k)] as [string, Op]),
  fc.tuple(user, net, nick).map(([u, n, c]) => [`getChannelKey ${u} ${n} ${c}`, (s: Store) => s.getChannelKey(u, n, c)] as [string, Op]),
  fc.tuple(owner, device, bytes).map(([o, d, b]) => [`putCryptoState ${o} ${d} ${Buffer.from(b).toString("hex")}`, (s: Store) => s.putCryptoState(o, d, b)] as [string, Op]),
  fc.tuple(owner, device).map(([o, d]) => [`getCryptoState ${o} ${d}`, (s: Store) => s.getCryptoState(o, d)] as [string, Op]),
  fc.tuple(owner, device).map(([o, d]) => [`deleteCryptoState ${o} ${d}`, (s: Store) => s.deleteCryptoState(o, d)] as [string, Op]),
  fc.constant([`listCryptoDevices`, (s: Store) => s.listCryptoDevices()] as [string, Op]),
  fc.tuple(user, net, nick, policy).map(([u, n, k, p]) => [`putPeerPolicy ${u} ${n} ${k} ${p}`, (s: Store) => s.putPeerPolicy(u, n, k, p as never)] as [string, Op]),
  fc.tuple(user, net, nick).map(([u, n, k]) => [`getPeerPolicy ${u} ${n} ${k}`, (s: Store) => s.getPeerPolicy(u, n, k)] as [string, Op]),
  fc.tuple(fc.constantFrom("k1", "k2", ""), fc.constantFrom("v", "", "✓", "nul\0", "\udc00")).map(([k, v]) => [`putState ${k} ${v}`, (s: Store) => s.putState(k, v)] as [string, Op]),
  fc.tuple(fc.constantFrom("k1", "k2")).map(([k]) => [`deleteState ${k}`, (s: Store) => s.deleteState(k)] as [string, Op]),
  fc.tuple(fc.constantFrom("k1", "k2")).map(([k]) => [`getState ${k}`, (s: Store) => s.getState(k)] as [string, Op]),
);

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const v = await p;
    return JSON.stringify(v === undefined ? "ok" : v, (_k, x) => (x instanceof Uint8Array ? `bytes:${Buffer.from(x).toString("hex")}` : x));
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string" || !(e as Error).name?.startsWith("StoreError")) throw e; // only StoreErrors are behaviour
    return `error:${code}`;
  }
}

async function dump(s: Store): Promise<string> {
  const parts: unknown[] = [];
  for (const u of ["@a:x", "@b:x"]) {
    parts.push(await s.listUserNetworks(u), await s.listDmRooms(u), await s.getManagementRoom(u));
    for (const n of ["n1", "n2"]) {
      parts.push(await s.listFingerprints(u, n), await s.getIrcPassword(u, n), await s.getOtrPrivateKey(u, n), await s.getInstanceTag(u, n));
      for (const k of ["carol", "[dave]", "ÿ"]) parts.push(await s.getPeerPolicy(u, n, k), await s.getChannelKey(u, n, k));
    }
  }
  parts.push(await s.listChannelRooms(), await s.getState("k1"), await s.getState("k2"), await s.listCryptoDevices());
  for (const o of ["@a:x", "@b:x"]) for (const d of ["D1", "d1", "ÿ"]) parts.push(await s.getCryptoState(o, d));
  return JSON.stringify(parts, (_k, x) => (x instanceof Uint8Array ? Buffer.from(x).toString("hex") : x));
}

it("memory, SQLite and PostgreSQL agree on every result of random operation sequences", { timeout: 600_000 }, async () => {
  const key = new Uint8Array(randomBytes(32));
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
      const stores: [string, Store][] = [
        ["memory", new MemoryStore()],
        ["sqlite", await openStore({ engine: "sqlite", sqlite_path: join(dir, `d${++n}.db`) }, key)],
        ["postgres", await openStore({ engine: "postgres", postgres_url: await server!.newDatabase() }, key)],
      ];
      try {
        for (const [label, run] of ops) {
          const results = await Promise.all(stores.map(([, s]) => outcome(run(s))));
          for (let i = 1; i < stores.length; i++) assert.equal(results[i], results[0], `${label}: ${stores[i]![0]} differs from memory`);
        }
        const dumps = await Promise.all(stores.map(([, s]) => dump(s)));
        for (let i = 1; i < stores.length; i++) assert.equal(dumps[i], dumps[0], `final state of ${stores[i]![0]} differs from memory`);
      } finally {
        for (const [, s] of stores) await s.close();
      }
    }),
    { numRuns: 60 },
  );
});
