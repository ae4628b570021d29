// A real ngIRCd for end-to-end tests: config, MOTD and pid file in a temp dir, a free loopback port, no DNS or
// ident lookups, and no flood penalties unless a test asks for them. ngIRCd drops root to nobody after start,
// so its files are world-readable. `IncludeDir` points at an empty dir so /etc/ngircd/ngircd.conf.d is not read.
// Its listen backlog is 10: open many connections at most ~20 at a time.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { spawnService, tempDir, waitForPort, type Service } from "./proc.js";

export interface NgircdOptions {
  /** Server name, default "irc.test". */
  name?: string;
  /**
   * Seconds a penalty may add per command: 0 = no flood control (default), -1 = ngIRCd's normal limits. ngIRCd
   * throttles a flooding client (it reads its input more slowly) rather than disconnecting it; for a server that
   * disconnects with "Excess Flood", use startInspircd({ fakelag: false, threshold, commandRate }).
   */
  maxPenaltyTime?: number;
  /** Connections per IP, 0 = unlimited (default). */
  maxConnectionsIP?: number;
  /** Default 30 (ngIRCd's own default is 9). */
  maxNickLength?: number;
  pingTimeoutSec?: number;
  pongTimeoutSec?: number;
  /** IRC operators (`OPER name password`). */
  opers?: { name: string; password: string }[];
  /** Server password clients must send with PASS. */
  password?: string;
  /** Raw lines appended to the [Limits]/[Options]/[Global] sections. */
  extraGlobal?: string[];
  extraLimits?: string[];
  extraOptions?: string[];
  startTimeoutMs?: number;
}

export interface NgircdInstance {
  host: string;
  port: number;
  name: string;
  dir: string;
  readonly logPath: string;
  /** The server's log so far (connections accepted/closed, registrations), e.g. to count connection attempts. */
  readLog(): string;
  /** Stops the server (every client is disconnected) and starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  isRunning(): boolean;
}

const NGIRCD = process.env.NGIRCD_BIN ?? "/usr/sbin/ngircd";

export async function startNgircd(opts: NgircdOptions = {}): Promise<NgircdInstance> {
  const host = "127.0.0.1";
  const name = opts.name ?? "irc.test";
  const dir = tempDir("ngircd");
  chmodSync(dir, 0o755); // ngIRCd runs as nobody after start and re-reads config/MOTD on REHASH
  const confDir = join(dir, "conf.d");
  mkdirSync(confDir, { mode: 0o755 });
  // The pid file is written after the switch to nobody, so its directory must be writable by nobody.
  const runDir = join(dir, "run");
  mkdirSync(runDir);
  chmodSync(runDir, 0o777);
  const port = await freePort(host);
  const motd = join(dir, "ngircd.motd");
  writeFileSync(motd, "matrix-otr-irc test server\n", { mode: 0o644 });
  const conf = join(dir, "ngircd.conf");
  const lines = [
    "[Global]",
    `  Name = ${name}`,
    "  Info = matrix-otr-irc test server",
    `  Listen = ${host}`,
    `  Ports = ${port}`,
    `  MotdFile = ${motd}`,
    `  PidFile = ${join(runDir, "ngircd.pid")}`,
    "  AdminInfo1 = matrix-otr-irc tests",
    "  AdminInfo2 = loopback only",
    "  AdminEMail = admin@irc.test",
    ...(opts.password ? [`  Password = ${opts.password}`] : []),
    ...(opts.extraGlobal ?? []).map((l) => `  ${l}`),
    "[Limits]",
    "  MaxConnections = 0",
    `  MaxConnectionsIP = ${opts.maxConnectionsIP ?? 0}`,
    "  MaxJoins = 0",
    `  MaxNickLength = ${opts.maxNickLength ?? 30}`,
    `  MaxPenaltyTime = ${opts.maxPenaltyTime ?? 0}`,
    `  PingTimeout = ${opts.pingTimeoutSec ?? 120}`,
    `  PongTimeout = ${opts.pongTimeoutSec ?? 60}`,
    ...(opts.extraLimits ?? []).map((l) => `  ${l}`),
    "[Options]",
    "  DNS = no",
    "  Ident = no",
    "  PAM = no",
    "  RequireAuthPing = no",
    `  IncludeDir = ${confDir}`,
    ...(opts.extraOptions ?? []).map((l) => `  ${l}`),
    ...(opts.opers ?? []).flatMap((o) => ["[Operator]", `  Name = ${o.name}`, `  Password = ${o.password}`]),
    "",
  ];
  writeFileSync(conf, lines.join("\n"), { mode: 0o644 });

  let svc: Service | null = null;
  let logPath = "";
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const launch = async () => {
    svc = spawnService({
      name: "ngircd",
      cmd: NGIRCD,
      args: ["--nodaemon", "--config", conf],
      ...(logPath ? { logPath } : {}),
    });
    logPath = svc.logPath;
    await waitForPort(host, port, timeoutMs, svc);
  };
  await launch();

  let stopped = false;
  return {
    host,
    port,
    name,
    dir,
    get logPath() { return logPath; },
    isRunning: () => (svc as Service | null)?.isRunning() ?? false,
    readLog: () => (logPath && existsSync(logPath) ? readFileSync(logPath, "utf8") : ""),
    async restart() {
      await (svc as Service | null)?.stop();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await (svc as Service | null)?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
