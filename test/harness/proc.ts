// Process helpers for the test harness: servers run as their own process group (so a chroot'ed or forking
// server is stopped whole), with stdout/stderr in a log file under one temp dir per test process. Every service
// still running when the test process exits is killed, so a failed test never leaves a server holding ports.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, existsSync, chmodSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ServiceOptions {
  name: string;
  cmd: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Log file path; default `<logRoot>/<name>-<n>.log`. */
  logPath?: string;
  /** Allow core dumps (default off: InspIRCd with gnutls crashes on exit and would drop a core into cwd). */
  coreDumps?: boolean;
}

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  isRunning(): boolean;
  /** SIGTERM the process group, SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<Exit>;
  /** Last lines of the log, for error messages. */
  tail(lines?: number): string;
}

const live = new Set<ChildProcess>();
let logRootDir: string | null = null;
let counter = 0;

/** One temp dir per test process that collects every service log (kept after the run, for post-mortems). */
export function logRoot(): string {
  if (logRootDir === null) {
    logRootDir = mkdtempSync(join(tmpdir(), "motr-harness-"));
    chmodSync(logRootDir, 0o755);
  }
  return logRootDir;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `motr-${prefix}-`));
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try { process.kill(pid, signal); } catch { /* already gone */ }
  }
}

process.on("exit", () => {
  for (const child of live) if (child.pid !== undefined) killGroup(child.pid, "SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    for (const child of live) if (child.pid !== undefined) killGroup(child.pid, "SIGKILL");
    process.exit(128 + (sig === "SIGINT" ? 2 : 15));
  });
}

export function tailFile(path: string, lines = 40): string {
  if (!existsSync(path)) return "";
  const text = readFileSync(path, "utf8");
  return text.split("\n").slice(-lines).join("\n");
}

export function spawnService(opts: ServiceOptions): Service {
  const logPath = opts.logPath ?? join(logRoot(), `${opts.name}-${++counter}.log`);
  const fd = openSync(logPath, "a");
  let child: ChildProcess;
  try {
    // `exec` keeps the pid, so stop() still signals the server itself.
    const [cmd, args] = opts.coreDumps
      ? [opts.cmd, opts.args]
      : ["/bin/sh", ["-c", 'ulimit -c 0; exec "$0" "$@"', opts.cmd, ...opts.args]];
    child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true, // own process group: stop() reaches the whole tree
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) {
    throw new Error(`${opts.name}: spawn of ${opts.cmd} failed (see ${logPath})`);
  }
  const pid = child.pid;
  live.add(child);
  let running = true;
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      running = false;
      live.delete(child);
      resolve({ code, signal });
    });
    child.once("error", () => {
      running = false;
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  // Tests must not hang on a server that outlives them; the exit hook above still kills it.
  child.unref();

  return {
    name: opts.name,
    pid,
    logPath,
    exited,
    isRunning: () => running,
    tail: (n = 40) => tailFile(logPath, n),
    async stop(graceMs = 10_000) {
      if (!running) return exited;
      killGroup(pid, "SIGTERM");
      const timer = setTimeout(() => killGroup(pid, "SIGKILL"), graceMs);
      const r = await exited;
      clearTimeout(timer);
      // Children that left the group leader behind (forking servers) go too.
      killGroup(pid, "SIGKILL");
      return r;
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(2000, () => done(false));
  });
}

function deathError(svc: Service, what: string): Error {
  return new Error(`${svc.name} exited while waiting for ${what}; log ${svc.logPath}:\n${svc.tail()}`);
}

/** Resolves once host:port accepts a TCP connection; rejects if `svc` dies first or on timeout. */
export async function waitForPort(host: string, port: number, timeoutMs = 60_000, svc?: Service): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (svc && !svc.isRunning()) throw deathError(svc, `${host}:${port}`);
    if (await tryConnect(host, port)) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${host}:${port}` +
        (svc ? `; log ${svc.logPath}:\n${svc.tail()}` : ""));
    }
    await sleep(50);
  }
}

/** Resolves once GET `url` answers with a 2xx status. */
export async function waitForUrl(url: string, timeoutMs = 60_000, svc?: Service): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (svc && !svc.isRunning()) throw deathError(svc, url);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
      if (res.ok) return;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${url}` +
        (svc ? `; log ${svc.logPath}:\n${svc.tail()}` : ""));
    }
    await sleep(100);
  }
}
