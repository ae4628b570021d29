// The seams main.ts instruments: Matrix port calls and IRC puppets, counted without src/matrix or src/irc knowing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createMetrics, findUnsafeLabels, instrumentMatrixPort, instrumentPuppetFactory } from "../../src/metrics/index.js";

const value = async (m: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string>) => {
  const metric = (await m.registry.getSingleMetric(name)!.get()).values;
  const hit = metric.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
  return hit?.value;
};

test("Matrix port calls count by method and outcome, with latency; sync members pass through", async () => {
  const m = createMetrics();
  const port = instrumentMatrixPort({
    botUserId: "@bot:example.org",
    async send(_room: string) { return "$ev"; },
    async join(_room: string) { throw new Error("forbidden"); },
    ghostUserId: (n: string, nick: string) => `@irc_${n}_${nick}:example.org`,
  }, m);
  assert.equal(port.botUserId, "@bot:example.org");
  assert.equal(port.ghostUserId("local", "bob"), "@irc_local_bob:example.org");
  assert.equal(await port.send("!room:example.org"), "$ev");
  assert.equal(await port.send("!room:example.org"), "$ev");
  await assert.rejects(port.join("!room:example.org"), /forbidden/);
  assert.equal(await value(m, "matrix_otr_irc_matrix_api_calls_total", { method: "send", outcome: "ok" }), 2);
  assert.equal(await value(m, "matrix_otr_irc_matrix_api_calls_total", { method: "join", outcome: "error" }), 1);
  const text = await m.registry.metrics();
  assert.match(text, /matrix_otr_irc_matrix_api_call_duration_seconds_count\{method="send"\} 2/);
  assert.deepEqual(await findUnsafeLabels(m.registry, ["!room:example.org", "@bot:example.org"]), []);
});

test("puppets: lines sent and received per network, connect failures by code only, queue depth at scrape time", async () => {
  const m = createMetrics();
  const seen: string[] = [];
  class Events {
    constructor(private readonly tag: string) {}
    onMessage(_msg: unknown) { seen.push(`${this.tag}:msg`); }
    onDisconnected(info: { reason: string }) { seen.push(`${this.tag}:down:${info.reason}`); }
    onConnected(_info: { nick: string }) { seen.push(`${this.tag}:up`); }
  }
  let handed!: Events;
  const fake = { queuedLines: 3, nick: "alice", say: (_t: string, text: string) => text.split("\n").length, notice: (_t: string, _x: string) => 0, action: (_t: string, _x: string) => 1 };
  const factory = instrumentPuppetFactory((_req: { networkId: string; userId: string }, events: Events) => {
    handed = events;
    return fake;
  }, m);
  const p = factory({ networkId: "local", userId: "@alice:example.org" }, new Events("e"));
  assert.equal(p.nick, "alice");
  assert.equal(p.say("Bob", "one\ntwo"), 2);
  assert.equal(p.action("Bob", "waves"), 1);
  assert.equal(p.notice("Bob", "x"), 0);
  handed.onMessage({ text: "hi" });
  handed.onConnected({ nick: "alice" });
  handed.onDisconnected({ reason: "could not connect: ECONNREFUSED", willRetry: true, wasConnected: false } as never);
  handed.onDisconnected({ reason: "could not connect", willRetry: true, wasConnected: false } as never);
  handed.onDisconnected({ reason: "connection lost", willRetry: true, wasConnected: true } as never);
  assert.equal(await value(m, "matrix_otr_irc_irc_connect_attempts_total", { network: "local" }), undefined, "the first attempt is the bridge's to count");
  handed.onConnected({ nick: "alice" });
  assert.deepEqual(seen, ["e:msg", "e:up", "e:down:could not connect: ECONNREFUSED", "e:down:could not connect", "e:down:connection lost", "e:up"]);
  assert.equal(await value(m, "matrix_otr_irc_irc_connect_attempts_total", { network: "local" }), 1, "the reconnect ending the outage");
  assert.equal(await value(m, "matrix_otr_irc_irc_lines_sent_total", { network: "local" }), 3);
  assert.equal(await value(m, "matrix_otr_irc_irc_lines_received_total", { network: "local" }), 1);
  assert.equal(await value(m, "matrix_otr_irc_irc_connect_failures_total", { network: "local", reason: "ECONNREFUSED" }), 1);
  assert.equal(await value(m, "matrix_otr_irc_irc_connect_failures_total", { network: "local", reason: "closed_before_registration" }), 1);
  assert.match(await m.registry.metrics(), /matrix_otr_irc_irc_send_queue_depth\{network="local"\} 3/);
  fake.queuedLines = 0;
  handed.onDisconnected({ reason: "requested", willRetry: false } as never);
  assert.doesNotMatch(await m.registry.metrics(), /matrix_otr_irc_irc_send_queue_depth\{network="local"\} [1-9]/, "a stopped puppet no longer counts");
});

test("Matrix events: each is a request with its own request_id on the log lines it causes, counted and timed; IRC messages start the latency clock", async () => {
  const { createLogger } = await import("../../src/log/index.js");
  const { instrumentMatrixHandlers, observeBridgeLatency } = await import("../../src/metrics/index.js");
  const m = createMetrics();
  const lines: string[] = [];
  const log = createLogger({ level: "debug", format: "json" }, { sink: { write: (l: string) => lines.push(l) } });
  class Core {
    calls = 0;
    async onInvite(_e: never) { this.calls++; log.info("invite handled"); }
    async onMessage(_e: never) {
      this.calls++;
      await new Promise((r) => setTimeout(r, 5));
      log.info("message handled");
      observeBridgeLatency(m, "matrix_to_irc");
    }
    async onMembership(_e: never) { throw new Error("boom"); }
    other() { return this.calls; }
  }
  const core = new Core();
  const h = instrumentMatrixHandlers(core, m);
  await Promise.all([h.onInvite(undefined as never), h.onMessage(undefined as never)]);
  await assert.rejects(h.onMembership(undefined as never), /boom/);
  assert.equal(h.other(), 2, "other methods still reach the instance");
  const ids = lines.map((l) => (JSON.parse(l) as { request_id?: string }).request_id);
  assert.equal(ids.length, 2);
  assert.ok(ids.every((id) => typeof id === "string" && /^[0-9a-f]{12}$/.test(id)), lines.join(""));
  assert.notEqual(ids[0], ids[1], "one id per event, kept across awaits");
  log.info("outside any request");
  assert.equal((JSON.parse(lines.at(-1)!) as { request_id?: string }).request_id, undefined);
  assert.equal(await value(m, "matrix_otr_irc_matrix_transactions_total", { outcome: "ok" }), 2);
  assert.equal(await value(m, "matrix_otr_irc_matrix_transactions_total", { outcome: "error" }), 1);
  const text = await m.registry.metrics();
  assert.match(text, /matrix_otr_irc_matrix_transaction_duration_seconds_count 3/);
  assert.match(text, /matrix_otr_irc_message_bridge_latency_seconds_count\{direction="matrix_to_irc"\} 1/);
  observeBridgeLatency(m, "irc_to_matrix");
  assert.doesNotMatch(await m.registry.metrics(), /latency_seconds_count\{direction="irc_to_matrix"\}/, "no request, no observation");
});

test("OTR sessions gauge by state and version at scrape time; key generation timed", async () => {
  const { watchOtrSessions, timeKeyGeneration } = await import("../../src/metrics/index.js");
  const m = createMetrics();
  let sessions: Array<{ state: "plaintext" | "encrypted" | "finished"; verified: boolean; version: 2 | 3 | null }> = [
    { state: "encrypted", verified: false, version: 3 }, { state: "encrypted", verified: false, version: 3 },
    { state: "encrypted", verified: true, version: 2 }, { state: "plaintext", verified: false, version: null },
  ];
  watchOtrSessions(m, () => sessions);
  let text = await m.registry.metrics();
  assert.match(text, /matrix_otr_irc_otr_sessions\{state="encrypted_unverified",version="3"\} 2/);
  assert.match(text, /matrix_otr_irc_otr_sessions\{state="encrypted_verified",version="2"\} 1/);
  assert.match(text, /matrix_otr_irc_otr_sessions\{state="plaintext",version="none"\} 1/);
  sessions = [{ state: "finished", verified: false, version: null }];
  text = await m.registry.metrics();
  assert.doesNotMatch(text, /otr_sessions\{state="encrypted/, "gone sessions leave the gauge");
  assert.match(text, /matrix_otr_irc_otr_sessions\{state="finished",version="none"\} 1/);
  const gen = timeKeyGeneration(async () => "key", m);
  assert.equal(await gen(), "key");
  await assert.rejects(timeKeyGeneration(async () => { throw new Error("no"); }, m)());
  assert.match(await m.registry.metrics(), /matrix_otr_irc_otr_key_generation_duration_seconds_count 2/);
});

test("puppets: DH-Commits either way count as AKEs started, a last fragment from the peer as one reassembly", async () => {
  const m = createMetrics();
  let handed!: { onMessage(msg: unknown): void; onConnected(i: { nick: string }): void; onDisconnected(i: { reason: string; willRetry: boolean }): void };
  const fake = { say: (_t: string, _x: string) => 1, notice: (_t: string, _x: string) => 1, action: (_t: string, _x: string) => 1 };
  const factory = instrumentPuppetFactory((_req: { networkId: string }, events: typeof handed) => {
    handed = events;
    return fake;
  }, m);
  const p = factory({ networkId: "local" }, { onMessage() {}, onConnected() {}, onDisconnected() {} });
  p.say("Bob", "?OTR:AAMCAAABAAAAAAAAAMDxyz.");
  p.say("Bob", "?OTR|0000abcd|00000000,00001,00003,?OTR:AAICAAAA,");
  p.say("Bob", "?OTR:AAMDAAAB.");
  p.say("Bob", "plain words mentioning ?OTR:AAMC in the middle");
  handed.onMessage({ text: "?OTR:AAMCAAAB." });
  handed.onMessage({ text: "?OTR|0000abcd|00001234,00002,00003,piece," });
  handed.onMessage({ text: "?OTR|0000abcd|00001234,00003,00003,piece." });
  handed.onMessage({ text: "?OTR,3,3,piece.," });
  handed.onMessage({ text: "?OTR,1,1,whole.," });
  assert.equal(await value(m, "matrix_otr_irc_otr_ake_started_total", {}), 3);
  assert.equal(await value(m, "matrix_otr_irc_otr_fragments_reassembled_total", {}), 2);
});

test("flood-control wait time per network and connections waiting for a connect slot are exported", async () => {
  const { watchConnectQueue } = await import("../../src/metrics/index.js");
  const m = createMetrics();
  let handed!: { onQueueWait?(ms: number): void; onMessage(): void; onConnected(): void; onDisconnected(): void };
  const factory = instrumentPuppetFactory((_req: { networkId: string }, events: typeof handed) => {
    handed = events;
    return { say: () => 0, notice: () => 0, action: () => 0 };
  }, m);
  factory({ networkId: "local" }, { onMessage() {}, onConnected() {}, onDisconnected() {} });
  handed.onQueueWait!(1500);
  handed.onQueueWait!(0);
  const text = await m.registry.metrics();
  assert.match(text, /matrix_otr_irc_irc_send_queue_wait_seconds_count\{network="local"\} 2/);
  assert.match(text, /matrix_otr_irc_irc_send_queue_wait_seconds_sum\{network="local"\} 1\.5/);
  const gates = [{ queued: 3 }, { queued: 4 }];
  watchConnectQueue(m, gates);
  assert.match(await m.registry.metrics(), /matrix_otr_irc_irc_reconnect_queue_size 7/);
  gates[0]!.queued = 0;
  assert.match(await m.registry.metrics(), /matrix_otr_irc_irc_reconnect_queue_size 4/, "read at every scrape");
});
