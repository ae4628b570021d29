// matrix-otr-irc as the bench runs it: the built CLI (`node dist/cli.js start -c config.yaml -f registration.yaml`)
// in its own process with the node flags of the shipped launcher (bin/matrix-otr-irc.js), as an operator starts it,
// on SQLite (or PostgreSQL with --postgres), metrics on, logging at warn (a log line per message would measure the
// log), Matrix-side encryption off (measured elsewhere).
// Per user: a management room (a DM with the bot, which greets), then `connect local`, done when the bot says
// "Connected to local as <nick>.". Flood control is set wide (burst 50, a line per 50 ms) because the bench's
// ngIRCd runs without penalties and Heisenbridge has none: the latency measured is the bridge's, not a pacing rule.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { launcherNodeFlags } from "../test/harness/launcher.js";
import { freePort } from "../test/harness/ports.js";
import { spawnService, waitForUrl, type Service } from "../test/harness/proc.js";
import { bodyOf } from "./bridge-inbox.js";
import type { Subject, World } from "./bridge-subject.js";

const REPO = resolve(new URL("..", import.meta.url).pathname);
export const OURS_BOT = "ircotr";
export const OURS_GHOST_PREFIX = "irc_";
const STEP_TIMEOUT_MS = 180_000;

export function oursConfig(o: { hsUrl: string; domain: string; asPort: number; metricsPort: number; ircHost: string; ircPort: number;
  dir: string; postgresUrl: string | null }): string {
  return stringify({
    homeserver: { url: o.hsUrl, domain: o.domain },
    appservice: { port: o.asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${o.asPort}`, bot_localpart: OURS_BOT },
    networks: [{ id: "local", name: "Bench ngIRCd", host: o.ircHost, port: o.ircPort, tls: false,
      flood_burst_lines: 50, flood_line_interval_ms: 50 }],
    permissions: { [o.domain]: "user" },
    otr: { default_policy: "opportunistic" },
    store: o.postgresUrl
      ? { engine: "postgres", postgres_url: o.postgresUrl, master_key_file: join(o.dir, "master.key") }
      : { engine: "sqlite", sqlite_path: join(o.dir, "bridge.db"), master_key_file: join(o.dir, "master.key") },
    metrics: { enabled: true, bind_address: "127.0.0.1", port: o.metricsPort },
    logging: { level: "warn", format: "json" },
    encryption: { allow: false },
  });
}

export class Ours implements Subject {
  readonly name = "matrix-otr-irc";
  readonly otr = true;
  metricsUrl: string | null = null;
  private svc: Service | null = null;
  private mgmt = new Map<string, string>();
  readonly configPath: string;
  readonly registrationPath: string;
  private asPort = 0;
  private metricsPort = 0;

  constructor(private readonly w: World, private readonly o: { postgresUrl: string | null; nodeArgs: string[] }) {
    this.configPath = join(w.dir, "ours.yaml");
    this.registrationPath = join(w.dir, "ours-registration.yaml");
  }

  get pid(): number { return this.svc?.pid ?? 0; }
  get botId(): string { return `@${OURS_BOT}:${this.w.domain}`; }
  get logPath(): string { return this.svc?.logPath ?? ""; }

  private writeConfig(hsUrl: string): void {
    writeFileSync(this.configPath, oursConfig({ hsUrl, domain: this.w.domain, asPort: this.asPort, metricsPort: this.metricsPort,
      ircHost: this.w.ircHost, ircPort: this.w.ircPort, dir: this.w.dir, postgresUrl: this.o.postgresUrl }), { mode: 0o600 });
  }

  /** Before Synapse starts: the registration it must load (written by the CLI, as an operator would). */
  async register(): Promise<void> {
    this.asPort = await freePort();
    this.metricsPort = await freePort();
    this.writeConfig("http://127.0.0.1:1");
    const r = spawnSync(process.execPath, [join(REPO, "dist/cli.js"), "generate-registration", "-c", this.configPath, "-f", this.registrationPath],
      { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`generate-registration failed: ${r.stdout}${r.stderr}`);
  }

  async start(): Promise<void> {
    this.writeConfig(this.w.hsUrl);
    this.svc = spawnService({
      name: "matrix-otr-irc",
      cmd: process.execPath,
      // --node-args come after the launcher's flags, so they can override them.
      args: [...launcherNodeFlags(), ...this.o.nodeArgs, join(REPO, "dist/cli.js"), "start", "-c", this.configPath, "-f", this.registrationPath],
      cwd: this.w.dir,
    });
    this.metricsUrl = `http://127.0.0.1:${this.metricsPort}/metrics`;
    await waitForUrl(`http://127.0.0.1:${this.metricsPort}/ready`, 120_000, this.svc);
  }

  async prepare(userId: string): Promise<void> {
    const room = await this.w.users.createDm(userId, this.botId);
    await this.w.inbox.message(room, (e) => e.sender === this.botId && /management room/.test(bodyOf(e)), STEP_TIMEOUT_MS, `${userId}'s management room`);
    this.mgmt.set(userId, room);
  }

  async connect(userId: string): Promise<void> {
    const room = this.mgmt.get(userId)!;
    const done = this.w.inbox.message(room, (e) => e.sender === this.botId && /^Connected to local as /.test(bodyOf(e)), STEP_TIMEOUT_MS, `${userId} connected`);
    await this.w.users.sendText(userId, room, "connect local");
    await done;
  }

  puppetNick(localpart: string): string { return localpart; }

  ownRooms(userId: string): Set<string> {
    const r = this.mgmt.get(userId);
    return new Set(r ? [r] : []);
  }

  async stop(): Promise<void> {
    await this.svc?.stop(60_000);
  }
}
