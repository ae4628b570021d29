// Messages in transit are sealed at rest like the other secrets (docs/store.md "Matrix → IRC delivery"): the SQLite
// file and WAL never hold the text, a body moved to another event's row does not open, and a master-key rotation
// re-seals pending bodies.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openStore, rotateMasterKey } from "../../src/store/index.js";
import type { StoreConfig } from "../../src/store/types.js";
import { rawAll, rawRun } from "./helpers.js";
import { rejectsCode } from "./suite.js";

const dir = mkdtempSync(join(tmpdir(), "motr-inbox-rest-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const MARKER = "inbox-marker-7f3a9c";
const body = (n: number) => new TextEncoder().encode(JSON.stringify({ content: { body: `${MARKER} ${n}` } }));

test("pending bodies are sealed and bound to their event; rotation re-seals them; done bodies leave the files", async () => {
  const cfg: StoreConfig = { engine: "sqlite", sqlite_path: join(dir, "inbox.db"), master_key_file: join(dir, "master.key") };
  const key = new Uint8Array(randomBytes(32));
  let s = await openStore(cfg, key);
  await s.inboxRecord([{ eventId: "$a", roomId: "!r:x", event: body(1) }, { eventId: "$b", roomId: "!r:x", event: body(2) }]);
  await s.close();
  const files = () => ["inbox.db", "inbox.db-wal"].map((f) => join(dir, f)).filter(existsSync);
  for (const f of files()) assert.ok(!readFileSync(f).includes(Buffer.from(MARKER)), `${f} holds the text`);
  const sealedA = (await rawAll(cfg, "SELECT sealed FROM inbox_events WHERE event_id = ?", ["$a"]))[0]!.sealed as Uint8Array;
  await rawRun(cfg, "UPDATE inbox_events SET sealed = ? WHERE event_id = ?", [sealedA, "$b"]);
  s = await openStore(cfg, key);
  await rejectsCode(s.inboxPending(), "sealed-data-corrupt");
  await s.inboxDone(["$b"]);
  assert.deepEqual((await s.inboxPending()).map((e) => e.eventId), ["$a"]);
  await s.close();
  const next = new Uint8Array(randomBytes(32));
  assert.deepEqual(await rotateMasterKey(cfg, key, next), { resealed: 1 }, "the pending body, not the done one");
  s = await openStore(cfg, next);
  const p = await s.inboxPending();
  assert.equal(JSON.parse(new TextDecoder().decode(p[0]!.event)).content.body, `${MARKER} 1`);
  await s.inboxDone(["$a"]);
  await new Promise((r) => setTimeout(r, 400)); // past the store's erase delay (WAL checkpoint)
  await s.close();
  assert.deepEqual(await rawAll(cfg, "SELECT event_id FROM inbox_events WHERE sealed IS NOT NULL"), []);
});

test("outbox bodies are sealed and bound to their room and transaction id; rotation re-seals them; deleted bodies leave the files", async () => {
  const cfg: StoreConfig = { engine: "sqlite", sqlite_path: join(dir, "outbox.db"), master_key_file: join(dir, "master.key") };
  const key = new Uint8Array(randomBytes(32));
  let s = await openStore(cfg, key);
  const [a, b] = await s.outboxAdd([{ roomId: "!r:x", txnId: "t1", message: body(1), queuedAt: 1 }, { roomId: "!r:x", txnId: "t2", message: body(2), queuedAt: 2 }]);
  await s.close();
  const files = () => ["outbox.db", "outbox.db-wal"].map((f) => join(dir, f)).filter(existsSync);
  for (const f of files()) assert.ok(!readFileSync(f).includes(Buffer.from(MARKER)), `${f} holds the text`);
  const sealedA = (await rawAll(cfg, "SELECT sealed FROM outbox_messages WHERE seq = ?", [a!]))[0]!.sealed as Uint8Array;
  await rawRun(cfg, "UPDATE outbox_messages SET sealed = ? WHERE seq = ?", [sealedA, b!]);
  s = await openStore(cfg, key);
  await rejectsCode(s.outboxPending(), "sealed-data-corrupt");
  await s.outboxDelete([b!]);
  await s.close();
  const next = new Uint8Array(randomBytes(32));
  assert.deepEqual(await rotateMasterKey(cfg, key, next), { resealed: 1 });
  s = await openStore(cfg, next);
  const p = await s.outboxPending();
  assert.equal(JSON.parse(new TextDecoder().decode(p[0]!.message)).content.body, `${MARKER} 1`);
  await s.outboxDelete([a!]);
  await new Promise((r) => setTimeout(r, 400)); // past the store's erase delay (WAL checkpoint)
  await s.close();
  assert.deepEqual(await rawAll(cfg, "SELECT seq FROM outbox_messages"), []);
  for (const f of files()) assert.ok(!readFileSync(f).includes(Buffer.from(MARKER)), `${f} still holds a deleted body`);
});
