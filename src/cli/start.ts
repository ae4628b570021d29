// `start`: checks the config, starts the metrics listener and the bridge, then runs until SIGTERM or SIGINT.
// SIGHUP re-reads the config and applies what can change while running (permissions, logging) and names the
// sections that need a restart. The bridge itself is wired in src/main.ts; this file owns only process concerns.

import { loadConfig, formatConfigError, type Config } from "../config/index.js";
import { createLogger, type Logger } from "../log/index.js";
import { createMetrics, startMetricsServer, type MetricsServer, type Readiness } from "../metrics/index.js";
import type { RunningBridge } from "../main.js";
import { CONFIG_OPTION, HELP_OPTION, parseCommandArgs, REGISTRATION_OPTION, required } from "./args.js";
import { checkRegistration, loadOrReport } from "./check-config.js";
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, type CliIo } from "./io.js";

export const START_HELP = `Usage: matrix-otr-irc start -c <config.yaml> -f <registration.yaml>

Checks the configuration and that the registration fits it, starts the metrics listener (/metrics, /health, /ready) when enabled, and runs the
bridge until SIGTERM or SIGINT, then shuts down cleanly (IRC connections QUIT, the store is closed).
SIGHUP re-reads the configuration: permissions and logging apply at once; other changes need a restart.

Options:
  -c, --config <file>         configuration file (required)
  -f, --registration <file>   appservice registration file, as written by generate-registration (required)
  -h, --help                  show this help

Exit status: 0 after a clean shutdown, 2 on a usage or config error, 1 when the bridge fails to start or stop.
`;

/** How long a clean shutdown may take before the process gives up on it. */
export const SHUTDOWN_TIMEOUT_MS = 30_000;
/** How long /ready waits for the homeserver to answer. */
const HOMESERVER_PROBE_TIMEOUT_MS = 3_000;

// Start errors that the operator fixes by changing a file, not by retrying (codes from src/main.ts).
const CONFIG_ERROR_CODES = new Set(["registration-unreadable", "registration-invalid", "tls-ca-unreadable", "unknown-network"]);

export async function startCommand(args: string[], io: CliIo): Promise<number> {
  const o = parseCommandArgs("start", args, { ...CONFIG_OPTION, ...REGISTRATION_OPTION, ...HELP_OPTION });
  if (o.help) {
    io.out(START_HELP);
    return EXIT_OK;
  }
  const configPath = required("start", o.config, "-c <config.yaml>");
  const registrationPath = required("start", o.registration, "-f <registration.yaml>");
  const config = loadOrReport(configPath, io);
  if (!config) return EXIT_USAGE;
  // A registration that does not fit the config starts a bridge the homeserver never talks to: refuse early.
  if (!checkRegistration(registrationPath, config, io)) return EXIT_USAGE;

  const logger = createLogger(config.logging, io.logSink ? { sink: io.logSink } : {});
  const metrics = config.metrics.enabled ? createMetrics() : null;
  let bridge: RunningBridge | null = null;
  let stopping = false;
  let metricsServer: MetricsServer | null = null;

  if (metrics) {
    try {
      metricsServer = await startMetricsServer({
        bind: config.metrics.bind_address,
        port: config.metrics.port,
        registry: metrics.registry,
        readiness: () => readiness(config, stopping ? null : bridge),
      });
      logger.info("metrics listening", { bind: config.metrics.bind_address, port: metricsServer.port });
    } catch (e) {
      logger.error("cannot start the metrics listener", { error: e });
      return EXIT_RUNTIME;
    }
  }

  // Listen before starting: a SIGTERM that arrives while the bridge starts lets it finish starting, then stops it.
  const stopSignal = waitForStopSignal(io, () => reload(configPath, config, logger, io));
  let startBridge = io.startBridge;
  if (!startBridge) {
    // The library's own log lines (and its bot SDK's) join ours, redacted, before it logs anything.
    (await import("../log/library.js")).routeLibraryLogs(logger);
    startBridge = (await import("../main.js")).startBridge;
  }
  try {
    bridge = await startBridge({ config, registrationPath, logger, ...(metrics ? { metrics } : {}) });
  } catch (e) {
    stopSignal.cancel();
    const code = (e as { code?: unknown }).code;
    logger.error("the bridge failed to start", { error: e });
    await metricsServer?.close();
    return typeof code === "string" && CONFIG_ERROR_CODES.has(code) ? EXIT_USAGE : EXIT_RUNTIME;
  }
  logger.info("bridge started", { networks: config.networks.map((n) => n.id) });

  const signal = await stopSignal.signal;
  stopping = true;
  logger.info("shutting down", { signal });
  const running = bridge;
  let code = EXIT_OK;
  try {
    await withTimeout(running.stop(), SHUTDOWN_TIMEOUT_MS);
    logger.info("shutdown complete");
  } catch (e) {
    logger.error("clean shutdown failed", { error: e });
    code = EXIT_RUNTIME;
  }
  await metricsServer?.close();
  return code;
}

// After the first SIGTERM/SIGINT the handlers are removed, so a second Ctrl-C kills a shutdown that hangs.
function waitForStopSignal(io: CliIo, onHup: () => void): { signal: Promise<NodeJS.Signals>; cancel(): void } {
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  const cancel = () => {
    for (const [s, h] of handlers) io.signals.off(s, h);
  };
  const signal = new Promise<NodeJS.Signals>((resolve) => {
    const stop = (sig: NodeJS.Signals) => () => {
      cancel();
      resolve(sig);
    };
    handlers.push(["SIGTERM", stop("SIGTERM")], ["SIGINT", stop("SIGINT")], ["SIGHUP", onHup]);
    for (const [s, h] of handlers) io.signals.on(s, h);
  });
  return { signal, cancel };
}

// Sections whose new values take effect without a restart. Permissions are read through the live config object
// on every check (main.ts closes over it), and the logger's family shares one level and format.
const RELOADABLE = new Set<keyof Config>(["permissions", "logging"]);

/** Applies a re-read config in place. Exported for tests. */
export function reload(configPath: string, live: Config, logger: Logger, io: Pick<CliIo, "env">): void {
  const r = loadConfig(configPath, { env: io.env });
  if (!r.ok) {
    logger.error("config reload failed; keeping the running config", { errors: r.errors.map(formatConfigError) });
    return;
  }
  const next = r.config;
  const needRestart = (Object.keys(next) as Array<keyof Config>).filter(
    (k) => !RELOADABLE.has(k) && JSON.stringify(next[k]) !== JSON.stringify(live[k]),
  );
  live.permissions = next.permissions;
  live.logging = next.logging;
  logger.configure(next.logging);
  logger.info("config reloaded", { applied: [...RELOADABLE], restart_needed_for: needRestart });
}

async function readiness(config: Config, bridge: RunningBridge | null): Promise<Readiness> {
  const [homeserver, own] = await Promise.all([
    fetch(new URL("/_matrix/client/versions", config.homeserver.url), { signal: AbortSignal.timeout(HOMESERVER_PROBE_TIMEOUT_MS) }).then(
      (res) => res.ok,
      () => false,
    ),
    // The bridge probes its store with a query and knows whether its listener is stopped; a bridge without the
    // probe counts as up once startBridge resolved (it resolves only with the store open and the listener up).
    bridge?.ready ? bridge.ready().catch(() => ({ store: false, appservice: false })) : { store: bridge !== null, appservice: bridge !== null },
  ]);
  const checks = { homeserver, appservice: own.appservice, store: own.store };
  return { ok: Object.values(checks).every(Boolean), checks };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`shutdown took longer than ${ms} ms`), { code: "shutdown-timeout" })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

