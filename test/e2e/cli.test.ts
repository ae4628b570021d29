// The real executable against real servers: generate-registration's output is accepted by Synapse (it claims
// ghosts exclusively and nothing else), check-config -f agrees, `start` becomes ready on /ready, serves /metrics
// off the appservice port, and SIGTERM ends it with status 0 and the metrics listener closed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { freePort } from "../harness/ports.js";
import { tempDir } from "../harness/proc.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const cli = (...args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });

let hs: SynapseInstance;
let irc: NgircdInstance;
let child: ChildProcess | null = null;
let dir: string;
let metricsPort: number;
let asPort: number;

function config(hsUrl: string): string {
  return `homeserver: { url: "${hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${asPort}", port: ${asPort} }
networks: [{ id: local, name: Local, host: ${irc.host}, port: ${irc.port}, tls: false }]
permissions: { "*": user }
store: { sqlite_path: ${dir}/bridge.db, master_key_file: ${dir}/master.key }
metrics: { port: ${metricsPort} }
encryption: { allow: false }
logging: { level: debug, format: logfmt }
`;
}

before(async () => {
  dir = tempDir("cli-e2e");
  irc = await startNgircd();
  asPort = await freePort();
  metricsPort = await freePort();
  // The registration does not depend on the homeserver's URL, only on its domain: generate it first.
  writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1"));
  const g = cli("generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml"));
  assert.equal(g.status, 0, g.stderr);
  hs = await startSynapse({ registrationPath: join(dir, "registration.yaml") });
  writeFileSync(join(dir, "config.yaml"), config(hs.url));
});

after(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await hs?.stop();
  await irc?.stop();
});

test("Synapse accepts the generated registration: ghosts are the bridge's, other users are not", async () => {
  const reg = parse(readFileSync(join(dir, "registration.yaml"), "utf8"));
  const register = (username: string) =>
    fetch(`${hs.url}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${reg.as_token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", username }),
    });
  const ghost = await register("irc_local_bob");
  assert.equal(ghost.status, 200, await ghost.text());
  const outside = await register("mallory");
  assert.equal(outside.status, 400);
  assert.equal(((await outside.json()) as { errcode: string }).errcode, "M_EXCLUSIVE");
  const check = cli("check-config", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml"));
  assert.equal(check.status, 0, check.stderr);
  assert.equal(check.stdout, "config OK, registration OK\n");
});

test("start becomes ready, serves metrics on its own listener, and exits 0 on SIGTERM", async () => {
  const c = spawn(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "start", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], {
    cwd: root, stdio: ["ignore", "ignore", "pipe"],
  });
  child = c;
  let log = "";
  c.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((resolve) => c.on("exit", (code) => resolve(code)));
  type Ready = { ok: boolean; checks: Record<string, boolean> };
  let ready = null as Ready | null;
  for (let i = 0; i < 240 && !ready?.ok; i++) {
    try {
      ready = (await (await fetch(`http://127.0.0.1:${metricsPort}/ready`)).json()) as Ready;
    } catch { /* not listening yet */ }
    if (!ready?.ok) await new Promise((r) => setTimeout(r, 500));
  }
  assert.deepEqual(ready, { ok: true, checks: { homeserver: true, appservice: true, store: true } }, log);
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metrics, /^# TYPE matrix_otr_irc_messages_bridged_total counter$/m);
  assert.match(metrics, /^bridge_app_version\{/m, "the library's metrics are on our listener");
  assert.equal((await fetch(`http://127.0.0.1:${asPort}/metrics`)).status, 404, "nothing on the appservice port");
  c.kill("SIGTERM");
  assert.equal(await exited, 0, log);
  assert.match(log, /msg="shutdown complete"/);
  const reg = parse(readFileSync(join(dir, "registration.yaml"), "utf8"));
  for (const secret of [reg.as_token, reg.hs_token, readFileSync(join(dir, "master.key"), "utf8").trim()]) {
    assert.ok(!log.includes(secret), "no token or key in a debug-level log");
  }
  await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/health`));
});
