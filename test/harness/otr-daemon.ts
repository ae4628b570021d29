// The real executable (`start`, a child process) against Synapse and ngIRCd behind a TCP tap, with Alice on Matrix
// and Kate, a libotr contact on IRC, in a private conversation: the world of the store-trouble tests of issue 15
// (a full disk, a PostgreSQL restart). The store section of the config is the test's.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSynapse, type SynapseInstance } from "./synapse.js";
import { startNgircd, type NgircdInstance } from "./ngircd.js";
import { startTcpTap, type TcpTap } from "./tcp-tap.js";
import { MatrixClient } from "./matrix-client.js";
import { freePort } from "./ports.js";
import { tempDir } from "./proc.js";
import { LibotrIrcContact, generateContactKey } from "./libotr-irc.js";
import { BridgeWireLog } from "./otr-kill.js";

export const LONG = 120_000;
export const NOTICE = "org.matrix_otr_irc.notice";
export const GHOST = "@irc_local_kate:localhost";
export const STORE_OUTAGE = "store-unavailable";
const root = fileURLToPath(new URL("../..", import.meta.url));
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class OtrDaemonWorld {
  hs!: SynapseInstance;
  irc!: NgircdInstance;
  tap!: TcpTap;
  child: ChildProcess | null = null;
  kate!: LibotrIrcContact;
  alice!: MatrixClient;
  wire!: BridgeWireLog;
  room = "";
  log = "";
  /** Index of Kate's events once the conversation is private (isBad counts from here). */
  secureMark = 0;
  readonly dir = tempDir("otr-daemon");
  private asPort = 0;
  private metricsPort = 0;

  /** `store`: the YAML flow mapping of the store section. */
  constructor(private readonly store: () => string) {}

  private config(hsUrl: string): string {
    return `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${this.asPort}", port: ${this.asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${this.tap.host}, port: ${this.tap.port}, tls: false }]
permissions: { "@alice:localhost": user }
otr: { default_policy: opportunistic }
store: ${this.store()}
metrics: { port: ${this.metricsPort} }
encryption: { allow: false }
logging: { level: info, format: logfmt }
`;
  }

  async start(): Promise<void> {
    this.irc = await startNgircd();
    this.tap = await startTcpTap(this.irc.host, this.irc.port);
    this.asPort = await freePort();
    this.metricsPort = await freePort();
    writeFileSync(join(this.dir, "config.yaml"), this.config("http://127.0.0.1:1"));
    const g = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "generate-registration", "-c", join(this.dir, "config.yaml"), "-f", join(this.dir, "registration.yaml")], { cwd: root, encoding: "utf8", timeout: 120_000 });
    assert.equal(g.status, 0, g.stderr);
    this.hs = await startSynapse({ registrationPath: join(this.dir, "registration.yaml") });
    writeFileSync(join(this.dir, "config.yaml"), this.config(this.hs.url));
    this.wire = new BridgeWireLog(this.tap, "Kate");
  }

  async startDaemon(): Promise<void> {
    const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(this.dir, "config.yaml"), "-f", join(this.dir, "registration.yaml")], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    this.child = c;
    c.stderr!.on("data", (d: Buffer) => (this.log += d.toString()));
    for (let i = 0; i < 480; i++) {
      if (await this.ready()) return;
      if (c.exitCode !== null) throw new Error(`the bridge exited ${c.exitCode}:\n${this.log.slice(-3000)}`);
      await sleep(250);
    }
    throw new Error(`the bridge never became ready:\n${this.log.slice(-3000)}`);
  }

  /** /ready's status and body (the failing check is named in it). */
  readyReport(): Promise<{ status: number; body: string }> {
    return fetch(`http://127.0.0.1:${this.metricsPort}/ready`).then(async (r) => ({ status: r.status, body: await r.text() }), () => ({ status: 0, body: "" }));
  }

  /** The bridge's /metrics text. */
  metrics(): Promise<string> {
    return fetch(`http://127.0.0.1:${this.metricsPort}/metrics`).then((r) => r.text());
  }

  ready(): Promise<boolean> {
    return fetch(`http://127.0.0.1:${this.metricsPort}/ready`).then((r) => r.ok, () => false);
  }

  async kill(): Promise<void> {
    const c = this.child!;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
    this.child = null;
  }

  async puppetBack(): Promise<void> {
    for (let i = 0; i < 300; i++) {
      const from = this.kate.irc.mark();
      this.kate.irc.send("ISON alice");
      const r = await this.kate.irc.waitFor((m) => m.command === "303", 30_000, from);
      if (/(^|\s)alice(\s|$)/i.test(r.params.at(-1) ?? "")) return;
      await sleep(200);
    }
    throw new Error("the puppet did not come back");
  }

  /** Alice connected, Kate's DM room joined, the conversation private (both sides say so), one line each way. */
  async privateConversation(): Promise<void> {
    const a = await this.hs.registerUser("alice", "alice-pw");
    this.alice = new MatrixClient(this.hs.url, a.userId, a.accessToken);
    const bot = "@ircotr:localhost";
    const mgmt = await this.alice.createDm(bot);
    await this.alice.waitForMessage(mgmt, /management room/, { sender: bot, timeoutMs: LONG });
    let from = this.alice.mark();
    await this.alice.sendText(mgmt, "connect local");
    await this.alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: bot, timeoutMs: LONG, from });
    const key = generateContactKey("Kate");
    this.kate = await LibotrIrcContact.connect({ host: this.irc.host, port: this.irc.port, nick: "Kate", remote: "alice", keyFile: key.keyFile });
    this.kate.irc.privmsg("alice", "hello");
    this.room = await this.alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === GHOST), LONG);
    await this.alice.join(this.room);
    await this.alice.waitForMessage(this.room, "hello", { sender: GHOST, timeoutMs: LONG });
    const lib = this.kate.mark();
    from = this.alice.mark();
    this.kate.startOtr();
    await this.kate.waitForSecure(lib);
    await this.alice.waitForEvent(this.room, (e) => e.content[NOTICE] === "gone-secure", LONG, from);
    this.secureMark = this.kate.mark();
    await this.exchange("first");
  }

  /** One message each way, each read by the other side (libotr: as an OTR message). */
  async exchange(tag: string): Promise<void> {
    const lib = this.kate.mark();
    await this.alice.sendText(this.room, `${tag} from alice`);
    assert.equal((await this.kate.waitForText(`${tag} from alice`, lib)).otr, true);
    const from = this.alice.mark();
    await this.kate.send(`${tag} from kate`);
    await this.alice.waitForMessage(this.room, `${tag} from kate`, { sender: GHOST, timeoutMs: LONG, from });
  }

  /** Texts Kate (libotr) read since `from`. */
  kateRead(from: number): string[] {
    return this.kate.events.slice(from).flatMap((e) => (e.ev === "received" ? [Buffer.from(e.text, "hex").toString("utf8")] : []));
  }

  /**
   * While the store cannot write (issue 15): Alice's messages since `from` are held by the homeserver, she is told
   * once, nothing reaches IRC (libotr's events since `lib`, data messages since `dataBefore`), the bridge runs and
   * /ready says 503. `settleMs`: how long Synapse's retries of the refused transaction get to (not) get through.
   */
  async assertStoreOutageHolds(o: { from: number; lib: number; dataBefore: number; settleMs: number; what: string }): Promise<void> {
    await this.alice.waitForEvent(this.room, (e) => e.content[NOTICE] === STORE_OUTAGE, 60_000, o.from);
    await sleep(o.settleMs);
    await this.alice.sync({ timeoutMs: 1000 }).catch(() => undefined);
    this.wire.update();
    assert.deepEqual(this.kateRead(o.lib), [], `nothing reached libotr while ${o.what}`);
    assert.equal(this.wire.dataMessages - o.dataBefore, 0, "no data message went to IRC");
    assert.equal(this.notices(o.from, STORE_OUTAGE).length, 1, "Alice is told once per outage, not once per message");
    assert.deepEqual(this.notSaved(o.from), [], "nothing was given back: the homeserver keeps it");
    assert.equal(this.child!.exitCode, null, "the bridge keeps running");
    const ready = await this.readyReport();
    assert.equal(ready.status, 503, `/ready says the bridge is not ready while ${o.what}`);
    assert.match(ready.body, /store/, ready.body);
  }

  /** Bodies of the not-saved notices in the DM room since `from`. */
  notSaved(from: number): string[] {
    return this.notices(from, "not-saved");
  }

  /** Bodies of the DM room's notices with this code (`org.matrix_otr_irc.notice`) since `from`. */
  notices(from: number, code: string): string[] {
    return this.alice.events.slice(from).filter((s) => s.roomId === this.room && s.event.content[NOTICE] === code).map((s) => String(s.event.content.body));
  }

  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.kate?.close().catch(() => undefined);
    await this.hs?.stop();
    await this.tap?.stop();
    await this.irc?.stop();
  }
}
