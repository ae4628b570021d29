// Composition root: the only place that wires concrete classes. Opens the store, builds the Matrix and IRC
// adapters, hands them to the bridge's use cases through its ports, starts the appservice listener, and reconnects
// the users who were connected before a restart. Nothing else connects until a user asks.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { BridgedTracker, e2eeObserver, watchConnectQueue, instrumentMatrixHandlers, instrumentMatrixPort, instrumentPuppetFactory, instrumentStore, observeBridgeLatency, observeBridgeHandoff, safeLabel, timeKeyGeneration, watchOtrSessions, type Metrics } from "./metrics/index.js";
import type { Config, NetworkConfig } from "./config/definition.js";
import { permissionFor } from "./config/permissions.js";
import { openConfiguredStore } from "./store/index.js";
import type { Store } from "./store/types.js";
import { MatrixAdapter } from "./matrix/adapter.js";
import { IrcPuppet, type PuppetOptions } from "./irc/puppet.js";
import { ConnectLimiter } from "./irc/connect-limiter.js";
import { sourceAddressFor } from "./irc/source-address.js";
import { BridgeCore } from "./bridge/core.js";
import { CONNECTIONS_STATE_KEY, IDLE_STATE_KEY } from "./bridge/connections.js";
import { OtrPipeline } from "./bridge/otr/manager.js";
import { MatrixInbox } from "./bridge/inbox.js";
import { MatrixOutbox, throughOutbox, type OutboxMetrics } from "./bridge/outbox.js";
import { generateKey } from "./bridge/otr/keygen.js";
import type { BridgeLogger, BridgeMetrics, PuppetFactory } from "./bridge/ports.js";

export interface StartBridgeOptions {
  config: Config;
  registrationPath: string;
  logger: BridgeLogger;
  /** The bridge's Prometheus metrics (src/metrics); the appservice library's own go on the same registry. */
  metrics?: Metrics;
  /** Use this store instead of opening the configured one (tests); it is closed by stop() all the same. */
  store?: Store;
}

export interface RunningBridge {
  stop(): Promise<void>;
  /** For tests and diagnostics: the use-case layer. */
  readonly core: BridgeCore;
  /** Readiness checks for /ready: the store answers a query, the appservice listener is up (not stopped). */
  ready?(): Promise<{ store: boolean; appservice: boolean }>;
}

export class StartError extends Error {
  constructor(readonly code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StartError";
  }
}

export async function startBridge(o: StartBridgeOptions): Promise<RunningBridge> {
  const { config, logger } = o;
  const registration = readRegistration(o.registrationPath);
  // One gate per network, shared by every puppet on it: a server restart brings users back a few at a time.
  const connectGates = new Map(config.networks.map((n) => [n.id, new ConnectLimiter(n.max_concurrent_connects)] as const));
  const sourceAddresses = new Map(config.networks.map((n) => [n.id, n.outgoing_addresses] as const));
  const puppetOptions = new Map(config.networks.map((n) => [n.id, puppetOptionsFor(n, connectGates.get(n.id)!)] as const));
  if (o.metrics) watchConnectQueue(o.metrics, connectGates.values());
  const opened = o.store ?? (await openConfiguredStore(config.store)).store;
  const store = o.metrics ? instrumentStore(opened, o.metrics) : opened;
  let matrix: MatrixAdapter | null = null;
  // The core is built after the inbox (it is one of its options); refusals before that reach nobody's room.
  let tellUnavailable: (rooms: string[]) => void = () => undefined;
  const inbox = new MatrixInbox({
    store,
    logger,
    ...(o.metrics ? { onReplayed: (n: number) => o.metrics!.matrixReplayedEvents.inc(n) } : {}),
    onUnavailable: (rooms) => {
      o.metrics?.storeWriteOutage.set(1);
      tellUnavailable(rooms);
    },
    onRecovered: () => {
      o.metrics?.storeWriteOutage.set(0);
      void matrix?.retryNow().then((r) => {
        if (!r.ok) logger.warn("the homeserver could not be asked to resend at once: refused messages come at the end of its backoff", { status: r.status, errcode: r.errcode });
      });
    },
  });
  try {
    matrix = new MatrixAdapter({
      inbox,
      homeserverUrl: config.homeserver.url,
      domain: config.homeserver.domain,
      registration,
      ghostTemplate: config.appservice.ghost_localpart_template,
      networkIds: config.networks.map((n) => n.id),
      onError: (err, where) => logger.error("Matrix side error", { where, code: codeOf(err), error: messageOf(err) }),
      ...(config.encryption.allow ? {
        encryption: {
          // The crypto state is sealed per device; the store is not instrumented twice for it.
          store,
          require: config.encryption.require,
          probeTimeoutMs: config.encryption.probe_timeout_seconds * 1000,
          encryptNewRooms: config.encryption.default,
          deviceDisplayName: config.encryption.device_display_name,
          maxLoadedDevices: config.encryption.max_loaded_devices,
          deviceIdleMs: config.encryption.device_idle_minutes * 60_000,
          dmRetentionMs: config.encryption.dm_retention_days ? config.encryption.dm_retention_days * 86_400_000 : null,
          ...(o.metrics ? { observer: e2eeObserver(o.metrics) } : {}),
          log: (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => logger[level](msg, fields ?? {}),
        },
      } : {}),
    });
    const puppets = new Set<IrcPuppet>();
    const createPuppet: PuppetFactory = (req, events) => {
      const base = puppetOptions.get(req.networkId);
      if (!base) throw new StartError("unknown-network", `network ${req.networkId} is not configured`);
      const outgoingAddr = sourceAddressFor(req.userId, sourceAddresses.get(req.networkId) ?? []);
      const puppet = new IrcPuppet({
        ...base, nick: req.nick, username: usernameFor(req.userId), realname: req.userId,
        ...(req.account ? { account: req.account } : {}), ...(outgoingAddr ? { outgoingAddr } : {}),
      }, events);
      puppets.add(puppet);
      return puppet;
    };
    const fragmentSizes = new Map(config.networks.map((n) => [n.id, n.otr_fragment_size] as const));
    // matrix_rooms / matrix_ghosts follow the store's room mappings and the ghosts the Matrix port acts as.
    const bridged = o.metrics ? new BridgedTracker(o.metrics, matrix) : null;
    const trackedStore = bridged ? bridged.store(store) : store;
    // Messages to Matrix wait (sealed in the store) while the homeserver does not take them: src/bridge/outbox.ts.
    const timed = o.metrics ? instrumentMatrixPort(matrix, o.metrics) : matrix;
    const outbox = new MatrixOutbox({
      store,
      matrix: timed,
      logger,
      maxMessages: config.homeserver.outbox_max_messages,
      maxAgeMs: config.homeserver.outbox_max_age_hours * 3_600_000,
      ...(o.metrics ? { metrics: outboxMetrics(o.metrics) } : {}),
    });
    const viaOutbox = throughOutbox(timed, outbox);
    const port = bridged ? bridged.matrix(viaOutbox) : viaOutbox;
    const pipeline = new OtrPipeline({
      store: trackedStore,
      matrix: port,
      logger,
      defaultPolicy: config.otr.default_policy,
      trustOnFirstUse: config.otr.trust_on_first_use,
      persistSessions: config.otr.persist_sessions,
      fragmentSize: (networkId) => fragmentSizes.get(networkId),
      ...(o.metrics ? { metrics: bridgeMetrics(o.metrics), otrEvents: o.metrics.otrEvents, generateKey: timeKeyGeneration(generateKey, o.metrics) } : {}),
    });
    if (o.metrics) watchOtrSessions(o.metrics, () => pipeline.sessionSummary());
    const core = new BridgeCore({
      store: trackedStore,
      matrix: port,
      createPuppet: o.metrics ? instrumentPuppetFactory(createPuppet, o.metrics) : createPuppet,
      networks: config.networks.map((n) => ({ id: n.id, name: n.name, nickTemplate: n.nick_template, idleTimeoutMs: n.idle_timeout_minutes * 60_000 })),
      permission: (userId) => permissionFor(config, userId),
      channels: {
        domain: config.homeserver.domain,
        aliasTemplate: config.appservice.channel_alias_template,
        quitDebounceMs: config.channels.quit_debounce_ms,
        membershipPerSecond: config.channels.membership_requests_per_second,
        maxMessageLines: config.channels.max_message_lines,
        replyTemplate: config.channels.reply_template,
        editTemplate: config.channels.edit_template,
        network: (id) => {
          const n = config.networks.find((x) => x.id === id);
          return n && { dynamicChannels: n.dynamic_channels, membershipSync: n.membership_sync, opLevel: n.op_power_level, voiceLevel: n.voice_power_level };
        },
      },
      logger,
      pipeline,
      inbox,
      ...(o.metrics ? { metrics: bridgeMetrics(o.metrics) } : {}),
    });
    tellUnavailable = (rooms) => core.storeUnavailable(rooms);
    if (bridged) await bridged.seed(store, await knownUsers(store));
    // Each Matrix event is a request: its own request_id on every log line it causes, counted and timed.
    matrix.setHandlers(instrumentMatrixHandlers(core, o.metrics ?? null));
    await matrix.start(config.appservice.port, config.appservice.bind_address);
    if (o.metrics) matrix.registerMetrics(o.metrics.registry);
    logger.info("appservice listening", { bind: config.appservice.bind_address, port: config.appservice.port, bot: matrix.botUserId });
    // Before any puppet connects: what waited before the restart goes out ahead of anything new of its room.
    await outbox.restore();
    // Channels first, so reconnecting puppets know which channels to rejoin.
    const channelsKept = await core.channels?.restore();
    if (channelsKept) logger.info("channel memberships to restore", { count: channelsKept });
    const restored = await core.connections.restore();
    if (restored) logger.info("reconnecting users connected before the restart", { count: restored });
    // After restore, so the events handed on again wait for their users' connections; transactions that came in
    // meanwhile wait (unanswered) until this has queued the old events ahead of theirs.
    const replaying = matrix;
    await inbox.replay((ev) => replaying.replay(ev));
    const running = matrix;
    let stopped: Promise<void> | null = null;
    return {
      core,
      ready: async () => ({
        store: stopped === null && !inbox.storeDown && (await store.getState("ready-probe").then(() => true, () => false)),
        appservice: stopped === null,
      }),
      stop: () =>
        (stopped ??= (async () => {
          // No new transactions first: the homeserver keeps what arrives from now on and retries after the restart,
          // instead of handing us events we would half-handle while sessions end and puppets quit.
          await running.stopListening().catch((err) => logger.warn("closing the appservice listener failed", { code: codeOf(err) }));
          // End private conversations with TLV 1 and let those lines leave before the connections quit.
          await pipeline.shutdown().catch((err) => logger.warn("ending OTR sessions failed", { code: codeOf(err) }));
          await drained([...puppets], SHUTDOWN_DRAIN_MS);
          await inbox.close().catch((err) => logger.warn("writing the last done marks failed", { code: codeOf(err) }));
          await core.connections.stopAll((id) => config.networks.find((n) => n.id === id)?.quit_message ?? "Bridge shutting down");
          await core.idle();
          // What still waits for the homeserver is kept for the next start.
          await outbox.close();
          await running.stop();
          await store.close();
          logger.info("bridge stopped");
        })()),
    };
  } catch (err) {
    await matrix?.stop().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}

/** How long shutdown waits for queued lines (OTR session ends) to reach the servers before quitting. */
const SHUTDOWN_DRAIN_MS = 10_000;

async function drained(puppets: IrcPuppet[], maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  while (puppets.some((p) => p.connected && p.queuedLines > 0) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Users the store remembers as connected or idle (the store has no list of all users): whose rooms to count. */
async function knownUsers(store: Store): Promise<string[]> {
  const users: string[] = [];
  for (const k of [CONNECTIONS_STATE_KEY, IDLE_STATE_KEY]) {
    try {
      const v = JSON.parse((await store.getState(k)) ?? "[]") as unknown;
      if (Array.isArray(v)) for (const e of v) if (Array.isArray(e) && typeof e[0] === "string") users.push(e[0]);
    } catch {
      // Unreadable lists are reported by the connection manager; the counts then start from channels only.
    }
  }
  return users;
}

function bridgeMetrics(m: Metrics): BridgeMetrics {
  return {
    messageBridged: (direction, _networkId, encrypted, kind = "dm") => {
      m.messagesBridged.inc({ direction, kind, otr: String(encrypted) });
      observeBridgeLatency(m, direction);
      // Towards IRC, delivery is the line written to (or queued for) the local socket: nothing remote to exclude.
      if (direction === "matrix_to_irc") observeBridgeHandoff(m, direction);
    },
    messageHandedOff: (direction) => observeBridgeHandoff(m, direction),
    messageFailed: (direction, reason) => m.messagesFailed.inc({ direction, reason: safeLabel(reason) }),
    connectionState: (network, from, to) => {
      if (from) m.ircConnections.dec({ network, state: from });
      if (to) m.ircConnections.inc({ network, state: to });
      if (to === "connecting") m.ircConnectAttempts.inc({ network });
    },
  };
}

function readRegistration(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new StartError("registration-unreadable", `cannot read the registration file ${path}`, { cause: err });
  }
  const reg = parseYaml(text) as unknown;
  if (!reg || typeof reg !== "object" || typeof (reg as Record<string, unknown>)["as_token"] !== "string") {
    throw new StartError("registration-invalid", `${path} is not an appservice registration (no as_token)`);
  }
  return reg as Record<string, unknown>;
}

function puppetOptionsFor(n: NetworkConfig, connectGate: ConnectLimiter): Omit<PuppetOptions, "nick"> {
  let tlsCa: string | undefined;
  if (n.tls_ca_file) {
    try {
      tlsCa = readFileSync(n.tls_ca_file, "utf8");
    } catch (err) {
      throw new StartError("tls-ca-unreadable", `networks.${n.id}: cannot read tls_ca_file ${n.tls_ca_file}`, { cause: err });
    }
  }
  const opts: Omit<PuppetOptions, "nick"> = {
    host: n.host,
    port: n.port,
    tls: n.tls,
    tlsVerify: true,
    maxLineBytes: n.max_line_bytes,
    connectGate,
    flood: { burstLines: n.flood_burst_lines, lineIntervalMs: n.flood_line_interval_ms, penaltyBytes: n.flood_penalty_bytes },
    maxHeldLines: n.max_held_lines,
    ctcpVersion: n.ctcp_version,
    ctcpPing: n.ctcp_ping,
    // Applied by src/irc/tls-transport.ts (irc-framework's own transport passes neither).
    ...(tlsCa !== undefined ? { tlsCa } : {}),
    ...(n.tls_servername ? { tlsServername: n.tls_servername } : {}),
  };
  if (n.password) opts.password = n.password;
  const s = n.sasl;
  if (s?.mechanism === "PLAIN" && s.username && s.password) opts.sasl = { mechanism: "PLAIN", username: s.username, password: s.password };
  if (s?.mechanism === "EXTERNAL" && s.cert_file && s.key_file) {
    opts.sasl = { mechanism: "EXTERNAL", cert: readFileSync(s.cert_file, "utf8"), key: readFileSync(s.key_file, "utf8") };
  }
  return opts;
}

/** IRC ident from the Matrix localpart: letters and digits only, at most 10 (USERLEN on most servers). */
function usernameFor(userId: string): string {
  const local = /^@([^:]+)/.exec(userId)?.[1] ?? "matrix";
  return local.replace(/[^A-Za-z0-9]/g, "").slice(0, 10) || "matrix";
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function outboxMetrics(m: Metrics): OutboxMetrics {
  return {
    queued: (n) => m.matrixOutboxQueued.set(n),
    retried: () => m.matrixOutboxRetries.inc(),
    recorded: (n) => m.matrixOutboxRecorded.inc(n),
    dropped: (reason, n) => m.matrixOutboxDropped.inc({ reason }, n),
    delivered: (ms) => m.matrixOutboxWait.observe(ms / 1000),
  };
}
