// The IRC server goes away and comes back while a conversation runs both ways. ngIRCd is really stopped and
// restarted; a TCP front between bridge and server keeps the outage open (refusing connections) while the user
// types on Matrix, so those messages are typed while disconnected for certain. Then: each message arrives exactly
// once, in order, in both directions, and the user got one outage notice, not one per reconnect attempt.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { stringify } from "yaml";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { logRoot, tempDir } from "../harness/proc.js";
import { buildRegistration, parseConfig, renderRegistration } from "../../src/config/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";

const LONG = 180_000;

/** A loopback proxy to the IRC server that can be switched off: while off it drops every connection at once. */
class SwitchableFront {
  server: Server;
  port = 0;
  accepting = true;
  private readonly sockets = new Set<Socket>();
  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((c) => this.accept(c));
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }
  private accept(client: Socket): void {
    if (!this.accepting) return void client.destroy();
    const up = connect(this.target.port, this.target.host);
    this.sockets.add(client).add(up);
    client.pipe(up);
    up.pipe(client);
    const close = () => {
      client.destroy();
      up.destroy();
      this.sockets.delete(client);
      this.sockets.delete(up);
    };
    client.on("close", close).on("error", close);
    up.on("close", close).on("error", close);
  }
  off(): void {
    this.accepting = false;
    for (const s of this.sockets) s.destroy();
  }
  on(): void {
    this.accepting = true;
  }
  async stop(): Promise<void> {
    this.off();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const strip = (t: string) => t.replace(/[ \t]+$/, ""); // an OTR whitespace tag, should a policy add one

describe("IRC server restart while messages flow both ways", { timeout: 900_000 }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let front: SwitchableFront;
  let bridge: RunningBridge | undefined;
  let alice: MatrixClient;
  let mgmt: string;
  let dmRoom: string;
  const botId = "@ircotr:localhost";
  const ghost = "@irc_local_dave:localhost";
  const clients: IrcClient[] = [];
  const logPath = join(logRoot(), `bridge-irc-reconnect-${process.pid}.log`);
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    appendFileSync(logPath, JSON.stringify({ level, msg, ...fields }) + "\n");
  const logger = { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };

  before(async () => {
    irc = await startNgircd();
    front = new SwitchableFront(irc);
    await front.listen();
    const dir = tempDir("irc-reconnect");
    const asPort = await freePort();
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain: "localhost" },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      networks: [{ id: "local", name: "Local ngIRCd", host: "127.0.0.1", port: front.port, tls: false }],
      permissions: { localhost: "user" },
      otr: { default_policy: "manual" },
      store: { engine: "sqlite", sqlite_path: join(dir, "bridge.db"), master_key_file: join(dir, "master.key") },
      metrics: { enabled: false },
      // The plaintext Matrix leg this suite is about; end-to-bridge encryption has its own (e2ee.test.ts).
      encryption: { allow: false },
    });
    const draft = parseConfig(configText("http://127.0.0.1:1"), "irc-reconnect.yaml", { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    const registrationPath = join(dir, "registration.yaml");
    writeFileSync(registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    hs = await startSynapse({ registrationPath });
    const parsed = parseConfig(configText(hs.url), "irc-reconnect.yaml", { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    bridge = await startBridge({ config: parsed.config, registrationPath, logger });
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await bridge?.stop();
    await hs?.stop();
    await front?.stop();
    await irc?.stop();
  });

  async function dave(): Promise<IrcClient> {
    const c = await connectIrc(irc.host, irc.port, "dave");
    clients.push(c);
    return c;
  }

  /** Alice's DM-room messages from the ghost after `from`, bodies in order. */
  const fromDave = (from: number) => alice.events.slice(from)
    .filter((s) => s.roomId === dmRoom && s.event.sender === ghost && s.event.type === "m.room.message")
    .map((s) => String(s.event.content.body));

  it("sets up a DM and exchanges messages both ways", async () => {
    mgmt = await alice.createDm(botId);
    await alice.waitForMessage(mgmt, /management room/, { sender: botId, timeoutMs: LONG });
    await alice.sendText(mgmt, "connect local");
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG });
    const d = await dave();
    d.privmsg("alice", "hello alice");
    dmRoom = await alice.waitForInvite((_r, s) => s.some((e) => e.sender === ghost), LONG);
    await alice.join(dmRoom);
    await alice.waitForMessage(dmRoom, "hello alice", { sender: ghost, timeoutMs: LONG });
    const mark = d.mark();
    await alice.sendText(dmRoom, "hello dave");
    await d.waitForPrivmsg("alice", (t) => strip(t) === "hello dave", LONG, mark);
  });

  it("messages typed during the outage and after it arrive once each, in order; one notice", async () => {
    const from = alice.mark();
    const before = clients.at(-1)!;
    // The conversation runs up to the moment the server goes: dave's last line before the stop must arrive.
    before.privmsg("alice", "dave 0 (before the outage)");
    await alice.waitForMessage(dmRoom, "dave 0 (before the outage)", { sender: ghost, timeoutMs: LONG, from });
    front.off();
    await irc.restart();
    await alice.waitForMessage(mgmt, /Lost the connection to local/, { sender: botId, timeoutMs: LONG, from });
    // Typed on Matrix while the bridge cannot reach the server: held, not refused.
    const typedDuringOutage = ["alice 1", "alice 2", "alice 3", "alice 4", "alice 5"];
    for (const t of typedDuringOutage) await alice.sendText(dmRoom, t);
    // Open the way only once the bridge holds all five lines, so they were surely typed while disconnected.
    const puppet = bridge!.core.connections.get(alice.userId, "local") as unknown as { queuedLines: number; connected: boolean };
    await until(() => puppet.queuedLines >= typedDuringOutage.length, LONG, "the five lines held by the puppet");
    assert.equal(puppet.connected, false);
    const d = await dave(); // dave reconnects to the restarted server directly
    const mark = d.mark();
    front.on();
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG, from });
    const typedAfter = ["alice 6", "alice 7"];
    for (const t of typedAfter) await alice.sendText(dmRoom, t);
    const expected = [...typedDuringOutage, ...typedAfter];
    await d.waitForPrivmsg("alice", (t) => strip(t) === expected.at(-1), LONG, mark);
    const got = d.messages.slice(mark).filter((m) => m.command === "PRIVMSG" && m.nick === "alice").map((m) => strip(m.params[1] ?? ""));
    assert.deepEqual(got, expected, "every Matrix message exactly once, in order");
    // IRC to Matrix after the reconnect.
    const m2 = alice.mark();
    const daveLines = ["dave 1", "dave 2", "dave 3", "dave 4", "dave 5"];
    for (const t of daveLines) d.privmsg("alice", t);
    await alice.waitForMessage(dmRoom, "dave 5", { sender: ghost, timeoutMs: LONG, from: m2 });
    assert.deepEqual(fromDave(m2), daveLines, "every IRC message exactly once, in order");
    // No "not delivered" for anything typed during the outage, and one notice for the outage.
    const notices = alice.events.slice(from).map((s) => ({ room: s.roomId, body: String(s.event.content.body ?? "") }));
    assert.equal(notices.filter((n) => n.room === dmRoom && /Not delivered/.test(n.body)).length, 0);
    const lost = notices.filter((n) => n.room === mgmt && /Lost the connection to local|Could not connect to local/.test(n.body));
    assert.equal(lost.length, 1, `one outage notice, got: ${JSON.stringify(lost)}`);
    assert.equal(notices.filter((n) => n.room === mgmt && n.body === "Connected to local as alice.").length, 1);
  });
});
