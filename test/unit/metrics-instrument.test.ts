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
