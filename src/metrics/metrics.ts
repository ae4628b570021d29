// The bridge's Prometheus metrics, on one registry of their own (never prom-client's global one). Names carry
// the prefix matrix_otr_irc_. Labels are low-cardinality and identify no conversation: network ids, directions,
// states, protocol versions and stable reason codes only, never Matrix ids, nicks, channels or room ids
// (safeLabel() enforces the shape; labels.ts checks a whole registry).

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from "prom-client";
import { timeAsyncMethods } from "./timed-proxy.js";
import { safeLabel } from "./labels.js";

export const PREFIX = "matrix_otr_irc_";

/**
 * A registry on which process/Node default metrics are collected exactly once. matrix-appservice-bridge's
 * PrometheusMetrics calls collectDefaultMetrics on whatever registry it is given, which on a plain Registry throws
 * "already registered"; here the second copy of a default metric is ignored and the first keeps reporting.
 */
export class MetricsRegistry extends Registry {
  private defaultNames = new Set<string>();

  constructor() {
    super();
    const before = new Set(this.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name));
    collectDefaultMetrics({ register: this });
    for (const m of this.getMetricsAsArray()) {
      const name = (m as unknown as { name: string }).name;
      if (!before.has(name)) this.defaultNames.add(name);
    }
  }

  override registerMetric(metric: Metric): void {
    const name = (metric as unknown as { name: string }).name;
    if (this.defaultNames.has(name) && this.getSingleMetric(name) && this.getSingleMetric(name) !== metric) return;
    super.registerMetric(metric);
  }
}

// Seconds. Bridging and API calls are sub-second normally; key generation and AKEs run into seconds.
const FAST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SLOW_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const STORE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];
// Bridging a message: fine below 25 ms, where the targets are (bridge-added p99 under 20 ms), so a p99 read from
// the buckets is not a guess between 10 and 25 ms; the FAST_BUCKETS boundaries above stay, so old queries still fit.
const MESSAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type Direction = "irc_to_matrix" | "matrix_to_irc";
export type MessageKind = "dm" | "channel";
export type IrcConnectionState = "connecting" | "connected" | "disconnected" | "backoff";
export type OtrSessionState = "plaintext" | "encrypted_unverified" | "encrypted_verified" | "finished";

function build(registry: Registry, collectHooks: Array<() => void>) {
  const collect = () => {
    for (const hook of collectHooks) hook();
  };
  const c = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: PREFIX + name, help, labelNames, registers: [registry] });
  const g = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: PREFIX + name, help, labelNames, registers: [registry] });
  const h = <L extends string>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []) =>
    new Histogram<L>({ name: PREFIX + name, help, labelNames, buckets, registers: [registry] });
  return {
    // IRC
    ircConnections: g("irc_connections", "IRC connections (one per Matrix user and network) by state.", ["network", "state"] as const),
    ircConnectAttempts: c("irc_connect_attempts_total", "IRC connection attempts.", ["network"] as const),
    ircConnectFailures: c("irc_connect_failures_total", "IRC connection attempts that failed, by reason code.", ["network", "reason"] as const),
    ircReconnectQueue: new Gauge({ name: PREFIX + "irc_reconnect_queue_size", help: "Connections waiting for a connect slot (the per-network cap on concurrent connects).", registers: [registry], collect }),
    ircLinesSent: c("irc_lines_sent_total", "IRC lines sent.", ["network"] as const),
    ircLinesReceived: c("irc_lines_received_total", "IRC lines received.", ["network"] as const),
    // Read from the live puppets when scraped (onCollect hooks), not pushed on every line.
    ircSendQueueDepth: new Gauge<"network">({ name: PREFIX + "irc_send_queue_depth", help: "Lines waiting in flood-control send queues.", labelNames: ["network"], registers: [registry], collect }),
    ircSendQueueWait: h("irc_send_queue_wait_seconds", "Time a line waited in the flood-control queue.", FAST_BUCKETS, ["network"] as const),
    // Matrix
    matrixApiCalls: c("matrix_api_calls_total", "Matrix client-server API calls by method and outcome.", ["method", "outcome"] as const),
    matrixApiDuration: h("matrix_api_call_duration_seconds", "Latency of Matrix client-server API calls.", FAST_BUCKETS, ["method"] as const),
    matrixTransactions: c("matrix_transactions_total", "Appservice transactions received from the homeserver.", ["outcome"] as const),
    matrixTransactionDuration: h("matrix_transaction_duration_seconds", "Time to process one appservice transaction.", FAST_BUCKETS),
    matrixReplayedEvents: c("matrix_replayed_events_total", "Matrix messages handed on again after a restart (recorded, not yet done at the crash): an upper bound of the IRC lines sent twice."),
    storeWriteOutage: g("store_write_outage", "1 while the store cannot write and Matrix transactions are refused (the homeserver keeps them and sends them again once a write succeeds), else 0."),
    matrixOutboxQueued: g("matrix_outbox_queued", "Messages from IRC waiting for the homeserver to take them (all rooms)."),
    matrixOutboxRetries: c("matrix_outbox_retries_total", "Tries to send a message to the homeserver that failed and will be repeated (unreachable, timeout, 5xx, 429)."),
    matrixOutboxRecorded: c("matrix_outbox_recorded_total", "Messages from IRC written to the store because the homeserver did not take them at once."),
    matrixOutboxDropped: c("matrix_outbox_dropped_total", "Messages from IRC given up, by reason: overflow (the outbox was full), expired (waited longer than outbox_max_age_hours), refused (the homeserver refused for good).", ["reason"] as const),
    matrixOutboxWait: h("matrix_outbox_wait_seconds", "From the bridge having a message for Matrix to the homeserver taking it.", [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 3600]),
    matrixGhosts: g("matrix_ghosts", "Ghost users the bridge has created."),
    matrixRooms: g("matrix_rooms", "Rooms bridged, by kind (dm, channel, management).", ["kind"] as const),
    // Messages
    messagesBridged: c("messages_bridged_total", "Messages bridged, by network, direction, kind and whether OTR-encrypted on the IRC side.", ["network", "direction", "kind", "otr"] as const),
    messageLatency: h("message_bridge_latency_seconds", "From receiving a message on one side to delivering it on the other.", MESSAGE_BUCKETS, ["direction"] as const),
    messageHandoff: h("message_bridge_handoff_seconds", "From receiving a message on one side to handing it to the other side's connection (the homeserver's answer excluded): the time the bridge itself adds, its per-room queue included.", MESSAGE_BUCKETS, ["direction"] as const),
    messagesFailed: c("messages_failed_total", "Messages that could not be bridged, by direction and reason code.", ["direction", "reason"] as const),
    // OTR
    otrSessions: g("otr_sessions", "OTR conversations by state and protocol version (none for plaintext).", ["state", "version"] as const),
    otrAkeStarted: c("otr_ake_started_total", "OTR authenticated key exchanges started by the bridge or the peer."),
    otrAkeCompleted: c("otr_ake_completed_total", "OTR AKEs that ended in an encrypted session, by version.", ["version"] as const),
    otrAkeFailed: c("otr_ake_failed_total", "OTR AKEs that failed, by reason code.", ["reason"] as const),
    otrSmp: c("otr_smp_total", "Socialist Millionaires' Protocol runs by outcome.", ["outcome"] as const),
    otrPolicy: c("otr_policy_total", "Outgoing messages refused or held (queued until encrypted) by OTR policy.", ["action", "reason"] as const),
    otrDecryptFailures: c("otr_decrypt_failures_total", "Incoming OTR messages that could not be used, by reason code.", ["reason"] as const),
    otrFragmentsReassembled: c("otr_fragments_reassembled_total", "OTR messages reassembled from fragments."),
    otrFragmentsDropped: c("otr_fragments_dropped_total", "OTR fragments dropped, by reason.", ["reason"] as const),
    otrKeyGeneration: h("otr_key_generation_duration_seconds", "Time to generate a DSA private key.", SLOW_BUCKETS),
    // End-to-bridge encryption (Matrix side)
    e2eeRoomEvents: c("e2ee_room_events_total", "Matrix room events the bridge encrypted (sent) or decrypted (received).", ["what"] as const),
    e2eeDecryptionFailures: c("e2ee_decryption_failures_total", "Encrypted Matrix room events the bridge could not decrypt, by reason (missing-key, unknown-index, replayed, tampered, malformed, other).", ["reason"] as const),
    e2eeOlmMessages: c("e2ee_olm_messages_total", "To-device messages the bridge's devices processed, by outcome (decrypted, undecryptable, plaintext, invalid).", ["kind"] as const),
    e2eeDevices: g("e2ee_devices", "The bridge's own Matrix devices (bot and ghosts) loaded with their Olm sessions."),
    e2eeRequests: c("e2ee_requests_total", "Crypto requests to the homeserver (key upload/query/claim, to-device, encrypted sends, ...), by kind and outcome.", ["kind", "outcome"] as const),
    e2eeRequestDuration: h("e2ee_request_duration_seconds", "Latency of crypto requests to the homeserver, by kind.", FAST_BUCKETS, ["kind"] as const),
    // Store
    storeQueryDuration: h("store_query_duration_seconds", "Latency of store operations, by operation.", STORE_BUCKETS, ["op"] as const),
    storeErrors: c("store_errors_total", "Store operations that failed, by operation.", ["op"] as const),
  };
}

type Built = ReturnType<typeof build>;

/** Which OTR events (src/otr's OtrEvent union) count towards which metric; the shape is all that is needed. */
export interface OtrEventLike {
  type: string;
  code?: string;
  reason?: string;
  version?: number;
  by?: string;
  count?: number;
}

export interface Metrics extends Built {
  readonly registry: Registry;
  /** Counts what a batch of OTR events says (AKE results, SMP outcomes, decrypt failures, dropped fragments, policy). */
  otrEvents(events: readonly OtrEventLike[]): void;
  /** Times an async call into a histogram (failures too); the error is rethrown unchanged. */
  time<T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T>;
  /** Runs `hook` before each scrape (gauges read from live objects, e.g. send queue depth). */
  onCollect(hook: () => void): void;
}

export function createMetrics(registry: Registry = new MetricsRegistry()): Metrics {
  const collectHooks: Array<() => void> = [];
  const m = build(registry, collectHooks);
  const otrEvents = (events: readonly OtrEventLike[]): void => {
    for (const e of events) {
      switch (e.type) {
        case "gone-secure":
          m.otrAkeCompleted.inc({ version: String(e.version ?? "unknown") });
          break;
        case "ake-failed":
          m.otrAkeFailed.inc({ reason: safeLabel(e.code) });
          break;
        case "smp-success":
          m.otrSmp.inc({ outcome: "success" });
          break;
        case "smp-failure":
          m.otrSmp.inc({ outcome: "failure" });
          break;
        case "smp-cheated":
          m.otrSmp.inc({ outcome: "cheated" });
          break;
        case "smp-abort":
          m.otrSmp.inc({ outcome: `aborted_by_${safeLabel(e.by)}` });
          break;
        case "unreadable":
          m.otrDecryptFailures.inc({ reason: "unreadable" });
          break;
        case "malformed":
          m.otrDecryptFailures.inc({ reason: safeLabel(e.code ?? "malformed") });
          break;
        case "fragment-dropped":
          m.otrFragmentsDropped.inc({ reason: safeLabel(e.reason) });
          break;
        case "refused":
          m.otrPolicy.inc({ action: "refused", reason: safeLabel(e.code) });
          break;
        case "queued":
          m.otrPolicy.inc({ action: "held", reason: "not_encrypted" }, e.count ?? 1);
          break;
      }
    }
  };
  const time = async <T>(histogram: Histogram<string>, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> => {
    const end = histogram.startTimer(labels);
    try {
      return await fn();
    } finally {
      end();
    }
  };
  return { ...m, registry, otrEvents, time, onCollect: (hook) => void collectHooks.push(hook) };
}

/**
 * Wraps every async method of `target` (e.g. the Store) so its latency lands in store_query_duration_seconds and
 * its failures in store_errors_total, labelled by method name. Sync methods and properties pass through.
 */
export function instrumentStore<T extends object>(target: T, metrics: Pick<Metrics, "storeQueryDuration" | "storeErrors">): T {
  return timeAsyncMethods(target, (op) => {
    const end = metrics.storeQueryDuration.startTimer({ op });
    return (outcome) => {
      end();
      if (outcome === "error") metrics.storeErrors.inc({ op });
    };
  });
}

/** Adds matrix-appservice-bridge's own metrics (matrix API call counts, bridge gauges) to our registry. */
export function includeBridgeLibraryMetrics(
  bridge: { getPrometheusMetrics(registerEndpoint: boolean, registry: Registry): unknown },
  registry: Registry,
): void {
  bridge.getPrometheusMetrics(false, registry);
}
