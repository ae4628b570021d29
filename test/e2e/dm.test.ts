// End to end on real servers: Synapse (sid chroot) with the bridge's appservice registration, ngIRCd, the bridge
// started in-process through startBridge, a Matrix user driven over the client-server API, and raw IRC clients
// playing the contacts. Covers issue 2's "done when": management room, connect, IRC -> Matrix DM from the ghost,
// replies to IRC, room reuse, no command injection, one refusal for strangers, `msg` opening a DM.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { logRoot, tempDir } from "../harness/proc.js";
import { buildRegistration, parseConfig, renderRegistration } from "../../src/config/index.js";
import { createMetrics, type Metrics } from "../../src/metrics/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";
import { MemoryStore } from "../../src/store/memory.js";

const LONG = 120_000;

describe("DMs between a Matrix user and IRC users through the bridge", { timeout: 600_000 }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let bridge: RunningBridge;
  let metrics: Metrics;
  let alice: MatrixClient;
  let botId: string;
  let mgmt: string;
  let dmRoom: string;
  const ircClients: IrcClient[] = [];
  const logPath = join(logRoot(), `bridge-dm-${process.pid}.log`);

  before(async () => {
    irc = await startNgircd();
    const dir = tempDir("dm-e2e");
    const asPort = await freePort();
    const domain = "localhost";
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      // A per-user source address from the loopback range: the server must see the puppet come from it.
      networks: [{ id: "local", name: "Local ngIRCd", host: irc.host, port: irc.port, tls: false, outgoing_addresses: ["127.0.0.9"] }],
      permissions: { [`@alice:${domain}`]: "user" },
      metrics: { enabled: false },
      // The plaintext Matrix leg this suite is about; end-to-bridge encryption has its own (e2ee.test.ts).
      encryption: { allow: false },
    });
    // The registration comes from the same code as `matrix-otr-irc generate-registration` (it needs only the
    // appservice section and the domain, so the homeserver URL can be filled in once Synapse is up).
    const draft = parseConfig(configText("http://127.0.0.1:1"), "dm-e2e.yaml", { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    const registrationPath = join(dir, "registration.yaml");
    writeFileSync(registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    hs = await startSynapse({ registrationPath });
    assert.equal(hs.domain, domain);
    const parsed = parseConfig(configText(hs.url), "dm-e2e.yaml", { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
      appendFileSync(logPath, JSON.stringify({ level, msg, ...fields }) + "\n");
    metrics = createMetrics();
    bridge = await startBridge({
      config: parsed.config,
      registrationPath,
      logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
      store: new MemoryStore(),
      metrics,
    });
    botId = `@ircotr:${domain}`;
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
  });

  after(async () => {
    for (const c of ircClients) c.destroy();
    await bridge?.stop();
    await hs?.stop();
    await irc?.stop();
  });

  it("a DM with the bot becomes the management room and `connect local` brings the puppet online", async () => {
    mgmt = await alice.createDm(botId);
    await alice.waitForMessage(mgmt, /management room/, { sender: botId, timeoutMs: LONG });
    const from = alice.mark();
    await alice.sendText(mgmt, "connect local");
    await alice.waitForMessage(mgmt, /Connecting to local as alice/, { sender: botId, timeoutMs: LONG, from });
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG, from });
  });

  it("an IRC user's PRIVMSG arrives from the ghost in a DM room, and the reply arrives on IRC", async () => {
    const bob = await connectIrc(irc.host, irc.port, "Bob");
    ircClients.push(bob);
    bob.privmsg("alice", "hello alice, from IRC");
    const ghost = `@irc_local_bob:${hs.domain}`;
    dmRoom = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    await alice.join(dmRoom);
    await alice.waitForMessage(dmRoom, "hello alice, from IRC", { sender: ghost, timeoutMs: LONG });
    const create = await alice.getStateEvent(dmRoom, "m.room.encryption").catch(() => null);
    assert.equal(create, null, "DM rooms are created unencrypted");

    const mark = bob.mark();
    await alice.sendText(dmRoom, "hi Bob, from Matrix ✓");
    const m = await bob.waitForPrivmsg("alice", "hi Bob, from Matrix ✓", LONG, mark);
    assert.equal(m.params[0], "Bob");
    assert.match(m.prefix ?? "", /@127\.0\.0\.9$/, "the puppet connects from its configured source address");

    bob.privmsg("alice", "second message");
    const second = await alice.waitForMessage(null, "second message", { sender: ghost, timeoutMs: LONG });
    assert.equal(second.room_id, dmRoom, "the second message reuses the DM room");
    assert.ok(!alice.invites.has(dmRoom));
    const text = await metrics.registry.metrics();
    assert.match(text, /matrix_otr_irc_messages_bridged_total\{direction="irc_to_matrix",kind="dm",otr="false"\} 2/);
    assert.match(text, /matrix_otr_irc_messages_bridged_total\{direction="matrix_to_irc",kind="dm",otr="false"\} 1/);
    assert.match(text, /matrix_otr_irc_irc_connections\{network="local",state="connected"\} 1/);
  });

  it("a Matrix message with CR LF and an IRC command sends no command: the text arrives as separate PRIVMSGs", async () => {
    const bob = ircClients[0]!;
    const mark = bob.mark();
    await alice.sendText(dmRoom, "first line\r\nQUIT :injected\r\nPRIVMSG Bob :smuggled\0x");
    await bob.waitForPrivmsg("alice", "first line", LONG, mark);
    await bob.waitForPrivmsg("alice", "QUIT :injected", LONG, mark);
    await bob.waitForPrivmsg("alice", "PRIVMSG Bob :smuggledx", LONG, mark);
    // The puppet is still on the server: ISON answers with its nick, and it still relays.
    const before = bob.mark();
    bob.send("ISON alice");
    const ison = await bob.waitFor((msg) => msg.command === "303", LONG, before);
    assert.match(ison.params.at(-1) ?? "", /\balice\b/i);
    await alice.sendText(dmRoom, "still here");
    await bob.waitForPrivmsg("alice", "still here", LONG, before);
    assert.ok(!bob.messages.slice(mark).some((msg) => msg.command === "QUIT"), "no QUIT seen");
  });

  it("a long non-ASCII message arrives whole, split at character boundaries, every relayed line within 512 bytes", async () => {
    const bob = ircClients[0]!;
    const mark = bob.mark();
    const text = Array.from({ length: 30 }, (_, i) => `${i}: ünïcödé 👩🏽‍🚀 e\u0301\u0323 日本語`).join(" ");
    assert.ok(Buffer.byteLength(text) > 1200);
    await alice.sendText(dmRoom, text);
    // The last piece ends the text; each break is at a space, which becomes the line break.
    await bob.waitForPrivmsg("alice", (t) => text.endsWith(t) && t.length > 10, LONG, mark);
    const relayed = bob.messages.slice(mark).filter((m) => m.command === "PRIVMSG" && m.nick === "alice");
    assert.equal(relayed.map((m) => m.params.at(-1)).join(" "), text, "nothing lost, nothing broken");
    assert.ok(relayed.length >= 3);
    for (const m of relayed) assert.ok(Buffer.byteLength(m.raw) + 2 <= 512, `${Buffer.byteLength(m.raw) + 2} bytes`);
  });

  it("`msg local <nick> hello` opens a DM with that IRC user and sends the text", async () => {
    const carol = await connectIrc(irc.host, irc.port, "carol");
    ircClients.push(carol);
    const from = alice.mark();
    await alice.sendText(mgmt, "msg local Carol hello carol");
    await carol.waitForPrivmsg("alice", "hello carol", LONG);
    const reply = await alice.waitForMessage(mgmt, /Opened your direct chat with Carol on local/, { sender: botId, timeoutMs: LONG, from });
    const ghost = `@irc_local_carol:${hs.domain}`;
    const room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    assert.ok(String(reply.content.body).includes(room));
    await alice.join(room);
    carol.privmsg("alice", "hi back");
    const back = await alice.waitForMessage(null, "hi back", { sender: ghost, timeoutMs: LONG });
    assert.equal(back.room_id, room, "the contact's reply lands in the room `msg` opened");
  });

  it("encrypted rooms are answered with unencrypted ones: for the bot and for a ghost", async () => {
    const encryption = [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }];
    const enc = await alice.createRoom({ invite: [botId], isDirect: true, preset: "trusted_private_chat", initialState: encryption });
    await alice.waitForMessage(enc, /end-to-end encrypted and this bridge runs with Matrix encryption off, so I cannot read your commands/, { sender: botId, timeoutMs: LONG });
    const fresh = await alice.waitForInvite((r, state) => r !== enc && state.some((e) => e.type === "m.room.member" && e.sender === botId), LONG);
    await alice.join(fresh);
    await alice.waitForMessage(fresh, /management room/, { sender: botId, timeoutMs: LONG });
    assert.equal(await alice.getStateEvent(fresh, "m.room.encryption").catch(() => null), null);
    const from = alice.mark();
    await alice.sendText(fresh, "help");
    await alice.waitForMessage(fresh, /connect <network>/, { sender: botId, timeoutMs: LONG, from });
    mgmt = fresh;

    const ghost = `@irc_local_erin:${hs.domain}`;
    const enc2 = await alice.createRoom({ invite: [ghost], isDirect: true, preset: "trusted_private_chat", initialState: encryption });
    await alice.waitForMessage(enc2, /end-to-end encrypted and this bridge runs with Matrix encryption off, so it cannot read it/, { sender: ghost, timeoutMs: LONG });
    const dm = await alice.waitForInvite((r, state) => r !== enc2 && state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    await alice.join(dm);
    const erin = await connectIrc(irc.host, irc.port, "erin");
    ircClients.push(erin);
    await alice.sendText(dm, "hello erin");
    await erin.waitForPrivmsg("alice", "hello erin", LONG);
  });

  it("a user not in permissions gets one polite refusal and nothing else", async () => {
    const m = await hs.registerUser("mallory", "mallory-pw");
    const mallory = new MatrixClient(hs.url, m.userId, m.accessToken);
    const r1 = await mallory.createDm(botId);
    await mallory.waitForMessage(r1, /not open to your account/, { sender: botId, timeoutMs: LONG });
    await mallory.waitForEvent(r1, (e) => e.type === "m.room.member" && e.state_key === botId && e.content.membership === "leave", LONG);
    const r2 = await mallory.createDm(botId);
    // The second invite is declined without a word: wait for the decline, then look at the whole room.
    await mallory.waitForEvent(r2, (e) => e.type === "m.room.member" && e.state_key === botId && e.content.membership === "leave", LONG);
    const msgs = (await mallory.getMessages(r2, 50)).filter((e) => e.type === "m.room.message" && e.sender === botId);
    assert.deepEqual(msgs, []);
    assert.equal(await mallory.getStateEvent(r1, "m.room.member", botId).then((s) => s?.membership), "leave");
  });
});
