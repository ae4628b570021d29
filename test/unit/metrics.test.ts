import { test, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { AppServiceRegistration, Bridge, PrometheusMetrics } from "matrix-appservice-bridge";
import { collectDefaultMetrics, Registry } from "prom-client";
import {
  createMetrics,
  findUnsafeLabels,
  findUnsafeLabelsInText,
  includeBridgeLibraryMetrics,
  instrumentStore,
  MetricsRegistry,
  safeLabel,
  startMetricsServer,
  useCaseMetrics,
  type MetricsServer,
  type Readiness,
} from "../../src/metrics/index.js";

const servers: MetricsServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

function get(port: number, path: string, method = "GET"): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? ""), body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** The value of one sample in Prometheus text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(/,(?=[a-zA-Z_]+=")/) : [];
    if (want.length === have.length && want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return undefined;
}

test("the listener serves /metrics, /health and /ready on its own port, and nothing else", async () => {
  const metrics = createMetrics();
  let readiness: Readiness = { ok: true, checks: { homeserver: true, store: true, appservice: true } };
  const server = await startMetricsServer({ bind: "127.0.0.1", port: 0, registry: metrics.registry, readiness: async () => readiness });
  servers.push(server);
  assert.ok(server.port > 0);

  const m = await get(server.port, "/metrics");
  assert.equal(m.status, 200);
  assert.match(m.type, /^text\/plain; version=0\.0\.4/);
  assert.match(m.body, /^# HELP matrix_otr_irc_irc_lines_sent_total /m);
  assert.match(m.body, /^process_cpu_user_seconds_total /m, "process metrics are collected");

  const h = await get(server.port, "/health");
  assert.equal(h.status, 200);
  assert.deepEqual(JSON.parse(h.body), { status: "ok" });

  const r = await get(server.port, "/ready");
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), readiness);

  readiness = { ok: true, checks: { homeserver: false, store: true, appservice: true } };
  const notReady = await get(server.port, "/ready");
  assert.equal(notReady.status, 503, "a failing check makes /ready fail even when ok claims otherwise");
  assert.deepEqual(JSON.parse(notReady.body), { ok: false, checks: readiness.checks });

  assert.equal((await get(server.port, "/nope")).status, 404);
  assert.equal((await get(server.port, "/metrics", "POST")).status, 405);
  const head = await get(server.port, "/health", "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.body, "");
});

test("/ready is 503 when the readiness probe throws or never answers", async () => {
  const metrics = createMetrics();
  const throwing = await startMetricsServer({ bind: "127.0.0.1", port: 0, registry: metrics.registry, readiness: async () => { throw new Error("store closed"); } });
  servers.push(throwing);
  const r = await get(throwing.port, "/ready");
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.body).ok, false);
  const hanging = await startMetricsServer({
    bind: "127.0.0.1", port: 0, registry: metrics.registry, readinessTimeoutMs: 50,
    readiness: () => new Promise<Readiness>(() => undefined),
  });
  servers.push(hanging);
  const h = await get(hanging.port, "/ready");
  assert.equal(h.status, 503);
  assert.deepEqual(JSON.parse(h.body), { ok: false, checks: { readiness_timeout: false } });
});

test("listening on a port already in use fails with a coded error", async () => {
  const metrics = createMetrics();
  const first = await startMetricsServer({ bind: "127.0.0.1", port: 0, registry: metrics.registry, readiness: async () => ({ ok: true, checks: {} }) });
  servers.push(first);
  await assert.rejects(
    startMetricsServer({ bind: "127.0.0.1", port: first.port, registry: metrics.registry, readiness: async () => ({ ok: true, checks: {} }) }),
    { code: "metrics-listen-failed" },
  );
});

test("counters, gauges and histograms move, and the scrape shows the values", async () => {
  const metrics = createMetrics();
  metrics.ircLinesSent.inc({ network: "libera" });
  metrics.ircLinesSent.inc({ network: "libera" }, 2);
  metrics.ircConnections.inc({ network: "libera", state: "connected" });
  metrics.messagesBridged.inc({ network: "libera", direction: "irc_to_matrix", kind: "dm", otr: "true" });
  metrics.messageLatency.observe({ direction: "irc_to_matrix" }, 0.2);
  metrics.otrEvents([
    { type: "gone-secure", version: 3 },
    { type: "smp-success" },
    { type: "smp-abort", by: "peer" },
    { type: "malformed", code: "bad-mac" },
    { type: "malformed", code: "counter-replay" },
    { type: "unreadable" },
    { type: "ake-failed", code: "bad-signature" },
    { type: "fragment-dropped", reason: "fragment-limit" },
    { type: "refused", code: "require-encryption" },
    { type: "queued", count: 2 },
    { type: "received" },
  ]);
  const text = await metrics.registry.metrics();
  assert.equal(sample(text, "matrix_otr_irc_irc_lines_sent_total", { network: "libera" }), 3);
  assert.equal(sample(text, "matrix_otr_irc_irc_connections", { network: "libera", state: "connected" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_messages_bridged_total", { network: "libera", direction: "irc_to_matrix", kind: "dm", otr: "true" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_message_bridge_latency_seconds_count", { direction: "irc_to_matrix" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_message_bridge_latency_seconds_bucket", { direction: "irc_to_matrix", le: "0.1" }), 0);
  assert.equal(sample(text, "matrix_otr_irc_message_bridge_latency_seconds_bucket", { direction: "irc_to_matrix", le: "0.25" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_ake_completed_total", { version: "3" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_smp_total", { outcome: "success" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_smp_total", { outcome: "aborted_by_peer" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_decrypt_failures_total", { reason: "bad-mac" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_decrypt_failures_total", { reason: "counter-replay" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_decrypt_failures_total", { reason: "unreadable" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_ake_failed_total", { reason: "bad-signature" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_fragments_dropped_total", { reason: "fragment-limit" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_policy_total", { action: "refused", reason: "require-encryption" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_otr_policy_total", { action: "held", reason: "not_encrypted" }), 2);
});

test("metrics.time and instrumentStore time calls and count failures without changing results", async () => {
  const metrics = createMetrics();
  assert.equal(await metrics.time(metrics.matrixApiDuration, { method: "sendMessage" }, async () => 42), 42);
  const store = {
    async getState(k: string) { return `v:${k}`; },
    async putState() { throw Object.assign(new Error("disk full"), { code: "io" }); },
    name: "memory",
    syncThing() { return 7; },
  };
  const s = instrumentStore(store, metrics);
  assert.equal(await s.getState("a"), "v:a");
  await assert.rejects(s.putState(), { code: "io" });
  assert.equal(s.name, "memory");
  assert.equal(s.syncThing(), 7);
  const text = await metrics.registry.metrics();
  assert.equal(sample(text, "matrix_otr_irc_matrix_api_call_duration_seconds_count", { method: "sendMessage" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_store_query_duration_seconds_count", { op: "getState" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_store_query_duration_seconds_count", { op: "putState" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_store_errors_total", { op: "putState" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_store_errors_total", { op: "getState" }), undefined);
});

test("label safety: identifiers are refused as label values and a registry scan finds any that slip in", async () => {
  assert.equal(safeLabel("bad-mac"), "bad-mac");
  assert.equal(safeLabel("@alice:example.org"), "other");
  assert.equal(safeLabel("!room:example.org"), "other");
  assert.equal(safeLabel("#channel"), "other");
  assert.equal(safeLabel("a message with spaces"), "other");
  assert.equal(safeLabel(undefined), "unknown");

  const metrics = createMetrics();
  metrics.otrEvents([{ type: "ake-failed", code: "@alice:example.org" }, { type: "malformed", code: "!abc:example.org" }]);
  metrics.ircLinesReceived.inc({ network: "libera" });
  assert.deepEqual(await findUnsafeLabels(metrics.registry, ["alice", "@alice:example.org", "!abc:example.org", "#otr-test"]), []);

  // What a careless caller could do with the raw prom-client objects is caught by the scan.
  metrics.otrDecryptFailures.inc({ reason: "@bob:example.org" });
  metrics.ircConnectFailures.inc({ network: "libera", reason: "nick carol in use" });
  metrics.matrixRooms.set({ kind: "#otr-test" }, 1);
  const bad = await findUnsafeLabels(metrics.registry, ["carol"]);
  assert.deepEqual(bad.map((b) => b.value).sort(), ["#otr-test", "@bob:example.org", "nick carol in use"]);
  // The scrape of a running bridge gives the same answer.
  const scraped = findUnsafeLabelsInText(await metrics.registry.metrics(), ["carol"]);
  assert.deepEqual(scraped.map((b) => `${b.metric}{${b.label}} ${b.value}`).sort(), bad.map((b) => `${b.metric}{${b.label}} ${b.value}`).sort());
});

test("the library's metrics join our registry: default metrics once, no duplicate-registration error", async () => {
  const registry = new MetricsRegistry();
  const metrics = createMetrics(registry);
  // PrometheusMetrics calls collectDefaultMetrics on the registry it is given; a plain Registry would throw here.
  assert.throws(() => {
    const plain = new Registry();
    collectDefaultMetrics({ register: plain });
    new PrometheusMetrics(plain);
  }, /already been registered/);
  const bridge = new Bridge({
    homeserverUrl: "http://127.0.0.1:1",
    domain: "example.org",
    registration: AppServiceRegistration.fromObject({
      id: "t", hs_token: "h".repeat(64), as_token: "a".repeat(64), url: null, sender_localpart: "bot",
      namespaces: { users: [], rooms: [], aliases: [] },
    }),
    controller: { onEvent: () => undefined },
    disableStores: true,
  });
  includeBridgeLibraryMetrics(bridge, metrics.registry);
  const text = await metrics.registry.metrics();
  assert.equal(text.match(/^# TYPE process_cpu_user_seconds_total /gm)?.length, 1);
  assert.match(text, /^bridge_app_version\{version="[^"]+"\} 1$/m, "the library's own metrics are in our registry");
  assert.match(text, /^# TYPE matrix_otr_irc_messages_bridged_total counter$/m);
  assert.deepEqual(await findUnsafeLabels(metrics.registry), []);
});

test("the use cases' metrics port moves the Prometheus metrics: messages, failures, connection states", async () => {
  const metrics = createMetrics();
  const port = useCaseMetrics(metrics);
  port.messageBridged("matrix_to_irc", "libera", true);
  port.messageBridged("matrix_to_irc", "libera", false);
  port.messageBridged("irc_to_matrix", "libera", false);
  port.messageFailed("matrix_to_irc", "not-connected");
  port.messageFailed("irc_to_matrix", "@alice:example.org said no");
  port.connectionState("libera", null, "connecting");
  port.connectionState("libera", "connecting", "connected");
  port.connectionState("libera", null, "connecting");
  port.connectionState("libera", "connecting", "backoff");
  port.connectionState("libera", "backoff", "connecting");
  port.connectionState("libera", "connecting", "connected");
  port.connectionState("libera", "connected", null);
  const text = await metrics.registry.metrics();
  assert.equal(sample(text, "matrix_otr_irc_messages_bridged_total", { network: "libera", direction: "matrix_to_irc", kind: "dm", otr: "true" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_messages_bridged_total", { network: "libera", direction: "matrix_to_irc", kind: "dm", otr: "false" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_messages_bridged_total", { network: "libera", direction: "irc_to_matrix", kind: "dm", otr: "false" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_messages_failed_total", { direction: "matrix_to_irc", reason: "not-connected" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_messages_failed_total", { direction: "irc_to_matrix", reason: "other" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_irc_connections", { network: "libera", state: "connected" }), 1);
  assert.equal(sample(text, "matrix_otr_irc_irc_connections", { network: "libera", state: "connecting" }), 0);
  assert.equal(sample(text, "matrix_otr_irc_irc_connections", { network: "libera", state: "backoff" }), 0);
  assert.equal(sample(text, "matrix_otr_irc_irc_connect_attempts_total", { network: "libera" }), 3);
  assert.deepEqual(await findUnsafeLabels(metrics.registry, ["alice"]), []);
});
