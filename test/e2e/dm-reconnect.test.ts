// Connection trouble and restarts, end to end: the IRC server restarts under a connected puppet (one notice, not
// one per attempt; the DM room is kept), and the bridge itself restarts on its SQLite store (users who were
// connected are reconnected without asking; DM rooms survive).
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
import { buildRegistration, parseConfig, renderRegistration, type Config } from "../../src/config/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";

const LONG = 120_000;

describe("DMs across IRC server and bridge restarts", { timeout: 600_000 }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let bridge: RunningBridge | undefined;
  let config: Config;
  let registrationPath: string;
  let alice: MatrixClient;
  let mgmt: string;
  let dmRoom: string;
  const botId = "@ircotr:localhost";
  const ghost = "@irc_local_dave:localhost";
  const clients: IrcClient[] = [];
  const logPath = join(logRoot(), `bridge-dm-reconnect-${process.pid}.log`);
  const log = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    appendFileSync(logPath, JSON.stringify({ level, msg, ...fields }) + "\n");
  const logger = { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };

  before(async () => {
    irc = await startNgircd();
    const dir = tempDir("dm-reconnect");
    const asPort = await freePort();
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain: "localhost" },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      networks: [{ id: "local", name: "Local ngIRCd", host: irc.host, port: irc.port, tls: false }],
      permissions: { localhost: "user" },
      store: { engine: "sqlite", sqlite_path: join(dir, "bridge.db"), master_key_file: join(dir, "master.key") },
      metrics: { enabled: false },
      // The plaintext Matrix leg this suite is about; end-to-bridge encryption has its own (e2ee.test.ts).
      encryption: { allow: false },
    });
    const draft = parseConfig(configText("http://127.0.0.1:1"), "dm-reconnect.yaml", { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    registrationPath = join(dir, "registration.yaml");
    writeFileSync(registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    hs = await startSynapse({ registrationPath });
    const parsed = parseConfig(configText(hs.url), "dm-reconnect.yaml", { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    config = parsed.config;
    bridge = await startBridge({ config, registrationPath, logger });
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await bridge?.stop();
    await hs?.stop();
    await irc?.stop();
  });

  async function dave(): Promise<IrcClient> {
    const c = await connectIrc(irc.host, irc.port, "dave");
    clients.push(c);
    return c;
  }

  it("sets up: management room, connect, a DM with dave", async () => {
    mgmt = await alice.createDm(botId);
    await alice.waitForMessage(mgmt, /management room/, { sender: botId, timeoutMs: LONG });
    await alice.sendText(mgmt, "connect local");
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG });
    const d = await dave();
    d.privmsg("alice", "before any restart");
    dmRoom = await alice.waitForInvite((_r, s) => s.some((e) => e.sender === ghost), LONG);
    await alice.join(dmRoom);
    await alice.waitForMessage(dmRoom, "before any restart", { sender: ghost, timeoutMs: LONG });
  });

  it("an IRC server restart gives one notice, a reconnect, and the same DM room", async () => {
    const from = alice.mark();
    await irc.restart();
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG, from });
    const lost = alice.events.slice(from).filter((s) => s.roomId === mgmt && /Lost the connection to local \(connection lost\)/.test(String(s.event.content.body)));
    assert.equal(lost.length, 1, "one notice for the outage, not one per attempt");
    const d = await dave();
    d.privmsg("alice", "after the IRC restart");
    const m = await alice.waitForMessage(null, "after the IRC restart", { sender: ghost, timeoutMs: LONG });
    assert.equal(m.room_id, dmRoom);
    const mark = d.mark();
    await alice.sendText(dmRoom, "reply after the IRC restart");
    await d.waitForPrivmsg("alice", "reply after the IRC restart", LONG, mark);
  });

  it("a bridge restart reconnects the user without a command and keeps the DM room", async () => {
    const d = clients.at(-1)!;
    const mark = d.mark();
    await bridge!.stop();
    bridge = undefined;
    await d.waitFor((m) => m.command === "QUIT" && m.nick === "alice", LONG, mark).catch(() => undefined);
    const from = alice.mark();
    bridge = await startBridge({ config, registrationPath, logger });
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG, from });
    d.privmsg("alice", "after the bridge restart");
    const m = await alice.waitForMessage(null, "after the bridge restart", { sender: ghost, timeoutMs: LONG });
    assert.equal(m.room_id, dmRoom, "the DM room came back from the store");
    const mark2 = d.mark();
    await alice.sendText(dmRoom, "reply after the bridge restart");
    await d.waitForPrivmsg("alice", "reply after the bridge restart", LONG, mark2);
  });
});
