// Saved OTR sessions in the session manager (otr.persist_sessions): a new pipeline on the same store (a restart)
// continues the contact's conversation without an AKE, both ways; a line leaves only after the state that
// produced it is in the store (a store that fails means nothing is sent, a notice says so, and it recovers);
// a planned shutdown keeps the session instead of ending it; with persistence off rows are never written and
// stale ones are deleted; a nick change carries the saved session along.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory.js";
import { StoreError, type Store } from "../../src/store/types.js";
import { testKey } from "../otr/fixtures.js";
import { SEND_COUNTER_RESERVE } from "../../src/otr/index.js";
import { Contact, Dm, makeWorld, NET, USER } from "./otr-bridge-fakes.js";

const ROOM = "!bob:test.local";

/** A MemoryStore whose OTR session writes fail while `failing` is set, and which records every write. */
class FlakyStore extends MemoryStore {
  failing = false;
  writes = 0;
  override async putOtrSession(u: string, n: string, nick: string, s: Uint8Array): Promise<void> {
    if (this.failing) throw new StoreError("database-error", "disk full (test)");
    this.writes++;
    return super.putOtrSession(u, n, nick, s);
  }
}

/** A restart: a new pipeline on the same store, the same contact (who keeps its session). */
function restart(dm: Dm, store: Store, opts: Parameters<typeof makeWorld>[0] = {}): Dm {
  const w = makeWorld({ store, ...opts });
  return new Dm(w, dm.contact, ROOM);
}

test("after a restart the contact's conversation goes on without a new AKE, both ways, through key rotations", async () => {
  const store = new MemoryStore();
  const w = makeWorld({ store });
  let dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.contactStarts();
  await dm.user("before");
  await dm.contactSays("reply before");
  assert.ok(await store.getOtrSession(USER, NET, "bob"), "the session is saved");
  await w.pipeline.stopTimer();
  for (let round = 0; round < 3; round++) {
    dm = restart(dm, store);
    const contactEvents = dm.contact.events.length;
    await dm.contactSays(`from bob ${round}`);
    assert.equal(dm.w.matrix.messages(ROOM).at(-1)?.body, `from bob ${round}`);
    assert.deepEqual(dm.w.matrix.messages(ROOM).at(-1)?.extra["org.matrix_otr_irc.otr"], { encrypted: true, verified: false });
    const r = await dm.user(`to bob ${round}`);
    assert.deepEqual(r, { sent: true, encrypted: true });
    assert.equal(dm.contact.received().at(-1), `to bob ${round}`);
    const since = dm.contact.events.slice(contactEvents).map((e) => e.type);
    assert.ok(!since.includes("gone-secure") && !since.includes("unreadable") && !since.includes("gone-insecure"), since.join(","));
    assert.deepEqual(dm.w.matrix.notices(ROOM), [], "no notice at all after the restart");
    assert.equal(dm.w.matrix.status(ROOM)?.["state"], "encrypted");
  }
});

test("write before send: while the store fails nothing goes to IRC and the user is told; once it works again, all is well", async () => {
  const store = new FlakyStore();
  const w = makeWorld({ store });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.contactStarts();
  await dm.user("saved fine");
  const linesBefore = dm.irc.length;
  store.failing = true;
  // Enough messages to need a new counter reservation, and a received one that rotates keys.
  for (let i = 0; i < 20; i++) await dm.user(`while failing ${i}`);
  await dm.contactSays("bob while failing");
  const sentWhileFailing = dm.irc.slice(linesBefore).length;
  assert.ok(w.matrix.noticesWith("not-saved").length >= 1, "the user is told");
  assert.ok(w.matrix.noticesWith("not-saved").some((n) => n.body.includes("> while failing")), "the text is quoted back");
  // What did go out was covered by the counter reservation saved before the failure; nothing past it.
  assert.equal(sentWhileFailing, Number(SEND_COUNTER_RESERVE) - 1, "the rest of the saved reservation, then nothing");
  store.failing = false;
  await dm.user("recovered");
  assert.equal(dm.contact.received().at(-1), "recovered");
  assert.ok(!dm.contact.has("unreadable"));
  // And a crash now resumes above everything that was sent.
  const dm2 = restart(dm, store);
  await dm2.user("after the crash");
  assert.equal(dm2.contact.received().at(-1), "after the crash");
  assert.ok(!dm2.contact.has("unreadable"));
});

test("a planned shutdown keeps the session (no TLV 1 to the contact); with persist_sessions off it ends it and saves nothing", async () => {
  const store = new MemoryStore();
  const w = makeWorld({ store });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.contactStarts();
  await dm.user("hi");
  await w.pipeline.shutdown();
  await dm.pump();
  assert.equal(dm.contact.conv.status().state, "encrypted", "the contact was not told the session ended");
  const dm2 = restart(dm, store);
  await dm2.contactSays("still private?");
  assert.equal(dm2.w.matrix.messages(ROOM).at(-1)?.body, "still private?");

  const off = new MemoryStore();
  await off.putOtrSession(USER, NET, "carol", new Uint8Array([1, 2, 3])); // left by an earlier run with it on
  const w3 = makeWorld({ store: off, persistSessions: false });
  const carol = new Dm(w3, new Contact("Carol", testKey(2), "carol"), "!carol:test.local");
  await carol.contactStarts();
  await carol.user("hello carol");
  assert.equal(await off.getOtrSession(USER, NET, "carol"), null, "nothing saved, the stale row deleted");
  await w3.pipeline.shutdown();
  await carol.pump();
  assert.equal(carol.contact.conv.status().state, "finished", "without persistence the contact is told");
});

test("a saved session that cannot be resumed is deleted and the user told; the next AKE works", async () => {
  const store = new MemoryStore();
  await store.putOtrSession(USER, NET, "bob", new Uint8Array([0x4f, 0x54, 0x52, 0x53, 1, 0, 0]));
  const w = makeWorld({ store });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.contactStarts();
  assert.equal(w.matrix.noticesWith("resume-failed").length, 1);
  assert.match(w.matrix.noticesWith("resume-failed")[0]!.body, /snapshot-malformed/);
  assert.ok(dm.contact.has("gone-secure"));
  await dm.user("fresh");
  assert.equal(dm.contact.received().at(-1), "fresh");
});

test("a nick change moves the saved session: after a restart the contact under the new nick continues", async () => {
  const store = new MemoryStore();
  const w = makeWorld({ store });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.contactStarts();
  await dm.user("hi bob");
  const renamed = { ...dm.ctx, peerNick: "Robert", foldedNick: "robert" };
  await w.pipeline.renamed("bob", renamed);
  assert.equal(await store.getOtrSession(USER, NET, "bob"), null);
  assert.ok(await store.getOtrSession(USER, NET, "robert"));
  const w2 = makeWorld({ store });
  const dm2 = new Dm(w2, dm.contact, ROOM, "Robert");
  await dm2.contactSays("new nick, same session");
  assert.equal(w2.matrix.messages(ROOM).at(-1)?.body, "new nick, same session");
  assert.ok(!dm2.contact.has("unreadable"));
});
