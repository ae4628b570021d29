// The bridge's `start` executable as a child process, as an operator runs it, for the kill tests: started from the
// source under tsx with the test's config, ready once /ready answers, stopped or killed by signal.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MatrixClient } from "./matrix-client.js";
import { startSynapse, type SynapseInstance } from "./synapse.js";
import { startNgircd, type NgircdInstance } from "./ngircd.js";
import { startPostgres, type PostgresServer } from "./postgres.js";
import { startTcpTap, type TcpTap } from "./tcp-tap.js";
import { freePort } from "./ports.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CliDaemonStart {
  root: string;
  /** Holds config.yaml and registration.yaml. */
  dir: string;
  metricsPort: number;
  /** Gets the child before it is ready, so a test's cleanup can kill it even when the start fails. */
  onSpawn(c: ChildProcess): void;
  onStderr(text: string): void;
  /** The log so far, for the error when the start fails. */
  logTail(): string;
}

export async function startCliDaemon(o: CliDaemonStart): Promise<ChildProcess> {
  const c = spawn(process.execPath, ["--import", "tsx", join(o.root, "src/cli.ts"), "start", "-c", join(o.dir, "config.yaml"), "-f", join(o.dir, "registration.yaml")], {
    cwd: o.root, stdio: ["ignore", "ignore", "pipe"],
  });
  o.onSpawn(c);
  c.stderr!.on("data", (d: Buffer) => o.onStderr(d.toString()));
  for (let i = 0; i < 480; i++) {
    if (await fetch(`http://127.0.0.1:${o.metricsPort}/ready`).then((r) => r.ok, () => false)) return c;
    if (c.exitCode !== null) throw new Error(`the bridge exited ${c.exitCode}:\n${o.logTail().slice(-3000)}`);
    await sleep(250);
  }
  throw new Error(`the bridge never became ready:\n${o.logTail().slice(-3000)}`);
}

/** Sends `signal` and resolves with the exit code once the child is gone. */
export async function stopCliDaemon(c: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(c.exitCode) : c.once("exit", (code) => resolve(code))));
  c.kill(signal);
  return exited;
}

/**
 * Writes the daemon's config (first with a placeholder homeserver, to generate the registration), starts a Synapse
 * that knows the registration, and rewrites the config with its URL.
 */
export async function prepareDaemonDir(root: string, dir: string, config: (hsUrl: string) => string): Promise<SynapseInstance> {
  writeFileSync(join(dir, "config.yaml"), config("http://127.0.0.1:1"));
  const g = spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), "generate-registration", "-c", join(dir, "config.yaml"), "-f", join(dir, "registration.yaml")], { cwd: root, encoding: "utf8", timeout: 120_000 });
  if (g.status !== 0) throw new Error(`generate-registration exited ${g.status}: ${g.stderr}`);
  const hs = await startSynapse({ registrationPath: join(dir, "registration.yaml") });
  writeFileSync(join(dir, "config.yaml"), config(hs.url));
  return hs;
}

/** Registers Alice, opens her management room with the bot and connects her to network `local`. */
export async function aliceConnected(hs: SynapseInstance, timeoutMs: number): Promise<{ alice: MatrixClient; mgmt: string }> {
  const a = await hs.registerUser("alice", "alice-pw");
  const alice = new MatrixClient(hs.url, a.userId, a.accessToken);
  const bot = "@ircotr:localhost";
  const mgmt = await alice.createDm(bot);
  await alice.waitForMessage(mgmt, /management room/, { sender: bot, timeoutMs });
  const from = alice.mark();
  await alice.sendText(mgmt, "connect local");
  await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: bot, timeoutMs, from });
  return { alice, mgmt };
}

export interface KillWorldParts { irc: NgircdInstance; tap: TcpTap; pgServer: PostgresServer | undefined; pgUrl: string; asPort: number; metricsPort: number }

/** ngIRCd behind a tap of every byte, PostgreSQL when the engine asks for it, and free ports for the daemon. */
export async function startKillWorldParts(engine: "sqlite" | "postgres"): Promise<KillWorldParts> {
  const irc = await startNgircd();
  const tap = await startTcpTap(irc.host, irc.port);
  let pgServer: PostgresServer | undefined;
  let pgUrl = "";
  if (engine === "postgres") {
    pgServer = await startPostgres();
    pgUrl = await pgServer.newDatabase();
  }
  return { irc, tap, pgServer, pgUrl, asPort: await freePort(), metricsPort: await freePort() };
}

export interface KillDaemonConfig {
  hsUrl: string;
  parts: KillWorldParts;
  engine: "sqlite" | "postgres";
  dir: string;
  /** The one Matrix user allowed to use the bridge. */
  user: string;
  /** Extra keys of the `local` network, in YAML flow syntax (e.g. flood settings), or "". */
  networkExtra: string;
  /** The `otr` section, in YAML flow syntax. */
  otr: string;
  logLevel: "debug" | "info";
}

/** The daemon's config for a kill test: one network behind the tap, the engine's store, no Matrix encryption. */
export function killDaemonConfig(c: KillDaemonConfig): string {
  const { parts: p, dir } = c;
  return `homeserver: { url: "${c.hsUrl}", domain: localhost }
appservice: { url: "http://127.0.0.1:${p.asPort}", port: ${p.asPort}, bot_localpart: ircotr }
networks: [{ id: local, name: Local, host: ${p.tap.host}, port: ${p.tap.port}, tls: false${c.networkExtra ? `, ${c.networkExtra}` : ""} }]
permissions: { "${c.user}": user }
otr: ${c.otr}
store: ${c.engine === "sqlite" ? `{ engine: sqlite, sqlite_path: ${dir}/bridge.db, master_key_file: ${dir}/master.key }` : `{ engine: postgres, postgres_url: "${p.pgUrl}", master_key_file: ${dir}/master.key }`}
metrics: { port: ${p.metricsPort} }
encryption: { allow: false }
logging: { level: ${c.logLevel}, format: logfmt }
`;
}
