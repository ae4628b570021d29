// The OTR session manager end to end in process: our pipeline on the bridge side, a real OtrConversation as the
// IRC contact, in-memory store and Matrix. Checks what the contract (WAVE2.md) promises the Matrix user.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryStore } from "../../src/store/memory.js";
import { decodeStoredOtrKey } from "../../src/bridge/keys-cli.js";
import { dsaPublicKey, fingerprint, formatFingerprint, POLICY, QUEUE_TIMEOUT_MS } from "../../src/otr/index.js";
import { testKey } from "../otr/fixtures.js";
import { Contact, Dm, makeWorld, NET, USER } from "./otr-bridge-fakes.js";

const ROOM = "!bob:test.local";
const fpOf = (i: number) => formatFingerprint(fingerprint(dsaPublicKey(testKey(i))));

async function secureDm(opts: Parameters<typeof makeWorld>[0] = {}, budget = 400) {
  const w = makeWorld(opts);
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  dm.budget = budget;
  await dm.contactStarts();
  return { w, dm };
}

test("the contact starts OTR: gone-secure notice with the fingerprint, status encrypted and unverified", async () => {
  const { w, dm } = await secureDm();
  assert.ok(dm.contact.has("gone-secure"));
  const gs = w.matrix.noticesWith("gone-secure");
  assert.equal(gs.length, 1);
  assert.match(gs[0]!.body, new RegExp(fpOf(1)));
  assert.match(gs[0]!.body, /unverified/);
  assert.equal(gs[0]!.from, "@irc_net_bob:test.local");
  assert.deepEqual(w.matrix.status(ROOM), { state: "encrypted", verified: false, fingerprint: fpOf(1), protocol_version: 3 });
  assert.match(fpOf(1), /^([0-9A-F]{8} ){4}[0-9A-F]{8}$/);
});

test("messages both ways are encrypted and flagged; long non-ASCII text is fragmented to the IRC budget and never on the wire in clear", async () => {
  const { w, dm } = await secureDm({}, 180);
  const long = "Grüße, Ünïcödé ✓ — ".repeat(80); // ~1,700 bytes
  const r = await dm.user(long);
  assert.deepEqual(r, { sent: true, encrypted: true });
  assert.deepEqual(dm.contact.received(), [long]);
  assert.ok(dm.irc.length > 5, "fragmented into many lines");
  for (const l of dm.irc) assert.ok(Buffer.byteLength(l.text) <= 180, `line of ${l.text.length} exceeds the budget`);
  assert.ok(!dm.wireText().includes("Grüße"));
  await dm.contactSays("hello Alice");
  const msgs = w.matrix.messages(ROOM);
  assert.equal(msgs.at(-1)!.body, "hello Alice");
  assert.equal(msgs.at(-1)!.kind, "text");
  assert.deepEqual(msgs.at(-1)!.extra["org.matrix_otr_irc.otr"], { encrypted: true, verified: false });
});

test("the user starts OTR with !otr start; commands never reach IRC and always answer", async () => {
  const w = makeWorld();
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.user("!otr help", "text", "$help");
  assert.equal(dm.irc.length, 0, "help sent nothing to IRC");
  await dm.user("!otr start", "text", "$start");
  assert.ok(dm.irc.every((l) => !l.text.includes("!otr")));
  assert.ok(dm.contact.has("gone-secure"));
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
  assert.equal(w.matrix.notices(ROOM).filter((c) => c === "command").length, 2);
  assert.equal(w.matrix.redactions.length, 0, "commands without secrets are not redacted");
});

test("/me inside OTR travels as '/me text' and arrives as an emote; peer HTML becomes a safe formatted_body", async () => {
  const { w, dm } = await secureDm();
  await dm.user("waves", "emote");
  assert.deepEqual(dm.contact.received(), ["/me waves"]);
  await dm.contactSays("/me dances");
  const last = w.matrix.messages(ROOM).at(-1)!;
  assert.equal(last.kind, "emote");
  assert.equal(last.body, "dances");
  await dm.contactSays('<b>bold</b> &amp; <a href="https://example.org/x">link</a><script>alert(1)</script><img src=x onerror=y>');
  const html = w.matrix.messages(ROOM).at(-1)!;
  assert.equal(html.body, "bold & linkalert(1)");
  assert.equal(html.extra["format"], "org.matrix.custom.html");
  assert.equal(html.extra["formatted_body"], '<b>bold</b> &amp; <a href="https://example.org/x">link</a>alert(1)');
});

test("policy always: a message typed before the AKE is held, then sent encrypted once it completes, never in plaintext", async () => {
  const w = makeWorld({ defaultPolicy: "always" });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  const { settled, ...r } = await dm.w.pipeline.fromMatrix(dm.ctx, "text", "secret plans", undefined);
  assert.deepEqual(r, { sent: false, encrypted: false, handled: true });
  let isSettled = false;
  void settled?.then(() => (isSettled = true));
  assert.ok(settled, "a held message says when it is settled (its Matrix event is done only then)");
  assert.deepEqual(w.matrix.notices(ROOM).filter((c) => c === "held"), ["held"]);
  assert.ok(!dm.wireText().includes("secret plans"));
  await new Promise((res) => setImmediate(res));
  assert.equal(isSettled, false, "not while it is held");
  await dm.pump(); // the query went out; the contact answers and the AKE runs
  await settled;
  assert.deepEqual(dm.contact.received(), ["secret plans"]);
  assert.ok(!dm.wireText().includes("secret plans"));
  assert.equal(w.matrix.noticesWith("returned").length, 0);
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
});

test("policy always: when the AKE never completes the held message is returned after the timeout, quoted, never sent", async () => {
  const w = makeWorld({ defaultPolicy: "always" });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  const { settled } = await w.pipeline.fromMatrix(dm.ctx, "text", "for your eyes only", undefined);
  let isSettled = false;
  void settled?.then(() => (isSettled = true));
  dm.dropInFlight(); // the contact never answers the query
  w.env.clock += QUEUE_TIMEOUT_MS / 2;
  await w.pipeline.pollAll();
  assert.equal(w.matrix.noticesWith("returned").length, 0, "not yet");
  assert.equal(isSettled, false);
  w.env.clock += QUEUE_TIMEOUT_MS;
  await w.pipeline.pollAll();
  await settled; // settled by the return: the user holds the text again
  const ret = w.matrix.noticesWith("returned");
  assert.equal(ret.length, 1);
  assert.match(ret[0]!.body, /> for your eyes only/);
  await dm.pump();
  assert.ok(!dm.wireText().includes("for your eyes only"));
  assert.deepEqual(dm.contact.received(), []);
});

test("after the contact ends the session: ended-by-peer, state finished, the next message refused; !otr end then lets plaintext go", async () => {
  const { w, dm } = await secureDm();
  dm.contact.take(dm.contact.conv.end());
  await dm.pump();
  assert.ok(w.matrix.notices(ROOM).includes("ended-by-peer"));
  assert.equal(w.matrix.status(ROOM)!["state"], "finished");
  const before = dm.irc.length;
  const r = await dm.user("are you there?");
  assert.equal(r.sent, false);
  assert.equal(dm.irc.length, before, "nothing written to IRC");
  const refused = w.matrix.noticesWith("refused");
  assert.equal(refused.length, 1);
  assert.match(refused[0]!.body, /> are you there\?/);
  await dm.user("!otr end");
  assert.equal(w.matrix.status(ROOM)!["state"], "plaintext");
  const r2 = await dm.user("plain now");
  assert.deepEqual(r2, { sent: true, encrypted: false });
});

test("SMP started by the user with the right secret: both succeed, state verified, persisted as smp, the command is redacted", async () => {
  const { w, dm } = await secureDm();
  await dm.user("!otr smp correct horse", "text", "$smp1");
  assert.deepEqual(w.matrix.redactions, [{ roomId: ROOM, as: "@irc_net_bob:test.local", eventId: "$smp1" }]);
  assert.ok(dm.contact.events.some((e) => e.type === "smp-ask" && e.question === null));
  dm.contact.take(dm.contact.conv.smpRespond(new TextEncoder().encode("correct horse")));
  await dm.pump();
  assert.ok(dm.contact.has("smp-success"));
  assert.ok(w.matrix.notices(ROOM).includes("smp-success"));
  assert.equal(w.matrix.status(ROOM)!["verified"], true);
  const recs = await w.store.listFingerprints(USER, NET);
  assert.deepEqual(recs.map((r) => [r.peerNick, r.trust, r.verifiedBy]), [["bob", "verified", "smp"]]);
  await dm.contactSays("now verified");
  assert.deepEqual(w.matrix.messages(ROOM).at(-1)!.extra["org.matrix_otr_irc.otr"], { encrypted: true, verified: true });
  assert.ok(!JSON.stringify(w.matrix.posted).includes("correct horse"), "the secret is never echoed");
});

test("SMP with a question from the user, wrong answer: failure on both sides, stays unverified", async () => {
  const { w, dm } = await secureDm();
  await dm.user("!otr ask Where did we meet? ; Berlin", "text", "$ask");
  assert.equal(w.matrix.redactions[0]!.eventId, "$ask");
  assert.ok(dm.contact.events.some((e) => e.type === "smp-ask" && e.question === "Where did we meet?"));
  dm.contact.take(dm.contact.conv.smpRespond(new TextEncoder().encode("Paris")));
  await dm.pump();
  assert.ok(dm.contact.has("smp-failure"));
  assert.ok(w.matrix.notices(ROOM).includes("smp-failure"));
  assert.equal(w.matrix.status(ROOM)!["verified"], false);
  assert.ok((await w.store.listFingerprints(USER, NET)).every((r) => r.trust === "unverified"));
});

test("SMP started by the contact with a question: smp-question notice, the user answers with !otr smp, both succeed", async () => {
  const { w, dm } = await secureDm();
  dm.contact.take(dm.contact.conv.smpStart(new TextEncoder().encode("blue"), "Favourite colour?"));
  await dm.pump();
  const q = w.matrix.noticesWith("smp-question");
  assert.equal(q.length, 1);
  assert.match(q[0]!.body, /Favourite colour\?/);
  assert.match(q[0]!.body, /!otr smp/);
  await dm.user("!otr smp blue", "text", "$ans");
  assert.ok(dm.contact.has("smp-success"));
  assert.ok(w.matrix.notices(ROOM).includes("smp-success"));
  assert.equal(w.matrix.status(ROOM)!["verified"], true);
  assert.equal(w.matrix.redactions[0]!.eventId, "$ans");
});

test("SMP started by the contact without a question and answered wrongly fails on both sides", async () => {
  const { w, dm } = await secureDm();
  dm.contact.take(dm.contact.conv.smpStart(new TextEncoder().encode("right")));
  await dm.pump();
  assert.ok(w.matrix.notices(ROOM).includes("smp-question"));
  await dm.user("!otr smp wrong", "text", "$w");
  assert.ok(dm.contact.has("smp-failure"));
  assert.ok(w.matrix.notices(ROOM).includes("smp-failure"));
  assert.equal(w.matrix.status(ROOM)!["verified"], false);
});

test("a secret command that cannot be redacted says so; management-room commands redact as the bot and answer there", async () => {
  const { w, dm } = await secureDm();
  w.matrix.failRedact = true;
  await dm.user("!otr smp x", "text", "$x");
  assert.match(w.matrix.noticesWith("command").at(-1)!.body, /could not remove/);
  w.matrix.failRedact = false;
  const reply = await w.pipeline.command(dm.ctx, "smp-abort", { roomId: "!mgmt:test.local", eventId: "$m0" });
  assert.match(reply, /aborted/);
  const reply2 = await w.pipeline.command(dm.ctx, "ask q ; s", { roomId: "!mgmt:test.local", eventId: "$m1" });
  assert.deepEqual(w.matrix.redactions, [{ roomId: "!mgmt:test.local", as: null, eventId: "$m1" }]);
  assert.match(reply2, /verify/);
  const status = await w.pipeline.command(dm.ctx, "status", { roomId: "!mgmt:test.local" });
  assert.match(status, /private \(OTR v3\)/);
});

test("!otr trust and distrust: a wrong fingerprint is rejected, the right one verifies, distrust undoes it", async () => {
  const { w, dm } = await secureDm();
  await dm.user("!otr trust 00000000 00000000 00000000 00000000 00000000");
  assert.match(w.matrix.noticesWith("command").at(-1)!.body, /not .*current fingerprint/);
  assert.equal(w.matrix.status(ROOM)!["verified"], false);
  await dm.user(`!otr trust ${fpOf(1).toLowerCase()}`);
  assert.equal(w.matrix.status(ROOM)!["verified"], true);
  assert.equal((await w.store.listFingerprints(USER, NET))[0]!.verifiedBy, "manual");
  await dm.user("!otr distrust");
  assert.equal(w.matrix.status(ROOM)!["verified"], false);
  await dm.user("!otr fingerprint");
  const fpReply = w.matrix.noticesWith("command").at(-1)!.body;
  assert.ok(fpReply.includes(fpOf(0)) && fpReply.includes(fpOf(1)), "ours and theirs");
});

test("trust stays with the key across a nick change; a verified contact with a new key gets a loud key-changed and is unverified", async () => {
  const { w, dm } = await secureDm();
  await dm.user("!otr trust");
  assert.equal(w.matrix.status(ROOM)!["verified"], true);
  // Same person (same key), new nick, new DM room.
  const renamed = new Dm(w, new Contact("Bobby", testKey(1), "bobby"), "!bobby:test.local");
  await renamed.contactStarts();
  assert.equal(w.matrix.status("!bobby:test.local")!["verified"], true);
  assert.match(w.matrix.noticesWith("gone-secure").at(-1)!.body, /verified/);
  // Someone under the old nick with another key.
  const imposter = new Dm(w, new Contact("Bob", testKey(2), "bob-new", POLICY.OPPORTUNISTIC, 0x7777), ROOM);
  await imposter.contactStarts();
  const kc = w.matrix.noticesWith("key-changed");
  assert.equal(kc.length, 1);
  assert.equal(kc[0]!.roomId, ROOM);
  assert.match(kc[0]!.body, /CHANGED/);
  assert.match(kc[0]!.body, /someone else/);
  assert.deepEqual(w.matrix.status(ROOM), { state: "encrypted", verified: false, fingerprint: fpOf(2), protocol_version: 3 });
});

test("the key is persisted before first use and reused after a restart; the instance tag too", async () => {
  const store = new MemoryStore();
  const order: string[] = [];
  const put = store.putOtrPrivateKeyIfAbsent.bind(store);
  store.putOtrPrivateKeyIfAbsent = async (u, n, k) => {
    order.push("persist");
    return put(u, n, k);
  };
  const w = makeWorld({ store, keyIndex: 3 });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  const toIrc = dm.ctx.toIrc;
  dm.ctx.toIrc = (k, t) => {
    order.push("irc");
    return toIrc(k, t);
  };
  await dm.user("!otr start");
  assert.equal(order[0], "persist");
  assert.equal(w.keygens, 1);
  assert.ok(w.matrix.notices(ROOM).includes("key-generating"));
  const stored = decodeStoredOtrKey((await store.getOtrPrivateKey(USER, NET))!)!;
  assert.equal(formatFingerprint(fingerprint(dsaPublicKey(stored.key))), fpOf(3));
  assert.equal(dm.contact.conv.status().theirFingerprint, fpOf(3));
  const tag = await store.getInstanceTag(USER, NET);
  assert.ok(tag !== null && tag >= 0x100);

  // "Restart": a new manager over the same store must not generate again and must present the same key.
  // Without saved sessions, so the new contact (who lost its session too) gets a new AKE and sees the key.
  const w2 = makeWorld({ store, keyIndex: 4, persistSessions: false });
  const dm2 = new Dm(w2, new Contact("Bob", testKey(1), "bob2"), ROOM);
  await dm2.user("!otr start");
  assert.equal(w2.keygens, 0);
  assert.equal(dm2.contact.conv.status().theirFingerprint, fpOf(3));
  assert.ok(!w2.matrix.notices(ROOM).includes("key-generating"));
  assert.equal(dm2.contact.conv.status().theirInstance, tag);
});

test("IRC messages arriving while the key is generated wait (in order) and are delivered after", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const w = makeWorld({ generateKey: async () => { await gate; return testKey(0); } });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  // The contact asks for OTR (the key is needed from here on), then writes plain lines behind it.
  const ask = dm.contact.conv.startAke().toSend;
  const pending = [...ask, "two", "three"].map((t) => w.pipeline.fromIrc(dm.ctx, "text", t));
  await new Promise((r) => setImmediate(r));
  assert.equal(w.matrix.messages(ROOM).length, 0);
  release();
  await Promise.all(pending);
  assert.deepEqual(w.matrix.messages(ROOM).map((m) => m.body), ["two", "three"]);
  assert.ok(w.matrix.notices(ROOM).includes("key-generating"));
});

test("a DM that never goes private never makes a key: plaintext both ways, whitespace tag and all; the contact's AKE makes it then", async () => {
  const w = makeWorld();
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob", POLICY.MANUAL), ROOM);
  assert.deepEqual(await dm.user("hello"), { sent: true, encrypted: false });
  await w.pipeline.fromIrc(dm.ctx, "text", "hi back");
  await dm.user("bye");
  assert.deepEqual(w.matrix.messages(ROOM).map((m) => m.body), ["hi back"]);
  assert.deepEqual(dm.contact.events.filter((e) => e.type === "received").map((e) => (e as { text: string }).text), ["hello", "bye"]);
  assert.match(dm.irc[0]!.text, /^hello \t  \t\t\t\t \t \t \t  /, "the first line offers OTR (the whitespace tag) without a key");
  assert.equal(w.keygens, 0);
  assert.equal(await w.store.getOtrPrivateKey(USER, NET), null);
  assert.ok(!w.matrix.notices(ROOM).includes("key-generating"));

  await dm.contactStarts();
  assert.equal(w.keygens, 1);
  assert.ok(w.matrix.notices(ROOM).includes("key-generating"));
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
  assert.equal(dm.contact.conv.status().theirFingerprint, fpOf(0));
});

test("plaintext during a private conversation is shown marked unencrypted with a notice; unreadable and OTR errors get notices, nothing is resent", async () => {
  const { w, dm } = await secureDm();
  await w.pipeline.fromIrc(dm.ctx, "text", "oops, plain");
  const last = w.matrix.messages(ROOM).at(-1)!;
  assert.equal(last.body, "oops, plain");
  assert.deepEqual(last.extra["org.matrix_otr_irc.otr"], { encrypted: false, verified: false });
  assert.ok(w.matrix.notices(ROOM).includes("plaintext-in-private"));

  // A replayed data message is unreadable.
  dm.contact.take(dm.contact.conv.send("once"));
  const line = dm.contact.outbox[0]!;
  await dm.pump();
  await w.pipeline.fromIrc(dm.ctx, "text", line);
  assert.ok(w.matrix.notices(ROOM).includes("unreadable"));

  await dm.user("before the error");
  const before = dm.irc.length;
  await w.pipeline.fromIrc(dm.ctx, "text", "?OTR Error: something broke");
  assert.ok(w.matrix.notices(ROOM).includes("error-received"));
  assert.ok(dm.irc.slice(before).every((l) => l.text.startsWith("?OTR")), "no resend of the user's text");
  assert.ok(!dm.wireText().includes("before the error"));
});

test("!otr policy is persisted per peer and used by a new manager; never ends a running private conversation first", async () => {
  const { w, dm } = await secureDm();
  await dm.user("!otr policy never");
  assert.equal(await w.store.getPeerPolicy(USER, NET, "bob"), "never");
  assert.ok(dm.contact.events.some((e) => e.type === "gone-insecure"), "the contact was told the session ended");
  assert.equal(w.matrix.status(ROOM)!["state"], "plaintext");
  await dm.user("!otr policy always");
  const w2 = makeWorld({ store: w.store });
  const dm2 = new Dm(w2, new Contact("Bob", testKey(1), "bob3"), ROOM);
  await w2.pipeline.fromMatrix(dm2.ctx, "text", "held?", undefined);
  assert.ok(w2.matrix.notices(ROOM).includes("held"));
  await dm2.user("!otr policy");
  assert.match(w2.matrix.noticesWith("command").at(-1)!.body, /always/);
});

test("shutdown ends private conversations with TLV 1 through the puppet (persist_sessions off)", async () => {
  const { w, dm } = await secureDm({ persistSessions: false });
  await w.pipeline.shutdown();
  await dm.pump();
  assert.ok(dm.contact.events.some((e) => e.type === "gone-insecure" && e.reason === "peer-ended"));
  assert.equal(w.matrix.status(ROOM)!["state"], "plaintext");
});

test("metrics: library events go to the OTR counter hook, held messages sent after the AKE count as encrypted", async () => {
  const seen: string[] = [];
  const bridged: boolean[] = [];
  const w = makeWorld({
    defaultPolicy: "always",
    otrEvents: (evs) => seen.push(...evs.map((e) => e.type)),
    metrics: { messageBridged: (_d, _n, enc) => bridged.push(enc), messageFailed() {}, connectionState() {} },
  });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  await dm.user("x");
  assert.ok(seen.includes("queued") && seen.includes("gone-secure"));
  assert.deepEqual(bridged, [true]);
});

test("an unfragmented OTR message split across PRIVMSGs by a bouncer is rejoined and read once", async () => {
  const { w, dm } = await secureDm();
  dm.contact.take(dm.contact.conv.send("x".repeat(600)));
  const line = dm.contact.outbox.shift()!;
  assert.ok(line.startsWith("?OTR:") && line.length > 700);
  const pieces = [line.slice(0, 300), line.slice(300, 600), line.slice(600)];
  for (const p of pieces) await w.pipeline.fromIrc(dm.ctx, "text", p);
  const got = w.matrix.messages(ROOM).filter((m) => m.body === "x".repeat(600));
  assert.equal(got.length, 1);
  assert.deepEqual(got[0]!.extra["org.matrix_otr_irc.otr"], { encrypted: true, verified: false });
  assert.ok(!w.matrix.notices(ROOM).includes("unreadable"));
});

test("a stored key that does not parse: plaintext still flows, anything needing the key is refused with a notice, commands still answer", async () => {
  const store = new MemoryStore();
  await store.putOtrPrivateKeyIfAbsent(USER, NET, new TextEncoder().encode("not a key file"));
  const w = makeWorld({ store });
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob", POLICY.MANUAL), ROOM);
  // Opportunistic plaintext needs no key.
  assert.deepEqual(await dm.user("hello"), { sent: true, encrypted: false });
  await w.pipeline.fromIrc(dm.ctx, "text", "hi");
  assert.deepEqual(w.matrix.messages(ROOM).map((m) => m.body), ["hi"]);
  const sent = dm.irc.length;
  await dm.user("!otr fingerprint");
  assert.match(w.matrix.noticesWith("command").at(-1)!.body, /did not work \(bad-stored-key\)/);
  await dm.user("!otr start");
  assert.match(w.matrix.noticesWith("command").at(-1)!.body, /did not work \(bad-stored-key\)/);
  assert.equal(dm.irc.length, sent, "no query went out on a key that cannot sign");
  await assert.rejects(w.pipeline.fromIrc(dm.ctx, "text", dm.contact.conv.startAke().toSend[0]!));
  assert.match(w.matrix.noticesWith("unreadable")[0]!.body, /bad-stored-key/);
  assert.equal(dm.irc.length, sent);
  assert.equal(w.matrix.status(ROOM)?.["state"] ?? "plaintext", "plaintext");
});

test("a new AKE inside a private conversation is still-secure; !otr refresh ends and restarts it", async () => {
  const { w, dm } = await secureDm();
  await dm.contactStarts();
  assert.ok(w.matrix.notices(ROOM).includes("still-secure"));
  assert.equal(w.matrix.noticesWith("gone-secure").length, 1);
  await dm.user("!otr refresh");
  assert.ok(w.matrix.notices(ROOM).includes("ended-by-us"));
  assert.equal(w.matrix.noticesWith("gone-secure").length, 2);
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
  await dm.user("after refresh");
  assert.deepEqual(dm.contact.received().at(-1), "after refresh");
});

test("idle plaintext peers are forgotten by the poll; private ones are kept", async () => {
  const { IDLE_PEER_MS } = await import("../../src/bridge/otr/manager.js");
  const { w, dm } = await secureDm();
  const plain = new Dm(w, new Contact("Carol", testKey(2), "carol"), "!carol:test.local");
  await w.pipeline.fromIrc(plain.ctx, "text", "hi");
  w.env.clock += IDLE_PEER_MS + 1;
  await w.pipeline.pollAll();
  // Bob's session survived: a message still goes out encrypted.
  assert.deepEqual(await dm.user("still here"), { sent: true, encrypted: true });
  // Carol's peer was forgotten: her next message makes a fresh one, whose status is posted again.
  const before = w.matrix.states.filter((s) => s.roomId === "!carol:test.local").length;
  await w.pipeline.fromIrc(plain.ctx, "text", "back");
  assert.equal(w.matrix.states.filter((s) => s.roomId === "!carol:test.local").length, before + 1);
});

test("opportunistic: the first plaintext carries the whitespace tag, in front when the text will be split, and the contact starts OTR from it", async () => {
  const w = makeWorld();
  const dm = new Dm(w, new Contact("Bob", testKey(1), "bob"), ROOM);
  dm.budget = 100;
  const long = "word ".repeat(60).trim();
  await dm.user(long);
  const first = dm.irc[0]!.text;
  assert.ok(first.startsWith(" \t  \t\t\t\t \t \t \t  "), "tag in front");
  assert.ok(first.endsWith(long));
  assert.ok(dm.contact.received().includes(long), "the contact sees the text without the tag");
  assert.ok(dm.contact.has("gone-secure"), "the tag started the AKE");
  assert.equal(w.matrix.status(ROOM)!["state"], "encrypted");
});

test("a renamed contact keeps the private conversation: no new AKE, messages still encrypted both ways", async () => {
  const { w, dm } = await secureDm();
  const ake = dm.contact.conv.status().ssid;
  const renamed = new Dm(w, dm.contact, ROOM, "Bobby");
  await w.pipeline.renamed!("bob", renamed.ctx);
  await renamed.contactSays("still me");
  const last = w.matrix.messages(ROOM).at(-1)!;
  assert.equal(last.body, "still me");
  assert.deepEqual(last.extra["org.matrix_otr_irc.otr"], { encrypted: true, verified: false });
  const r = await renamed.user("hello Bobby");
  assert.deepEqual(r, { sent: true, encrypted: true });
  assert.deepEqual(dm.contact.received().at(-1), "hello Bobby");
  assert.deepEqual(dm.contact.conv.status().ssid, ake, "the same session, not a new AKE");
  assert.equal(w.matrix.noticesWith("gone-secure").length, 1);
});
