// A homeserver that cannot do appservice encryption (issue 14): Synapse without the MSC2409/MSC3202 flags, so no
// to-device message ever reaches the appservice. With `encryption.require` the `start` executable refuses to start
// with code encryption-unavailable and says what to check; without it, the bridge says so once and runs as
// before encryption: an unencrypted management room works, an encrypted one is refused with a notice.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { E2eeUser } from "../harness/e2ee-user.js";
import { freePort } from "../harness/ports.js";
import { tempDir } from "../harness/proc.js";

const LONG = 120_000;
const BOT = "@ircotr:localhost";
const root = fileURLToPath(new URL("../..", import.meta.url));

let hs: SynapseInstance;
let irc: NgircdInstance;
let child: ChildProcess | null = null;
let alice: E2eeUser | null = null;
let dir: string;
let metricsPort: number;
let asPort: number;

function config(hsUrl: string, require: boolean): string {
  return `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${asPort}", port: ${asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${irc.host}, port: ${irc.port}, tls: false }]
permissions: { "@alice:localhost": user }
store: { sqlite_path: ${dir}/bridge.db, master_key_file: ${dir}/master.key }
metrics: { port: ${metricsPort} }
encryption: { allow: true, require: ${require}, probe_timeout_seconds: 5 }
logging: { level: info, format: logfmt }
`;
}

function start(): { child: ChildProcess; log: () => string; exited: Promise<number | null> } {
  const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], {
    cwd: root, stdio: ["ignore", "ignore", "pipe"],
  });
  child = c;
  let log = "";
  c.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  return { child: c, log: () => log, exited: new Promise((r) => c.on("exit", (code) => r(code))) };
}

before(async () => {
  dir = tempDir("e2ee-unavailable");
  irc = await startNgircd();
  asPort = await freePort();
  metricsPort = await freePort();
  writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1", true));
  const g = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")],
    { cwd: root, encoding: "utf8", timeout: 120_000 });
  assert.equal(g.status, 0, g.stderr);
  // The registration asks for everything; the homeserver lacks the experimental flags that deliver it.
  hs = await startSynapse({ registrationPath: join(dir, "registration.yaml"), e2ee: false });
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await alice?.stop();
  await hs?.stop();
  await irc?.stop();
});

test("encryption.require on a homeserver without appservice to-device delivery: start refuses, with the code and what to check", { timeout: 300_000 }, async () => {
  writeFileSync(join(dir, "config.yaml"), config(hs.url, true));
  const run = start();
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([run.exited, new Promise<string>((r) => (timer = setTimeout(() => r("still running"), LONG)))])
    .finally(() => clearTimeout(timer));
  assert.notEqual(code, 0, run.log());
  assert.notEqual(code, "still running", run.log());
  assert.match(run.log(), /encryption-unavailable/);
  assert.match(run.log(), /does not deliver to-device messages/);
  assert.match(run.log(), /msc2409_to_device_messages_enabled/, "it says what to check");
});

test("without encryption.require: said once, then the bridge runs unencrypted and refuses an encrypted room with a notice", { timeout: 600_000 }, async () => {
  writeFileSync(join(dir, "config.yaml"), config(hs.url, false));
  const run = start();
  let ready = false;
  for (let i = 0; i < 480 && !ready && run.child.exitCode === null; i++) {
    ready = await fetch(`http://127.0.0.1:${metricsPort}/ready`).then((r) => r.ok, () => false);
    if (!ready) await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(ready, run.log());
  assert.equal(run.log().match(/end-to-bridge encryption is off/g)?.length, 1, run.log());

  const a = await hs.registerUser("alice", "alice-pw");
  const plain = new MatrixClient(hs.url, a.userId, a.accessToken);
  const mgmt = await plain.createDm(BOT);
  await plain.waitForMessage(mgmt, /management room/, { sender: BOT, timeoutMs: LONG });

  const e = (alice = await E2eeUser.login(hs, "alice", "alice-pw", { deviceName: "alice-element" }));
  const encrypted = await e.createEncryptedDm(BOT);
  const refusal = await e.waitForMessage(encrypted, (m) => m.sender === BOT && !m.encrypted && m.type === "m.room.message", LONG);
  assert.match(String(refusal.content.body), /encrypt/i, `the bot says why: ${String(refusal.content.body)}`);
  run.child.kill("SIGTERM");
  assert.equal(await run.exited, 0, run.log());
});
