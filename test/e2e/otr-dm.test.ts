// OTR in direct messages, end to end (issue 6): the real daemon (startBridge, SQLite store, debug logging through
// the real logger), Synapse, ngIRCd behind a TCP tap, and libotr contacts on IRC (test/harness/libotr-irc.ts).
// Alice is the Matrix user; Bob, Carol, Dave and Erin are IRC contacts running libotr. Tests run in order and
// build on each other (Bob's session is verified by SMP before the restart and the nick change). The last test
// greps the bridge's debug log for every plaintext and secret used here (issue 9).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { LONG, NOTICE_KEY, OtrWorld, fingerprintInBody, otrFlags } from "../harness/otr-e2e.js";
import { generateContactKey, normalizeFingerprint, type LibotrIrcContact } from "../harness/libotr-irc.js";
import type { MatrixEvent } from "../harness/matrix-client.js";

/** Every plaintext and secret used in this file: none may reach the bridge's log. */
const SECRETS: string[] = [];
const secret = <T extends string>(s: T): T => { SECRETS.push(s); return s; };
/** Texts Alice wrote during a private conversation: none may reach the IRC server in clear. */
const PRIVATE_OUT: string[] = [];

const LONG_TEXT_BOB = secret(Array.from({ length: 40 }, (_, i) => `${i}: Grüße, café, 日本語の秘密 ✓ e\u0301`).join(" "));
const LONG_TEXT_ALICE = secret(Array.from({ length: 40 }, (_, i) => `${i}: réponse, ünïcödé 👩🏽‍🚀 暗号 §`).join(" "));

describe("OTR direct messages end to end (daemon, Synapse, ngIRCd, libotr)", { timeout: 1_200_000 }, () => {
  const world = new OtrWorld("otr-dm");
  const keys = {
    bob: generateContactKey("Bob"),
    bobNew: generateContactKey("Bob"),
    carol: generateContactKey("Carol"),
    dave: generateContactKey("Dave"),
    hana: generateContactKey("Hana"),
  };
  let bob: LibotrIrcContact;
  let carol: LibotrIrcContact;
  let bobRoom = "";
  let carolRoom = "";
  /** The bridge's fingerprint for Alice on this network, as libotr sees it. */
  let aliceFp = "";

  before(async () => { await world.start(); });
  after(async () => { await world.stop(); });

  it("the contact starts OTR: a gone-secure notice with its fingerprint, and the room state says encrypted, unverified", async () => {
    bob = await world.contact("Bob", keys.bob.keyFile);
    bobRoom = await world.openDmFromIrc(bob, secret("hello alice, plaintext before OTR"));
    const from = world.alice.mark();
    const libFrom = bob.mark();
    bob.startOtr();
    const s = await bob.waitForSecure(libFrom);
    aliceFp = s.fpRaw;
    assert.match(aliceFp, /^[0-9a-f]{40}$/);
    const n = await world.notice(bobRoom, "gone-secure", from, world.ghost("Bob"));
    assert.equal(n.content.msgtype, "m.notice");
    assert.equal(fingerprintInBody(n.content.body), keys.bob.fpRaw, `the notice shows Bob's fingerprint: ${String(n.content.body)}`);
    assert.match(String(n.content.body), /unverified/i);
    const st = await world.status(bobRoom, (x) => x.state === "encrypted", "encrypted");
    assert.equal(st.verified, false);
    assert.equal(normalizeFingerprint(st.fingerprint ?? ""), keys.bob.fpRaw);
    assert.equal(st.protocol_version, 3);
  });

  it("messages both ways are encrypted: long non-ASCII text and /me arrive whole, flagged encrypted, never in clear on the server", async () => {
    const ghost = world.ghost("Bob");
    const t1 = secret("first private words from bob");
    let from = world.alice.mark();
    await bob.send(t1);
    const m1 = await world.alice.waitForMessage(bobRoom, t1, { sender: ghost, timeoutMs: LONG, from });
    assert.equal(m1.content.msgtype, "m.text");
    assert.deepEqual(otrFlags(m1), { encrypted: true, verified: false });
    assert.ok(Buffer.byteLength(LONG_TEXT_BOB) >= 1500);
    await bob.send(LONG_TEXT_BOB);
    const m2 = await world.alice.waitForMessage(bobRoom, LONG_TEXT_BOB, { sender: ghost, timeoutMs: LONG, from });
    assert.equal(otrFlags(m2).encrypted, true);
    assert.ok(bob.wireSent.filter((l) => l.startsWith("?OTR|")).length >= 4, "libotr fragmented the long message");
    const waves = secret("waves from inside the tunnel");
    await bob.emote(waves);
    const m3 = await world.alice.waitForEvent(bobRoom, (e) => e.type === "m.room.message" && e.content.body === waves, LONG, from);
    assert.equal(m3.content.msgtype, "m.emote");
    assert.equal(otrFlags(m3).encrypted, true);

    const tap = world.tap.mark();
    from = bob.mark();
    const a1 = secret("alice answers in private");
    PRIVATE_OUT.push(a1);
    await world.alice.sendText(bobRoom, a1);
    assert.equal((await bob.waitForText(a1, from)).otr, true);
    PRIVATE_OUT.push(LONG_TEXT_ALICE);
    await world.alice.sendText(bobRoom, LONG_TEXT_ALICE);
    assert.equal((await bob.waitForText(LONG_TEXT_ALICE, from)).otr, true);
    const nods = secret("nods quietly in cipher");
    PRIVATE_OUT.push(nods);
    await world.alice.sendEmote(bobRoom, nods);
    assert.equal((await bob.waitForText(`/me ${nods}`, from)).otr, true);
    for (const t of [a1, LONG_TEXT_ALICE.slice(0, 30), nods]) assert.ok(!world.tap.sawSent(t, tap), `not in clear on the IRC server: ${t}`);
    for (const l of world.tap.linesSince(tap)) assert.ok(Buffer.byteLength(l) + 2 <= 512, `IRC line of ${Buffer.byteLength(l) + 2} bytes`);
  });

  it("plaintext from the contact during a private conversation is shown flagged unencrypted, with a warning", async () => {
    const ghost = world.ghost("Bob");
    const from = world.alice.mark();
    const t = secret("oops, typed outside OTR");
    bob.irc.privmsg("alice", t);
    const m = await world.alice.waitForMessage(bobRoom, t, { sender: ghost, timeoutMs: LONG, from });
    assert.equal(otrFlags(m).encrypted, false);
    const n = await world.notice(bobRoom, "plaintext-in-private", from, ghost);
    assert.equal(n.content.msgtype, "m.notice");
    await world.status(bobRoom, (x) => x.state === "encrypted", "still encrypted");
  });

  it("the user starts OTR with `!otr start`; commands never reach IRC", async () => {
    carol = await world.contact("Carol", keys.carol.keyFile);
    carolRoom = await world.openDmFromIrc(carol, secret("hi alice, carol here"));
    const tap = world.tap.mark();
    const from = world.alice.mark();
    const libFrom = carol.mark();
    await world.alice.sendText(carolRoom, "!otr start");
    const s = await carol.waitForSecure(libFrom);
    assert.equal(s.fpRaw, aliceFp, "one key per (user, network): Carol sees the same fingerprint as Bob");
    await world.notice(carolRoom, "gone-secure", from, world.ghost("Carol"));
    await world.status(carolRoom, (x) => x.state === "encrypted" && x.verified === false, "encrypted, unverified");
    assert.ok(!world.tap.sawSent("!otr", tap), "the command did not go to IRC");
    const c1 = secret("carol's private reply");
    const f2 = world.alice.mark();
    await carol.send(c1);
    const m = await world.alice.waitForMessage(carolRoom, c1, { timeoutMs: LONG, from: f2 });
    assert.equal(otrFlags(m).encrypted, true);
  });

  it("a contact whose libotr requires encryption writes first: libotr's own query starts the AKE and its message arrives encrypted", async () => {
    const hana = await world.contact("Hana", keys.hana.keyFile);
    const room = await world.openDmFromIrc(hana, secret("hana says hello in clear first"));
    await hana.setPolicy("ALWAYS");
    const from = world.alice.mark();
    const lib = hana.mark();
    const t = secret("hana's first private words, queued by libotr");
    await hana.send(t);
    assert.ok(hana.wireSent.some((l) => l.startsWith("?OTRv")), "libotr sent a query instead of the text");
    const s = await hana.waitForSecure(lib);
    assert.equal(s.fpRaw, aliceFp);
    const m = await world.alice.waitForMessage(room, t, { sender: world.ghost("Hana"), timeoutMs: LONG, from });
    assert.equal(otrFlags(m).encrypted, true);
    assert.ok(!hana.wireSent.includes(t), "libotr never sent it in clear");
  });

  it("the contact ends the session: ended-by-peer, state finished, and the user's next message is refused, not sent in clear", async () => {
    const from = world.alice.mark();
    await carol.endSession();
    await world.notice(carolRoom, "ended-by-peer", from);
    await world.status(carolRoom, (x) => x.state === "finished", "finished");
    const tap = world.tap.mark();
    const libFrom = carol.mark();
    const after = secret("this must not leave in plaintext after the end");
    PRIVATE_OUT.push(after);
    const f2 = world.alice.mark();
    await world.alice.sendText(carolRoom, after);
    const refused = await world.notice(carolRoom, "refused", f2);
    assert.equal(refused.content.msgtype, "m.notice");
    // The refusal is the bridge's answer to this message: by then it has decided not to send it.
    await world.bridge!.core.idle();
    assert.ok(!world.tap.sawSent(after, tap), "not on the IRC server");
    assert.ok(!carol.events.slice(libFrom).some((e) => e.ev === "received" && Buffer.from(e.text, "hex").toString() === after));
  });

  it("SMP from each side, with and without a question: a wrong secret fails on both sides, the right one verifies; secrets are redacted", async () => {
    const ghost = world.ghost("Bob");
    // 1. Bob asks without a question; Alice answers wrong.
    let from = world.alice.mark();
    let lib = bob.mark();
    await bob.smpStart(secret("sesame-bob-1"));
    const ask1 = await world.notice(bobRoom, "smp-question", from, ghost);
    assert.match(String(ask1.content.body), /!otr smp/);
    let cmd = await sendSecretCommand(`!otr smp ${secret("not-sesame-alice-1")}`);
    assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "FAILURE");
    await world.notice(bobRoom, "smp-failure", from, ghost);
    await world.waitRedacted(bobRoom, cmd);
    assert.equal((await world.status(bobRoom, (x) => x.state === "encrypted", "encrypted")).verified, false);

    // 2. Alice asks with a question; Bob answers wrong.
    from = world.alice.mark();
    lib = bob.mark();
    const q2 = secret("What is our boat called?");
    cmd = await sendSecretCommand(`!otr ask ${q2} ; ${secret("Dawn Treader")}`);
    const ask2 = await bob.waitForSmp(["ASK_FOR_ANSWER"], lib);
    assert.equal(ask2.question, q2);
    await bob.smpRespond(secret("Black Pearl"));
    assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "FAILURE");
    await world.notice(bobRoom, "smp-failure", from, ghost);
    await world.waitRedacted(bobRoom, cmd);
    assert.equal((await world.alice.getStateEvent(bobRoom, "org.matrix_otr_irc.otr_status"))?.verified, false);

    // 3. Alice asks without a question; Bob answers right.
    from = world.alice.mark();
    lib = bob.mark();
    cmd = await sendSecretCommand(`!otr smp ${secret("correct horse 3")}`);
    await bob.waitForSmp(["ASK_FOR_SECRET"], lib);
    await bob.smpRespond("correct horse 3");
    assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "SUCCESS");
    await world.notice(bobRoom, "smp-success", from, ghost);
    await world.waitRedacted(bobRoom, cmd);
    await world.status(bobRoom, (x) => x.verified === true, "verified");

    // 4. Distrust, then Bob asks with a question; Alice answers right.
    await world.command(bobRoom, "!otr distrust");
    await world.status(bobRoom, (x) => x.verified === false, "unverified after distrust");
    from = world.alice.mark();
    lib = bob.mark();
    const q4 = secret("Where did we first meet?");
    await bob.smpStart(secret("in the library 4"), q4);
    const ask4 = await world.notice(bobRoom, "smp-question", from, ghost);
    assert.ok(String(ask4.content.body).includes(q4), "the notice shows the question");
    cmd = await sendSecretCommand("!otr smp in the library 4");
    assert.equal((await bob.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "SUCCESS");
    await world.notice(bobRoom, "smp-success", from, ghost);
    await world.waitRedacted(bobRoom, cmd);
    await world.status(bobRoom, (x) => x.verified === true && x.state === "encrypted", "verified");
    const f2 = world.alice.mark();
    const t = secret("now you know it is me");
    await bob.send(t);
    const m = await world.alice.waitForMessage(bobRoom, t, { sender: ghost, timeoutMs: LONG, from: f2 });
    assert.deepEqual(otrFlags(m), { encrypted: true, verified: true });
  });

  it("verification survives a bridge restart: after a new AKE the state and `!otr status` say verified, same key", async () => {
    await world.restartBridge(bob);
    const from = world.alice.mark();
    const lib = bob.mark();
    bob.startOtr();
    const s = await bob.waitForSecure(lib);
    assert.equal(s.fpRaw, aliceFp, "the bridge kept Alice's OTR key");
    const n = await world.notice(bobRoom, "gone-secure", from, world.ghost("Bob"));
    assert.doesNotMatch(String(n.content.body), /unverified|not verified/i);
    assert.match(String(n.content.body), /verified/i);
    await world.status(bobRoom, (x) => x.state === "encrypted" && x.verified === true, "encrypted and verified");
    const { reply } = await world.command(bobRoom, "!otr status");
    assert.match(String(reply.content.body), /verified/i);
    assert.doesNotMatch(String(reply.content.body), /unverified|not verified/i);
    // `!otr fingerprint` shows both keys; the management room's `otr <network> <nick> ...` answers the same.
    const fps = String((await world.command(bobRoom, "!otr fingerprint")).reply.content.body);
    const groups = (fps.match(/[0-9a-f]{8}(?: [0-9a-f]{8}){4}/gi) ?? []).map(normalizeFingerprint);
    assert.ok(groups.includes(aliceFp) && groups.includes(keys.bob.fpRaw), `both fingerprints in: ${fps}`);
    const f3 = world.alice.mark();
    await world.alice.sendText(world.mgmt, "otr local Bob status");
    const mg = await world.alice.waitForMessage(world.mgmt, /verified/i, { sender: world.botId, timeoutMs: LONG, from: f3 });
    assert.doesNotMatch(String(mg.content.body), /unverified|not verified/i);
  });

  it("policy `always`: a message typed before the AKE is held, then arrives encrypted, never in clear on the server", async () => {
    const dave = await world.contact("Dave", keys.dave.keyFile);
    const room = await world.openDmFromMatrix("Dave");
    // Dave's libotr reads nothing until Alice has typed: her message is certainly written before the AKE completes.
    dave.pause();
    await world.command(room, "!otr policy always");
    const tap = world.tap.mark();
    const from = world.alice.mark();
    const lib = dave.mark();
    const held = secret("typed before the AKE, for dave only");
    PRIVATE_OUT.push(held);
    await world.alice.sendText(room, held);
    await world.notice(room, "held", from);
    assert.ok(!world.tap.sawSent(held, tap), "not sent while held");
    dave.resume();
    await dave.waitForSecure(lib);
    const got = await dave.waitForText(held, lib);
    assert.equal(got.otr, true, "delivered inside OTR");
    await world.status(room, (x) => x.state === "encrypted", "encrypted");
    assert.ok(!world.tap.sawSent(held, tap), "never in clear on the IRC server");
    assert.ok(world.tap.linesSince(tap).some((l) => /^PRIVMSG Dave :\?OTR/.test(l)), "OTR traffic went out");
  });

  let gina: Awaited<ReturnType<OtrWorld["rawIrc"]>> | null = null;
  let ginaRoom = "";
  const GINA_TEXT = secret("for gina, who has no OTR: never in clear");
  let ginaTap = 0;
  let ginaFrom = 0;

  it("policy `always` with a contact who never answers OTR: the message is held, only a query goes out", async () => {
    gina = await world.rawIrc("Gina");
    ginaRoom = await world.openDmFromMatrix("Gina");
    await world.command(ginaRoom, "!otr policy always");
    ginaTap = world.tap.mark();
    ginaFrom = world.alice.mark();
    const irc = gina.mark();
    PRIVATE_OUT.push(GINA_TEXT);
    await world.alice.sendText(ginaRoom, GINA_TEXT);
    await world.notice(ginaRoom, "held", ginaFrom);
    await gina.waitForPrivmsg("alice", (t) => t.startsWith("?OTR"), LONG, irc);
    assert.ok(!gina.messages.slice(irc).some((m) => (m.params[1] ?? "").includes(GINA_TEXT)));
  });

  it("the contact changes nick: the key stays trusted under the new nick", async () => {
    await bob.changeNick("Bobby");
    const from = world.alice.mark();
    const lib = bob.mark();
    bob.startOtr();
    await bob.waitForSecure(lib);
    // The bridge may follow the nick into Bob's room or open one for Bobby: either way the session is verified.
    const ghosts = [world.ghost("Bob"), world.ghost("Bobby")];
    const n = await waitAcrossRooms(ghosts, (e) => e.content[NOTICE_KEY] === "gone-secure", from);
    assert.doesNotMatch(String(n.content.body), /unverified|not verified/i, "trust kept across the nick change");
    await world.status(n.room_id, (x) => x.state === "encrypted" && x.verified === true, "encrypted and verified");
    const t = secret("same key, new nick");
    const f2 = world.alice.mark();
    await bob.send(t);
    const m = await waitAcrossRooms(ghosts, (e) => e.content.body === t, f2);
    assert.deepEqual(otrFlags(m), { encrypted: true, verified: true });
    await bob.changeNick("Bob");
  });

  it("the contact comes back with a new key: a key-changed notice, and the session is unverified", async () => {
    bob = world.replaceContact(bob, await bob.reconnect({ keyFile: keys.bobNew.keyFile, nick: "Bob" }));
    const from = world.alice.mark();
    const lib = bob.mark();
    bob.startOtr();
    await bob.waitForSecure(lib);
    const n = await world.notice(bobRoom, "key-changed", from, world.ghost("Bob"));
    assert.equal(n.content.msgtype, "m.notice");
    const st = await world.status(bobRoom, (x) => x.state === "encrypted" && normalizeFingerprint(x.fingerprint ?? "") === keys.bobNew.fpRaw, "encrypted with the new key");
    assert.equal(st.verified, false);
    const t = secret("new phone, who dis");
    const f2 = world.alice.mark();
    await bob.send(t);
    const m = await world.alice.waitForMessage(bobRoom, t, { timeoutMs: LONG, from: f2 });
    assert.deepEqual(otrFlags(m), { encrypted: true, verified: false });
  });

  it("an invite of a ghost into an encrypted room gets a notice and an unencrypted DM instead", async () => {
    const ghost = world.ghost("Erin");
    const encryption = [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }];
    const enc = await world.alice.createRoom({ invite: [ghost], isDirect: true, preset: "trusted_private_chat", initialState: encryption });
    await world.alice.waitForMessage(enc, /end-to-end encrypted/, { sender: ghost, timeoutMs: LONG });
    const dm = await world.alice.waitForInvite((r, state) => r !== enc && state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    await world.alice.join(dm);
    assert.equal(await world.alice.getStateEvent(dm, "m.room.encryption"), null, "the new DM is unencrypted");
    const erin = await world.rawIrc("Erin");
    try {
      const hello = secret("hello erin, from the unencrypted room");
      await world.alice.sendText(dm, hello);
      await erin.waitForPrivmsg("alice", (t) => t.startsWith(hello), LONG);
    } finally {
      erin.destroy();
    }
  });

  it("…and when the AKE never completes, the held message is returned to the user, quoted, never sent", async () => {
    // The engine gives a queued message 60 s; the bridge polls every 30 s.
    const n = await world.alice.waitForEvent(ginaRoom, (e) => e.type === "m.room.message" && e.content[NOTICE_KEY] === "returned", 240_000, ginaFrom);
    assert.ok(String(n.content.body).includes(GINA_TEXT), "the returned notice quotes the message");
    assert.ok(!world.tap.sawSent(GINA_TEXT, ginaTap), "never in clear on the IRC server");
    assert.ok(!gina!.messages.some((m) => (m.params[1] ?? "").includes(GINA_TEXT)), "Gina never got it");
    gina!.destroy();
  });

  it("nothing Alice wrote in a private conversation reached the IRC server in clear, and the debug log holds no plaintext or secret", async () => {
    for (const t of PRIVATE_OUT) assert.ok(!world.tap.sawSent(t.slice(0, 24)), `in clear on the IRC server: ${t.slice(0, 40)}`);
    await world.stopBridge();
    const log = world.readLog();
    assert.ok(log.split("\n").length > 50, "the daemon logged at debug level");
    assert.match(log, /"level":"debug"/);
    const needles = [...SECRETS, ...world.infrastructureSecrets(), ...(await world.otrKeySecrets())];
    for (const s of needles) {
      for (const piece of new Set([s, s.slice(0, 20), s.slice(-20)])) {
        if (piece.length < 12) continue;
        assert.ok(!log.includes(piece), `the log contains a plaintext or secret: ${JSON.stringify(piece)} (see ${world.logPath})`);
      }
    }
  });

  /** Sends a command carrying a secret; resolves with its event id. */
  async function sendSecretCommand(text: string): Promise<string> {
    return world.alice.sendText(bobRoom, text);
  }

  /** Finds an event from one of `ghosts` in any room, joining rooms those ghosts invite Alice to meanwhile. */
  async function waitAcrossRooms(ghosts: string[], pred: (e: MatrixEvent) => boolean, from: number): Promise<MatrixEvent & { room_id: string }> {
    const deadline = Date.now() + LONG;
    for (;;) {
      for (const [room, state] of world.alice.invites) {
        if (state.some((e) => e.type === "m.room.member" && ghosts.includes(e.sender))) await world.alice.join(room);
      }
      try {
        return await world.alice.waitForEvent(null, (e) => ghosts.includes(e.sender) && e.type === "m.room.message" && pred(e), 5_000, from);
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
    }
  }
});
