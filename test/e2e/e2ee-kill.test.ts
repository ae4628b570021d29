// SIGKILL of the real executable (`start`) between encrypted messages (issue 14): Synapse with the appservice E2EE
// flags, ngIRCd, Alice on matrix-js-sdk's Rust crypto with cross-signing, and a plain IRC contact. The bridge is
// killed three times: after a full exchange, right after the contact wrote, and before Alice adds a device. After
// each restart the next messages both ways decrypt, the bot and the ghost keep their devices (a lost crypto state
// would mean a new device), and neither side ever sees "unable to decrypt". (A Matrix message in flight at the
// kill is the at-least-once delivery of issue 15, tested there.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { E2eeUser } from "../harness/e2ee-user.js";
import { freePort } from "../harness/ports.js";
import { logRoot, tempDir } from "../harness/proc.js";

const LONG = 120_000;
const BOT = "@ircotr:localhost";
const GHOST = "@irc_local_dave:localhost";
const NOTICE_KEY = "org.matrix_otr_irc.notice";
const root = fileURLToPath(new URL("../..", import.meta.url));

let hs: SynapseInstance;
let irc: NgircdInstance;
let child: ChildProcess | null = null;
let alice: E2eeUser | null = null;
let dave: IrcClient | null = null;
let dir: string;
let metricsPort: number;
let asPort: number;
let log = "";
/** Every run of the daemon appends its stderr here, to read after a failure. */
let logPath = "";

function config(hsUrl: string): string {
  return `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${asPort}", port: ${asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${irc.host}, port: ${irc.port}, tls: false }]
permissions: { "@alice:localhost": user }
otr: { default_policy: manual }
store: { sqlite_path: ${dir}/bridge.db, master_key_file: ${dir}/master.key }
metrics: { port: ${metricsPort} }
encryption: { allow: true, require: true }
logging: { level: info, format: logfmt }
`;
}

async function startDaemon(): Promise<void> {
  const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], {
    cwd: root, stdio: ["ignore", "ignore", "pipe"],
  });
  child = c;
  c.stderr!.on("data", (d: Buffer) => { log += d.toString(); appendFileSync(logPath, d); });
  for (let i = 0; i < 480; i++) {
    if (c.exitCode !== null) break;
    if (await fetch(`http://127.0.0.1:${metricsPort}/ready`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`the bridge did not become ready:\n${log.slice(-4000)}`);
}

/** Waits until Alice's puppet is back on IRC (ISON lists it): a line to a nick not yet reconnected is refused by the server. */
async function puppetOnIrc(c: IrcClient, nick = "alice"): Promise<void> {
  const deadline = Date.now() + LONG;
  for (;;) {
    const at = c.mark();
    c.send(`ISON ${nick}`);
    const ison = await c.waitFor((m) => m.command === "303", LONG, at);
    if ((ison.params.at(-1) ?? "").toLowerCase().split(" ").includes(nick)) return;
    if (Date.now() > deadline) throw new Error(`${nick} never came back on IRC`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function killDaemon(): Promise<void> {
  const c = child!;
  const exited = new Promise((r) => c.once("exit", r));
  c.kill("SIGKILL");
  await exited;
  child = null;
}

before(async () => {
  dir = tempDir("e2ee-kill");
  logPath = join(logRoot(), `e2ee-kill-daemon-${process.pid}.log`);
  irc = await startNgircd();
  asPort = await freePort();
  metricsPort = await freePort();
  writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1"));
  const g = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")],
    { cwd: root, encoding: "utf8", timeout: 120_000 });
  assert.equal(g.status, 0, g.stderr);
  hs = await startSynapse({ registrationPath: join(dir, "registration.yaml"), e2ee: true });
  writeFileSync(join(dir, "config.yaml"), config(hs.url));
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  dave?.destroy();
  await alice?.stop();
  await hs?.stop();
  await irc?.stop();
});

test("SIGKILL between encrypted messages, three times: every message decrypts both ways, no device is replaced, a device added just after a restart reads", { timeout: 900_000 }, async () => {
  await startDaemon();
  await hs.registerUser("alice", "alice-pw");
  const a = (alice = await E2eeUser.login(hs, "alice", "alice-pw", { deviceName: "alice-element" }));
  await a.bootstrapCrossSigning();
  const mgmt = await a.createEncryptedDm(BOT);
  await a.waitForMessage(mgmt, (m) => m.sender === BOT && /management room/.test(String(m.content.body)), LONG);
  await a.sendText(mgmt, "connect local");
  await a.waitForMessage(mgmt, "Connected to local as alice.", LONG);

  const d = (dave = await connectIrc(irc.host, irc.port, "Dave"));
  d.privmsg("alice", "hello before any kill");
  const room = await a.waitForInvite((_r, inviter) => inviter === GHOST, LONG);
  await a.joinRoom(room);
  await a.waitForMessage(room, "hello before any kill", LONG);
  const botDevices = await a.devicesOf(BOT);
  const ghostDevices = await a.devicesOf(GHOST);
  assert.equal(ghostDevices.length, 1);

  const exchange = async (tag: string) => {
    await puppetOnIrc(d);
    const fromDave = `Dave ${tag} ✓`;
    d.privmsg("alice", fromDave);
    const m = await a.waitForMessage(room, fromDave, LONG);
    assert.equal(m.encrypted, true);
    assert.equal(m.shield?.colour, "none", JSON.stringify(m.shield));
    const fromAlice = `Alice ${tag} ✓`;
    const mark = d.mark();
    await a.sendText(room, fromAlice);
    await d.waitForPrivmsg("alice", fromAlice, LONG, mark);
  };

  await exchange("before the first kill");
  // 1. Between two exchanges.
  await killDaemon();
  await startDaemon();
  await exchange("after a kill between exchanges");

  // 2. Right after the contact wrote: the ghost may have encrypted and sent it, or not yet read it.
  d.privmsg("alice", "Dave, just before the second kill");
  await killDaemon();
  await startDaemon();
  await exchange("after a kill with Dave's line in flight");

  // 3. Alice logs in on a new device right after a restart, while the homeserver may still be backing off from
  // the killed appservice (device-list changes held back): the ghost's next message must reach that device too.
  await killDaemon();
  await startDaemon();
  const phone = await E2eeUser.login(hs, "alice", "alice-pw", { deviceName: "alice-phone" });
  try {
    await puppetOnIrc(d);
    const toPhone = "Dave, to the device Alice just added";
    d.privmsg("alice", toPhone);
    const m = await phone.waitForMessage(room, toPhone, LONG);
    assert.equal(m.encrypted, true);
    assert.deepEqual(phone.decryptionFailures.filter((f) => f.roomId === room && f.sender === GHOST), [], "the new device read the ghost's message");
  } finally {
    await phone.stop();
  }
  await exchange("after the third kill");

  // Each start asked the homeserver for the appservice ping, which ends its retry backoff from the kill at once.
  assert.equal(log.match(/msg="the homeserver reached the appservice"/g)?.length, 4, log.slice(-3000));
  assert.deepEqual(await a.devicesOf(BOT), botDevices, "the bot kept its device");
  assert.deepEqual(await a.devicesOf(GHOST), ghostDevices, "the ghost kept its device");
  assert.deepEqual(a.decryptionFailures, [], "Alice never saw an undecryptable event");
  const undecryptable = a.messages().filter((m) => m.content[NOTICE_KEY] === "undecryptable");
  assert.deepEqual(undecryptable.map((m) => m.content.body), [], "the bridge never failed to decrypt Alice's events");
});
