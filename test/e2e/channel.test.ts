// Channel portals end to end: Synapse with the bridge's registration (incl. its alias namespace), ngIRCd, the
// bridge in-process, two Matrix users and raw IRC clients. Network "local" syncs membership lazily, network
// "full" (the same server) fully, which the netsplit test uses so 200 ghosts are in the room before they quit.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { MatrixClient, type MatrixEvent } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { logRoot, tempDir } from "../harness/proc.js";
import { buildRegistration, parseConfig, renderRegistration } from "../../src/config/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";
import { MemoryStore } from "../../src/store/memory.js";

const LONG = 180_000;
// Low enough that the bound is meaningful: Synapse here takes ~24 leaves/s when nothing limits them.
const RATE = 5;

describe("IRC channels as Matrix rooms", { timeout: 1_200_000 }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let bridge: RunningBridge;
  let alice: MatrixClient;
  let bob: MatrixClient;
  let botId: string;
  let mgmt: string;
  let room: string;
  let carol: IrcClient;
  let dave: IrcClient;
  const clients: IrcClient[] = [];
  const logPath = join(logRoot(), `bridge-channel-${process.pid}.log`);
  const ghost = (net: string, nick: string) => `@irc_${net}_${nick}:${hs.domain}`;
  const member = (roomId: string, userId: string, membership: string) => (e: MatrixEvent, r: string) =>
    r === roomId && e.type === "m.room.member" && e.state_key === userId && e.content.membership === membership;

  before(async () => {
    irc = await startNgircd();
    const dir = tempDir("channel-e2e");
    const asPort = await freePort();
    const domain = "localhost";
    // Channel operators get 100 on "local", so an op can edit power levels in the room too (Synapse's public_chat
    // preset asks 100 for that), which the power-level test needs.
    const net = (id: string, sync: string) => ({ id, name: id, host: irc.host, port: irc.port, tls: false, membership_sync: sync, flood_burst_lines: 100, flood_line_interval_ms: 50, ...(id === "local" ? { op_power_level: 100 } : {}) });
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      networks: [net("local", "lazy"), net("full", "full")],
      permissions: { [`@alice:${domain}`]: "admin", [`@bob:${domain}`]: "user" },
      channels: { membership_requests_per_second: RATE, quit_debounce_ms: 1000, max_message_lines: 4 },
      metrics: { enabled: false },
      // The plaintext Matrix leg this suite is about; end-to-bridge encryption has its own (e2ee.test.ts).
      encryption: { allow: false },
    });
    const draft = parseConfig(configText("http://127.0.0.1:1"), "channel-e2e.yaml", { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    const registrationPath = join(dir, "registration.yaml");
    writeFileSync(registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    hs = await startSynapse({ registrationPath });
    const parsed = parseConfig(configText(hs.url), "channel-e2e.yaml", { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      appendFileSync(logPath, JSON.stringify({ level, msg, ...fields }) + "\n");
    bridge = await startBridge({
      config: parsed.config,
      registrationPath,
      logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
      store: new MemoryStore(),
    });
    botId = `@ircotr:${domain}`;
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
    const b = await hs.registerUser("bob", "bob-pw");
    bob = new MatrixClient(hs.url, b.userId, b.accessToken);
    carol = await connectIrc(irc.host, irc.port, "Carol");
    dave = await connectIrc(irc.host, irc.port, "dave");
    clients.push(carol, dave);
    carol.join("#chan");
    dave.join("#chan");
    await dave.waitFor((m) => m.command === "366", LONG);
    await carol.waitFor((m) => m.command === "366", LONG);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await bridge?.stop();
    await hs?.stop();
    await irc?.stop();
  });

  it("`join local #chan` invites the user to the portal; joining it puts the puppet in the channel", async () => {
    mgmt = await alice.createDm(botId);
    await alice.waitForMessage(mgmt, /management room/, { sender: botId, timeoutMs: LONG });
    const from = alice.mark();
    await alice.sendText(mgmt, "join local #Chan");
    const reply = await alice.waitForMessage(mgmt, /Invited you to #Chan on local/, { sender: botId, timeoutMs: LONG, from });
    room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === botId && e.state_key === alice.userId), LONG);
    assert.ok(String(reply.content.body).includes(room));
    const mark = carol.mark();
    await alice.join(room);
    await carol.waitFor((m) => m.command === "JOIN" && m.nick === "alice" && m.params[0]?.toLowerCase() === "#chan", LONG, mark);
    assert.equal(await alice.getStateEvent(room, "m.room.encryption").catch(() => null), null);
  });

  it("the second Matrix user joins the same portal by its alias; their puppet joins too", async () => {
    const mark = carol.mark();
    const joined = await bob.join(`#irc_local_#chan:${hs.domain}`);
    assert.equal(joined, room, "the alias names the portal `join` created");
    await carol.waitFor((m) => m.command === "JOIN" && m.nick === "bob", LONG, mark);
  });

  it("IRC messages, actions and notices arrive from ghosts named after the nick, formatted", async () => {
    const from = alice.mark();
    carol.privmsg("#chan", "hello \x02bold\x02 and \x0304red\x03");
    carol.send("PRIVMSG #chan :\x01ACTION waves\x01");
    carol.notice("#chan", "a notice");
    const g = ghost("local", "carol");
    const m1 = await alice.waitForMessage(room, "hello bold and red", { sender: g, timeoutMs: LONG, from });
    assert.equal(m1.content.formatted_body, 'hello <b>bold</b> and <font data-mx-color="#ff0000">red</font>');
    const m2 = await alice.waitForMessage(room, "waves", { sender: g, timeoutMs: LONG, from });
    assert.equal(m2.content.msgtype, "m.emote");
    const m3 = await alice.waitForMessage(room, "a notice", { sender: g, timeoutMs: LONG, from });
    assert.equal(m3.content.msgtype, "m.notice");
    const profile = await alice.request<{ displayname?: string }>("GET", `/_matrix/client/v3/profile/${encodeURIComponent(g)}`);
    assert.equal(profile.displayname, "Carol");
    // Lazy membership: dave has not spoken, so he has no ghost in the room.
    assert.ok(!(await alice.getJoinedMembers(room)).includes(ghost("local", "dave")));
    // Bob sees the same lines once each (two puppets hear them, one relays).
    await bob.waitForMessage(room, "a notice", { sender: g, timeoutMs: LONG });
    const copies = (await bob.getMessages(room, 100)).filter((e) => e.type === "m.room.message" && e.content.body === "hello bold and red");
    assert.equal(copies.length, 1);
  });

  it("Matrix messages, emotes, notices, formatting, replies and edits reach IRC from the user's own puppet; CR/LF make separate lines", async () => {
    const mark = carol.mark();
    await alice.sendText(room, "hi from matrix");
    await carol.waitForPrivmsg("alice", "hi from matrix", LONG, mark);
    await alice.sendEmote(room, "dances");
    await carol.waitForPrivmsg("alice", "\x01ACTION dances\x01", LONG, mark);
    await alice.sendNotice(room, "matrix notice");
    await carol.waitFor((m) => m.command === "NOTICE" && m.nick === "alice" && m.params[1] === "matrix notice", LONG, mark);
    await alice.sendEvent(room, "m.room.message", {
      msgtype: "m.text", body: "**b** red", format: "org.matrix.custom.html",
      formatted_body: '<strong>b</strong> <font data-mx-color="#ff0000">red</font> <a href="https://matrix.to/#/@irc_local_carol:localhost">Carol</a>',
    });
    await carol.waitForPrivmsg("alice", "\x02b\x02 \x0304red\x03 Carol", LONG, mark);
    await bob.sendText(room, "one\r\ntwo\rQUIT :x\nthree");
    for (const t of ["one", "two", "QUIT :x", "three"]) await carol.waitForPrivmsg("bob", t, LONG, mark);
    const bobs = carol.messages.slice(mark).filter((m) => m.nick === "bob");
    assert.ok(bobs.every((m) => m.command === "PRIVMSG" && m.params[0]!.toLowerCase() === "#chan"));
    await bob.sendText(room, "l1\nl2\nl3\nl4\nl5\nl6");
    const link = await carol.waitForPrivmsg("bob", /^l1 … \(6 lines: https:\/\/matrix\.to\/#\//, LONG, mark);
    assert.ok(link);
    // A reply names the nick replied to (the quoted fallback stays out); an edit is marked, one line.
    const orig = (await alice.getMessages(room, 200)).find((e) => e.type === "m.room.message" && e.content.body === "a notice")!;
    const carolGhost = ghost("local", "carol");
    await alice.sendEvent(room, "m.room.message", {
      msgtype: "m.text", body: `> <${carolGhost}> a notice\n\nthe answer`, format: "org.matrix.custom.html",
      formatted_body: `<mx-reply><blockquote><a href="https://matrix.to/#/${room}/${orig.event_id}">In reply to</a> <a href="https://matrix.to/#/${carolGhost}">${carolGhost}</a><br>a notice</blockquote></mx-reply>the answer`,
      "m.relates_to": { "m.in_reply_to": { event_id: orig.event_id } },
    });
    await carol.waitForPrivmsg("alice", "Carol: the answer", LONG, mark);
    const typo = await alice.sendText(room, "typo hree");
    await alice.sendEvent(room, "m.room.message", {
      msgtype: "m.text", body: "* typo here", "m.new_content": { msgtype: "m.text", body: "typo here\nsecond line" },
      "m.relates_to": { rel_type: "m.replace", event_id: typo },
    });
    await carol.waitForPrivmsg("alice", "* typo here", LONG, mark);
    assert.ok(!carol.messages.slice(mark).some((m) => m.params[1] === "second line" || /a notice/.test(m.params[1] ?? "")));
  });

  it("topic, nick change, part and kick on IRC are mirrored", async () => {
    const from = alice.mark();
    carol.send("TOPIC #chan :the new topic");
    await alice.waitForEvent(room, (e) => e.type === "m.room.topic" && e.content.topic === "the new topic", LONG, from);
    // Carol also writes to alice privately: after the nick change that DM room is still the one (issue 8).
    carol.privmsg("alice", "private before");
    const dm = await alice.waitForInvite((r, state) => r !== room && state.some((e) => e.type === "m.room.member" && e.sender === ghost("local", "carol")), LONG);
    await alice.join(dm);
    await alice.waitForMessage(dm, "private before", { sender: ghost("local", "carol"), timeoutMs: LONG });
    carol.send("NICK Carla");
    await alice.waitForEvent(null, member(room, ghost("local", "carla"), "join"), LONG, from);
    await alice.waitForEvent(null, member(room, ghost("local", "carol"), "leave"), LONG, from);
    carol.privmsg("#chan", "as carla");
    await alice.waitForMessage(room, "as carla", { sender: ghost("local", "carla"), timeoutMs: LONG, from });
    await alice.waitForMessage(dm, "Carol is now known as Carla", { sender: ghost("local", "carla"), timeoutMs: LONG, from });
    carol.privmsg("alice", "private after");
    await alice.waitForMessage(dm, "private after", { sender: ghost("local", "carla"), timeoutMs: LONG, from });
    // The new ghost got the creating ghost's power, so it can keep the room's OTR status state current.
    const power = (await alice.getStateEvent(dm, "m.room.power_levels")) as { users?: Record<string, number> };
    assert.equal(power.users?.[ghost("local", "carla")], 100);
    dave.privmsg("#chan", "dave speaks");
    await alice.waitForMessage(room, "dave speaks", { sender: ghost("local", "dave"), timeoutMs: LONG, from });
    dave.send("PART #chan :gone");
    await alice.waitForEvent(null, member(room, ghost("local", "dave"), "leave"), LONG, from);
    // Carla (first in, so channel operator) kicks bob's puppet: bob is removed from the room.
    carol.send("KICK #chan bob :behave");
    await alice.waitForEvent(null, member(room, bob.userId, "leave"), LONG, from);
  });

  it("a topic set and a ghost kicked in Matrix reach IRC through the user's puppet", async () => {
    // Carla (channel operator) gives alice's puppet +o: alice gets the op power level in the room, enough to kick.
    const mark = carol.mark();
    carol.send("MODE #chan +o alice");
    await carol.waitFor((m) => m.command === "MODE" && m.params[2] === "alice", LONG, mark);
    await alice.waitForEvent(room, (e) => e.type === "m.room.power_levels" && (e.content.users as Record<string, number>)?.[alice.userId] === 100, LONG);
    await alice.sendState(room, "m.room.topic", "", { topic: "topic from matrix" });
    await carol.waitFor((m) => m.command === "TOPIC" && m.nick === "alice" && m.params[1] === "topic from matrix", LONG, mark);
    const from = alice.mark();
    dave.join("#chan");
    dave.privmsg("#chan", "back again");
    await alice.waitForMessage(room, "back again", { sender: ghost("local", "dave"), timeoutMs: LONG, from });
    await alice.request("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/kick`, { user_id: ghost("local", "dave"), reason: "bye" });
    await dave.waitFor((m) => m.command === "KICK" && m.nick === "alice" && m.params[1] === "dave", LONG);
  });

  it("bans both ways: a Matrix ban sets +b and kicks, an IRC +b bans in the room, and unbans follow", async () => {
    const daveGhost = ghost("local", "dave");
    const rooms = `/_matrix/client/v3/rooms/${encodeURIComponent(room)}`;
    let dm = dave.mark();
    dave.join("#chan");
    await dave.waitFor((m) => m.command === "366", LONG, dm);
    let from = alice.mark();
    dave.privmsg("#chan", "dave is back");
    await alice.waitForMessage(room, "dave is back", { sender: daveGhost, timeoutMs: LONG, from });
    // Matrix -> IRC: alice (op on both sides) bans dave's ghost.
    let mark = carol.mark();
    let seen = alice.mark();
    await alice.request("POST", `${rooms}/ban`, { user_id: daveGhost, reason: "spam" });
    await alice.waitForEvent(null, member(room, daveGhost, "ban"), LONG, seen);
    await carol.waitFor((m) => m.command === "MODE" && m.nick === "alice" && m.params[1] === "+b" && m.params[2]?.toLowerCase() === "dave!*@*", LONG, mark);
    await carol.waitFor((m) => m.command === "KICK" && m.nick === "alice" && m.params[1] === "dave", LONG, mark);
    dm = dave.mark();
    dave.join("#chan");
    await dave.waitFor((m) => m.command === "474", LONG, dm); // ERR_BANNEDFROMCHAN
    seen = alice.mark();
    await alice.request("POST", `${rooms}/unban`, { user_id: daveGhost });
    await alice.waitForEvent(null, member(room, daveGhost, "leave"), LONG, seen);
    await carol.waitFor((m) => m.command === "MODE" && m.nick === "alice" && m.params[1] === "-b" && m.params[2]?.toLowerCase() === "dave!*@*", LONG, mark);
    dm = dave.mark();
    dave.join("#chan");
    await dave.waitFor((m) => m.command === "366", LONG, dm);
    from = alice.mark();
    dave.privmsg("#chan", "unbanned");
    await alice.waitForMessage(room, "unbanned", { sender: daveGhost, timeoutMs: LONG, from });
    // IRC -> Matrix: Carla bans a mask matching dave; his ghost is banned in the room, and unbanned with -b.
    carol.send("MODE #chan +b d?ve!*@*");
    // The bot bans with the IRC op and mask as the reason.
    await alice.waitForEvent(null, (e, r) => member(room, daveGhost, "ban")(e, r) && e.content.reason === "banned on IRC by Carla (d?ve!*@*)", LONG, from);
    carol.send("MODE #chan -b d?ve!*@*");
    await alice.waitForEvent(null, member(room, daveGhost, "leave"), LONG, from);
    // An IRC ban of a Matrix user's puppet bans them from the room, which takes the puppet out of the channel.
    mark = carol.mark();
    await bob.join(room);
    await carol.waitFor((m) => m.command === "JOIN" && m.nick === "bob", LONG, mark);
    carol.send("MODE #chan +b bob!*@*");
    await alice.waitForEvent(null, member(room, bob.userId, "ban"), LONG, from);
    await carol.waitFor((m) => m.command === "PART" && m.nick === "bob", LONG, mark);
    seen = alice.mark();
    carol.send("MODE #chan -b bob!*@*");
    await alice.waitForEvent(null, member(room, bob.userId, "leave"), LONG, seen);
    mark = carol.mark();
    await bob.join(room);
    await carol.waitFor((m) => m.command === "JOIN" && m.nick === "bob", LONG, mark);
  });

  it("power levels a Matrix user sets become op and voice on IRC", async () => {
    const daveGhost = ghost("local", "dave");
    const setLevel = async (level: number | null) => {
      const pl = (await alice.getStateEvent(room, "m.room.power_levels")) as { users?: Record<string, number> };
      const users = { ...(pl.users ?? {}) };
      if (level === null) delete users[daveGhost];
      else users[daveGhost] = level;
      await alice.sendState(room, "m.room.power_levels", "", { ...pl, users });
    };
    const names = async () => {
      const mark = carol.mark();
      carol.send("NAMES #chan");
      const r = await carol.waitFor((m) => m.command === "353", LONG, mark);
      return (r.params.at(-1) ?? "").split(" ").find((n) => /^[@+]*dave$/i.test(n));
    };
    const settled = async (want: string) => {
      const deadline = Date.now() + LONG;
      while ((await names()) !== want) {
        assert.ok(Date.now() < deadline, `dave is not ${want} in NAMES`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    let mark = carol.mark();
    await setLevel(10);
    await carol.waitFor((m) => m.command === "MODE" && m.nick === "alice" && m.params[1] === "+v" && m.params[2] === "dave", LONG, mark);
    await settled("+dave");
    mark = carol.mark();
    await setLevel(null);
    await carol.waitFor((m) => m.command === "MODE" && m.nick === "alice" && m.params[1] === "-v" && m.params[2] === "dave", LONG, mark);
    await settled("dave");
    // Op last: Synapse lets alice (at the op level, 100) raise dave to her level but not lower him from it.
    mark = carol.mark();
    await setLevel(100);
    await carol.waitFor((m) => m.command === "MODE" && m.nick === "alice" && m.params[1] === "+o" && m.params[2] === "dave", LONG, mark);
    await settled("@dave");
  });

  it("a Matrix user leaving the room parts their puppet", async () => {
    const mark = carol.mark();
    await alice.leave(room);
    await carol.waitFor((m) => m.command === "PART" && m.nick === "alice", LONG, mark);
    await alice.join(room);
    await carol.waitFor((m, ) => m.command === "JOIN" && m.nick === "alice", LONG, mark);
  });

  it("an admin links an existing room to a channel; the bot's connection relays a member without a puppet", async () => {
    const plumbed = await alice.createRoom({ preset: "public_chat", name: "plumbed" });
    const c = await hs.registerUser("carl", "carl-pw");
    const carl = new MatrixClient(hs.url, c.userId, c.accessToken);
    await carl.join(plumbed);
    carol.join("#plumb");
    const mark = carol.mark();
    let from = bob.mark();
    const bobMgmt = await bob.createDm(botId);
    await bob.waitForMessage(bobMgmt, /management room/, { sender: botId, timeoutMs: LONG, from });
    await bob.sendText(bobMgmt, `link local #plumb ${plumbed}`);
    await bob.waitForMessage(bobMgmt, /Only bridge admins/, { sender: botId, timeoutMs: LONG, from });
    from = alice.mark();
    await alice.sendText(mgmt, `link local #plumb ${plumbed}`);
    await alice.waitForMessage(mgmt, /Linked .* to #plumb on local/, { sender: botId, timeoutMs: LONG, from });
    await carol.waitFor((m) => m.command === "JOIN" && m.nick === "ircotr" && m.params[0] === "#plumb", LONG, mark);
    await carl.sendText(plumbed, "hello from carl");
    await carol.waitForPrivmsg("ircotr", "<carl> hello from carl", LONG, mark);
    carol.privmsg("#plumb", "hi plumbed room");
    await carl.waitForMessage(plumbed, "hi plumbed room", { sender: ghost("local", "carla"), timeoutMs: LONG });
    from = alice.mark();
    await alice.sendText(mgmt, "unlink local #plumb");
    await alice.waitForMessage(mgmt, /Unlinked/, { sender: botId, timeoutMs: LONG, from });
    await carol.waitFor((m) => m.command === "PART" && m.nick === "ircotr", LONG, mark);
  });

  it("500 IRC lines sent as fast as possible arrive in order", async () => {
    const n = 500;
    const from = alice.mark();
    for (let i = 0; i < n; i++) carol.privmsg("#chan", `line ${i}`);
    await alice.waitForMessage(room, `line ${n - 1}`, { sender: ghost("local", "carla"), timeoutMs: 600_000, from });
    const got = (await alice.getMessages(room, 1000))
      .filter((e) => e.type === "m.room.message" && /^line \d+$/.test(String(e.content.body)))
      .map((e) => Number(String(e.content.body).slice(5)));
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i));
  });

  it("netsplit: 200 ghosts quit at once; leaves reach the homeserver at a bounded rate and the room ends right", async () => {
    const from = alice.mark();
    await alice.sendText(mgmt, "join full #split");
    const split = await alice.waitForInvite((r, state) => r !== room && state.some((e) => e.type === "m.room.member" && e.sender === botId), LONG);
    const crowd: IrcClient[] = [];
    for (let i = 0; i < 200; i += 20) {
      crowd.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => connectIrc(irc.host, irc.port, `split${i + j}`)))));
    }
    clients.push(...crowd);
    for (const c of crowd) c.join("#split");
    await Promise.all(crowd.map((c) => c.waitFor((m) => m.command === "366", LONG)));
    const stay = await connectIrc(irc.host, irc.port, "stayer");
    clients.push(stay);
    stay.join("#split");
    await alice.join(split);
    // Full membership: every nick in NAMES gets a ghost.
    await alice.waitForEvent(null, member(split, ghost("full", "split199"), "join"), 600_000, from);
    await alice.waitForEvent(null, member(split, ghost("full", "stayer"), "join"), 600_000, from);
    await Promise.all(crowd.map((c) => c.quit("irc.a irc.b")));
    const leaves: MatrixEvent[] = [];
    const seen = alice.mark();
    await alice.waitForEvent(null, (e, r) => {
      if (r === split && e.type === "m.room.member" && e.content.membership === "leave" && /^@irc_full_split/.test(e.state_key ?? "")) leaves.push(e);
      return leaves.length >= 200;
    }, 600_000, seen);
    const ts = leaves.map((e) => e.origin_server_ts!).sort((a, b) => a - b);
    // Token bucket: at most RATE in a burst plus RATE per second after it, in any one-second window.
    let maxPerSecond = 0;
    for (let i = 0, j = 0; i < ts.length; i++) {
      while (ts[i]! - ts[j]! >= 1000) j++;
      maxPerSecond = Math.max(maxPerSecond, i - j + 1);
    }
    assert.ok(maxPerSecond <= 2 * RATE + 1, `${maxPerSecond} leaves in one second`);
    const members = await alice.getJoinedMembers(split);
    assert.ok(!members.some((m) => /^@irc_full_split/.test(m)), "no quitter left in the room");
    assert.ok(members.includes(ghost("full", "stayer")));
    assert.ok(members.includes(alice.userId));
  });
});
