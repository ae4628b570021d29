// SIGTERM in the middle of an OTR conversation, on the real executable (`start`) against Synapse and ngIRCd: the
// libotr contact is told the private conversation ended (TLV 1, libotr's state becomes finished) before the puppet
// QUITs with the configured message, the process exits 0 within the shutdown bound, and the SQLite store opens
// cleanly afterwards with the OTR key the bridge made still in it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { tempDir } from "../harness/proc.js";
import { LibotrIrcContact, generateContactKey } from "../harness/libotr-irc.js";
import { startTcpTap, type TcpTap } from "../harness/tcp-tap.js";
import { parseConfig } from "../../src/config/index.js";
import { openConfiguredStore } from "../../src/store/index.js";
import { SHUTDOWN_TIMEOUT_MS } from "../../src/cli/start.js";

const LONG = 120_000;
const QUIT_MESSAGE = "Bridge maintenance, back soon";
const root = fileURLToPath(new URL("../..", import.meta.url));
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });

let hs: SynapseInstance;
let irc: NgircdInstance;
/** Between the bridge and ngIRCd: records what the puppet sends (its QUIT is not relayed to a contact sharing no channel). */
let tap: TcpTap;
let child: ChildProcess | null = null;
let robert: LibotrIrcContact | null = null;
let dir: string;
let metricsPort: number;
let asPort: number;

function config(hsUrl: string): string {
  return `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${asPort}", port: ${asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${tap.host}, port: ${tap.port}, tls: false, quit_message: "${QUIT_MESSAGE}" }]
permissions: { "@alice:localhost": user }
otr: { default_policy: opportunistic, persist_sessions: false }
store: { sqlite_path: ${dir}/bridge.db, master_key_file: ${dir}/master.key }
metrics: { port: ${metricsPort} }
encryption: { allow: false }
logging: { level: info, format: logfmt }
`;
}

before(async () => {
  dir = tempDir("shutdown-e2e");
  irc = await startNgircd();
  tap = await startTcpTap(irc.host, irc.port);
  asPort = await freePort();
  metricsPort = await freePort();
  writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1"));
  const g = cli("generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml"));
  assert.equal(g.status, 0, g.stderr);
  hs = await startSynapse({ registrationPath: join(dir, "registration.yaml") });
  writeFileSync(join(dir, "config.yaml"), config(hs.url));
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await robert?.close().catch(() => undefined);
  await hs?.stop();
  await tap?.stop();
  await irc?.stop();
});

test("SIGTERM during an OTR conversation: the peer sees it end, the puppet quits with the configured message, exit 0, the store reopens", { timeout: 600_000 }, async () => {
  const key = generateContactKey("Robert");
  const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], {
    cwd: root, stdio: ["ignore", "ignore", "pipe"],
  });
  child = c;
  let log = "";
  c.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => c.on("exit", (code) => resolve(code)));
  let ready = false;
  for (let i = 0; i < 480 && !ready; i++) {
    ready = await fetch(`http://127.0.0.1:${metricsPort}/ready`).then((r) => r.ok, () => false);
    if (!ready) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(ready, log);

  const a = await hs.registerUser("alice", "alice-pw");
  const alice = new MatrixClient(hs.url, a.userId, a.accessToken);
  const bot = "@ircotr:localhost";
  const mgmt = await alice.createDm(bot);
  await alice.waitForMessage(mgmt, /management room/, { sender: bot, timeoutMs: LONG });
  const from = alice.mark();
  await alice.sendText(mgmt, "connect local");
  await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: bot, timeoutMs: LONG, from });

  robert = await LibotrIrcContact.connect({ host: irc.host, port: irc.port, nick: "Robert", remote: "alice", keyFile: key.keyFile });
  const ghost = "@irc_local_robert:localhost";
  robert.irc.privmsg("alice", "hello, going private");
  const room = await alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
  await alice.join(room);
  await alice.waitForMessage(room, "hello, going private", { sender: ghost, timeoutMs: LONG });
  let lib = robert.mark();
  const beforeOtr = alice.mark();
  robert.startOtr();
  await robert.waitForSecure(lib);
  // libotr is secure one message before the bridge: wait for the bridge's own gone-secure notice.
  await alice.waitForEvent(room, (e) => e.type === "m.room.message" && e.content["org.matrix_otr_irc.notice"] === "gone-secure", LONG, beforeOtr);
  lib = robert.mark();
  await alice.sendText(room, "a private line before the shutdown");
  assert.equal((await robert.waitForText("a private line before the shutdown", lib)).otr, true);
  assert.equal((await robert.status()).state, "encrypted");

  lib = robert.mark();
  const tapMark = tap.mark();
  c.kill("SIGTERM");
  // Bounded: the CLI gives up on a clean shutdown after SHUTDOWN_TIMEOUT_MS (and then exits 1, failing below).
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    exited,
    new Promise<string>((r) => (timer = setTimeout(() => r("still running"), SHUTDOWN_TIMEOUT_MS + 30_000))),
  ]).finally(() => clearTimeout(timer));
  assert.equal(code, 0, log);
  assert.match(log, /msg="shutdown complete"/);

  // libotr reports a peer's TLV 1 as a message it ignores (no text) and moves to finished; some builds also say gone_insecure.
  await robert.waitForEvent((e) => e.ev === "ignored" || e.ev === "gone_insecure", "the session end (TLV 1)", lib);
  assert.equal((await robert.status()).state, "finished", "libotr was told the private conversation ended");
  // What the puppet wrote after the signal: the OTR message carrying TLV 1 to Robert, then QUIT with the message.
  const lines = tap.linesSince(tapMark);
  const quitIdx = lines.findIndex((l) => l.startsWith("QUIT "));
  assert.ok(quitIdx >= 0, lines.join("\n"));
  assert.equal(lines[quitIdx], `QUIT :${QUIT_MESSAGE}`);
  const endIdx = lines.findIndex((l) => /^PRIVMSG Robert :\?OTR/.test(l));
  assert.ok(endIdx >= 0 && endIdx < quitIdx, `TLV 1 before QUIT: ${lines.join("\n")}`);

  const parsed = parseConfig(config(hs.url), "shutdown.yaml", { env: {} });
  assert.ok(parsed.ok);
  const { store } = await openConfiguredStore(parsed.config.store, {});
  try {
    assert.ok(await store.getOtrPrivateKey("@alice:localhost", "local"), "the OTR key survived the shutdown");
    assert.equal(await store.getDmRoom("@alice:localhost", "local", "robert"), room);
  } finally {
    await store.close();
  }
});
