// Messages held for the AKE under policy `always` are never lost silently: at shutdown, on a failed AKE and on an
// OTR error they come back to the user at once, each quoted in a `returned` notice, and never reach the wire.
import { test } from "node:test";
import assert from "node:assert/strict";
import { POLICY } from "../../src/otr/index.js";
import { testKey } from "../otr/fixtures.js";
import { Contact, Dm, makeWorld } from "./otr-bridge-fakes.js";

const ROOM = "!bob:test.local";

function heldDm() {
  const w = makeWorld({ defaultPolicy: "always" });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob", POLICY.OPPORTUNISTIC), ROOM);
  return { w, dm };
}

/** Flips a bit of the MAC at the end of an encoded OTR message, keeping it well-formed. */
function corruptMac(line: string): string {
  assert.match(line, /^\?OTR:[A-Za-z0-9+/=]+\.$/);
  const bytes = Buffer.from(line.slice(5, -1), "base64");
  bytes[bytes.length - 1]! ^= 0x01;
  return `?OTR:${bytes.toString("base64")}.`;
}

test("shutdown returns every held message, quoted, in order, before it resolves; none is sent later", async () => {
  const { w, dm } = heldDm();
  await w.pipeline.fromMatrix(dm.ctx, "text", "first secret", undefined);
  await w.pipeline.fromMatrix(dm.ctx, "emote", "waves secretly", undefined);
  assert.deepEqual(w.matrix.notices(ROOM).filter((c) => c === "held"), ["held", "held"]);
  assert.equal(w.matrix.noticesWith("returned").length, 0);
  await w.pipeline.shutdown();
  const ret = w.matrix.noticesWith("returned").map((n) => n.body);
  assert.equal(ret.length, 2);
  assert.match(ret[0]!, /> first secret/);
  assert.match(ret[1]!, /> waves secretly/);
  assert.match(ret[0]!, /shutting down/);
  // Even if the contact answers the query afterwards, the texts are gone from the library's queue.
  await dm.pump();
  assert.deepEqual(dm.contact.received(), []);
  assert.ok(!dm.wireText().includes("secret"));
});

test("shutdown with nothing held posts no returned notice", async () => {
  const { w, dm } = heldDm();
  await dm.contactStarts();
  await dm.user("sent encrypted");
  await w.pipeline.shutdown();
  assert.equal(w.matrix.noticesWith("returned").length, 0);
  assert.deepEqual(dm.contact.received(), ["sent encrypted"]);
});

test("a failed AKE returns the held message at once, without waiting for the queue timeout", async () => {
  const { w, dm } = heldDm();
  await w.pipeline.fromMatrix(dm.ctx, "text", "for your eyes only", undefined);
  const query = dm.irc.at(-1)!.text;
  assert.match(query, /^\?OTRv/);
  dm.dropInFlight();
  // Run the AKE by hand so the contact's Reveal Signature can be damaged in flight.
  dm.contact.take(dm.contact.conv.receive(query));
  const commit = dm.contact.outbox.shift()!;
  const before = dm.irc.length;
  await w.pipeline.fromIrc(dm.ctx, "text", commit);
  const dhKey = dm.irc.slice(before).map((l) => l.text);
  dm.dropInFlight();
  for (const l of dhKey) dm.contact.take(dm.contact.conv.receive(l));
  const revealSig = dm.contact.outbox.shift()!;
  assert.equal(w.matrix.noticesWith("returned").length, 0);
  await w.pipeline.fromIrc(dm.ctx, "text", corruptMac(revealSig));
  const ret = w.matrix.noticesWith("returned");
  assert.equal(ret.length, 1, "returned without any time passing");
  assert.match(ret[0]!.body, /> for your eyes only/);
  assert.match(ret[0]!.body, /could not be set up/);
  assert.notEqual(w.matrix.status(ROOM)!["state"], "encrypted");
  // The library's queue was emptied too: the next message starts a fresh AKE with a new query.
  const queries = dm.irc.filter((l) => /^\?OTRv/.test(l.text)).length;
  await w.pipeline.fromMatrix(dm.ctx, "text", "second try", undefined);
  assert.equal(dm.irc.filter((l) => /^\?OTRv/.test(l.text)).length, queries + 1);
  assert.ok(!dm.wireText().includes("for your eyes only"));
});

test("an OTR error while messages are held returns them at once", async () => {
  const { w, dm } = heldDm();
  await w.pipeline.fromMatrix(dm.ctx, "text", "held one", undefined);
  dm.dropInFlight();
  await w.pipeline.fromIrc(dm.ctx, "text", "?OTR Error: I cannot do OTR right now");
  assert.ok(w.matrix.notices(ROOM).includes("error-received"));
  const ret = w.matrix.noticesWith("returned");
  assert.equal(ret.length, 1);
  assert.match(ret[0]!.body, /> held one/);
  assert.match(ret[0]!.body, /reported an error/);
  await dm.contactStarts();
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
  assert.deepEqual(dm.contact.received(), []);
  assert.ok(!dm.wireText().includes("held one"));
});
