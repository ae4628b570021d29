// Metrics during a real run: Synapse + ngIRCd, the bridge in-process with its metrics served on a listener of its
// own, scraped over HTTP after each step. A plaintext DM, an OTR DM with a libotr contact, an SMP, an AKE that
// fails (a contact speaking OTR through our own library whose Signature message has a broken MAC) and an IRC
// server restart each move the counters they should, by the amount they should; and no label value in the scrape
// is a nick, Matrix id, room id or secret used in the run.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { startSynapse, type SynapseInstance } from "../harness/synapse.js";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { MatrixClient } from "../harness/matrix-client.js";
import { freePort } from "../harness/ports.js";
import { logRoot, tempDir } from "../harness/proc.js";
import { LibotrIrcContact, generateContactKey } from "../harness/libotr-irc.js";
import { buildRegistration, parseConfig, renderRegistration } from "../../src/config/index.js";
import { createMetrics, findUnsafeLabelsInText, startMetricsServer, type MetricsServer } from "../../src/metrics/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";
import { createLogger } from "../../src/log/index.js";
import { MemoryStore } from "../../src/store/memory.js";
import { OtrAccount, OtrConversation, POLICY, defaultEnv, generateInstanceTag } from "../../src/otr/index.js";
import { generateDsaKey } from "../../src/otr/crypto/dsa.js";

const LONG = 120_000;
const NOTICE_KEY = "org.matrix_otr_irc.notice";
const P = "matrix_otr_irc_";

/** Sum of the samples of `name` whose labels include `labels` (0 when there are none). */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

describe("metrics move with what the bridge does, and never name anyone", { timeout: 900_000 }, () => {
  let hs: SynapseInstance;
  let irc: NgircdInstance;
  let bridge: RunningBridge;
  let server: MetricsServer;
  let alice: MatrixClient;
  let mgmt = "";
  const rooms: string[] = [];
  const ircClients: IrcClient[] = [];
  const contacts: LibotrIrcContact[] = [];
  const domain = "localhost";
  const botId = `@ircotr:${domain}`;
  const logPath = join(logRoot(), `bridge-metrics-${process.pid}.log`);
  const keyRobert = generateContactKey("Robert");
  const smpSecret = "tangerine-7731-smp";
  const longText = "Grüße aus dem privaten Absatz, fragmentiert ✓ ".repeat(40);
  const texts = ["plain hello from Daniel", "plain reply to Daniel", "private hello from Robert", "private reply to Robert", longText];

  const scrape = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    return res.text();
  };
  /** Polls the scrape until sample(name, labels) reaches `want` (counters are bumped just after delivery). */
  const reaches = async (name: string, labels: Record<string, string>, want: number): Promise<number> => {
    const deadline = Date.now() + LONG;
    for (;;) {
      const v = sample(await scrape(), name, labels);
      if (v >= want) return v;
      if (Date.now() > deadline) assert.fail(`${name}${JSON.stringify(labels)} stayed at ${v}, expected ${want}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const ghost = (nick: string) => `@irc_local_${nick.toLowerCase()}:${domain}`;
  const joinDmFrom = async (nick: string, hello: string): Promise<string> => {
    const room = await alice.waitForInvite((r, state) => !rooms.includes(r) && state.some((e) => e.type === "m.room.member" && e.sender === ghost(nick)), LONG);
    rooms.push(room);
    await alice.join(room);
    await alice.waitForMessage(room, hello, { sender: ghost(nick), timeoutMs: LONG });
    return room;
  };

  before(async () => {
    irc = await startNgircd();
    const dir = tempDir("metrics-e2e");
    const asPort = await freePort();
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      networks: [{ id: "local", name: "Local ngIRCd", host: irc.host, port: irc.port, tls: false }],
      permissions: { [`@alice:${domain}`]: "user" },
      otr: { default_policy: "opportunistic" },
      metrics: { enabled: false },
      // The plaintext Matrix leg this suite is about; end-to-bridge encryption has its own (e2ee.test.ts).
      encryption: { allow: false },
    });
    const draft = parseConfig(configText("http://127.0.0.1:1"), "metrics-e2e.yaml", { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    const registrationPath = join(dir, "registration.yaml");
    writeFileSync(registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    hs = await startSynapse({ registrationPath });
    const parsed = parseConfig(configText(hs.url), "metrics-e2e.yaml", { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    writeFileSync(logPath, "");
    const logger = createLogger({ level: "debug", format: "json" }, { sink: { write: (line: string) => appendFileSync(logPath, line) } });
    const metrics = createMetrics();
    server = await startMetricsServer({
      bind: "127.0.0.1",
      port: 0,
      registry: metrics.registry,
      readiness: async () => {
        const own = await bridge.ready!();
        return { ok: true, checks: { ...own } };
      },
    });
    bridge = await startBridge({
      config: parsed.config,
      registrationPath,
      logger,
      store: new MemoryStore(),
      metrics,
    });
    const a = await hs.registerUser("alice", "alice-pw");
    alice = new MatrixClient(hs.url, a.userId, a.accessToken);
    mgmt = await alice.createDm(botId);
    rooms.push(mgmt);
    await alice.waitForMessage(mgmt, /management room/, { sender: botId, timeoutMs: LONG });
    const from = alice.mark();
    await alice.sendText(mgmt, "connect local");
    await alice.waitForMessage(mgmt, "Connected to local as alice.", { sender: botId, timeoutMs: LONG, from });
  });

  after(async () => {
    for (const c of contacts) await c.close().catch(() => undefined);
    for (const c of ircClients) c.destroy();
    await bridge?.stop();
    await server?.close();
    await hs?.stop();
    await irc?.stop();
  });

  it("/ready answers from the running bridge; the connection is counted connected after one attempt", async () => {
    const ready = await fetch(`http://127.0.0.1:${server.port}/ready`);
    assert.equal(ready.status, 200);
    assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { store: true, appservice: true });
    const text = await scrape();
    assert.equal(sample(text, `${P}irc_connections`, { network: "local", state: "connected" }), 1);
    assert.equal(sample(text, `${P}irc_connect_attempts_total`, { network: "local" }), 1);
    assert.ok(sample(text, `${P}matrix_api_calls_total`, { method: "deliver", outcome: "ok" }) >= 3, "management room replies were sent (through the outbox)");
    assert.ok(sample(text, `${P}store_query_duration_seconds_count`) > 0, "the store is instrumented");
    assert.equal(sample(text, `${P}matrix_rooms`, { kind: "management" }), 1, "Alice's management room");
  });

  it("a plaintext DM both ways: one message each direction, unencrypted; IRC lines and Matrix sends counted", async () => {
    const before = await scrape();
    const daniel = await connectIrc(irc.host, irc.port, "Daniel");
    ircClients.push(daniel);
    daniel.privmsg("alice", texts[0]!);
    const room = await joinDmFrom("Daniel", texts[0]!);
    const mark = daniel.mark();
    await alice.sendText(room, texts[1]!);
    await daniel.waitForPrivmsg("alice", texts[1]!, LONG, mark);
    const inc = (name: string, labels: Record<string, string>) => reaches(name, labels, sample(before, name, labels) + 1);
    await inc(`${P}messages_bridged_total`, { direction: "irc_to_matrix", kind: "dm", otr: "false" });
    await inc(`${P}messages_bridged_total`, { direction: "matrix_to_irc", kind: "dm", otr: "false" });
    const after = await scrape();
    assert.equal(sample(after, `${P}messages_bridged_total`, { otr: "true" }), 0);
    for (const direction of ["irc_to_matrix", "matrix_to_irc"]) {
      const n = `${P}message_bridge_latency_seconds_count`;
      assert.ok(sample(after, n, { direction }) - sample(before, n, { direction }) >= 1, `latency observed ${direction}`);
    }
    assert.ok(sample(after, `${P}matrix_transactions_total`, { outcome: "ok" }) - sample(before, `${P}matrix_transactions_total`, { outcome: "ok" }) >= 2,
      "Alice's invite answer and message arrived as appservice events");
    // Lines written while handling a Matrix event carry that event's request id.
    const lines = readFileSync(logPath, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { msg: string; request_id?: string });
    assert.ok(lines.some((l) => /^[0-9a-f]{12}$/.test(l.request_id ?? "")), "some log line has a request_id");
    assert.ok(lines.filter((l) => l.msg === "DM room created").every((l) => l.request_id === undefined || /^[0-9a-f]{12}$/.test(l.request_id)));
    assert.ok(sample(after, `${P}irc_lines_received_total`, { network: "local" }) - sample(before, `${P}irc_lines_received_total`, { network: "local" }) >= 1);
    assert.ok(sample(after, `${P}irc_lines_sent_total`, { network: "local" }) - sample(before, `${P}irc_lines_sent_total`, { network: "local" }) >= 1);
    assert.ok(sample(after, `${P}matrix_api_calls_total`, { method: "createDmRoom", outcome: "ok" }) >= 1);
    assert.equal(sample(after, `${P}matrix_rooms`, { kind: "dm" }) - sample(before, `${P}matrix_rooms`, { kind: "dm" }), 1, "one DM room more");
    assert.equal(sample(after, `${P}matrix_ghosts`) - sample(before, `${P}matrix_ghosts`), 1, "Daniel's ghost");
    assert.ok(sample(after, `${P}matrix_api_call_duration_seconds_count`, { method: "deliver" }) >= sample(after, `${P}matrix_api_calls_total`, { method: "deliver" }));
  });

  it("an OTR DM with a libotr contact: one AKE completed on v3, messages counted as encrypted both ways", async () => {
    const before = await scrape();
    const robert = await LibotrIrcContact.connect({ host: irc.host, port: irc.port, nick: "Robert", remote: "alice", keyFile: keyRobert.keyFile });
    contacts.push(robert);
    robert.irc.privmsg("alice", "hi, about to go private");
    const room = await joinDmFrom("Robert", "hi, about to go private");
    const lib = robert.mark();
    robert.startOtr();
    await robert.waitForSecure(lib);
    await reaches(`${P}otr_ake_completed_total`, { version: "3" }, sample(before, `${P}otr_ake_completed_total`, { version: "3" }) + 1);
    const from = alice.mark();
    await robert.send(texts[2]!);
    await alice.waitForMessage(room, texts[2]!, { sender: ghost("Robert"), timeoutMs: LONG, from });
    const got = robert.mark();
    await alice.sendText(room, texts[3]!);
    const t = await robert.waitForText(texts[3]!, got);
    assert.equal(t.otr, true);
    await reaches(`${P}messages_bridged_total`, { direction: "irc_to_matrix", otr: "true" }, 1);
    await reaches(`${P}messages_bridged_total`, { direction: "matrix_to_irc", otr: "true" }, 1);
    // libotr fragments a long message (400-byte pieces): the bridge reassembles it once. (Its AKE messages were
    // fragmented too, so count from here.)
    const reassembled = sample(await scrape(), `${P}otr_fragments_reassembled_total`);
    const wire = robert.wireSent.length;
    await robert.send(longText);
    await alice.waitForMessage(room, longText, { sender: ghost("Robert"), timeoutMs: LONG, from });
    assert.ok(robert.wireSent.slice(wire).filter((l) => l.startsWith("?OTR|")).length >= 3, "it went out in fragments");
    assert.equal(await reaches(`${P}otr_fragments_reassembled_total`, {}, reassembled + 1), reassembled + 1);
    const after = await scrape();
    assert.equal(sample(after, `${P}otr_sessions`, { state: "encrypted_unverified", version: "3" }), 1, "one private conversation");
    assert.equal(sample(after, `${P}otr_sessions`, { state: "encrypted_verified" }), 0);
    assert.equal(sample(after, `${P}otr_key_generation_duration_seconds_count`), 1, "Alice's key was made once");
    assert.ok(sample(after, `${P}otr_ake_started_total`) - sample(before, `${P}otr_ake_started_total`) >= 1, "the AKE's DH-Commit was seen");
    assert.equal(sample(after, `${P}otr_ake_failed_total`), 0, "nothing failed so far");
    assert.equal(sample(after, `${P}otr_smp_total`), 0);
  });

  it("an SMP the contact starts with a question and Alice answers rightly counts one success", async () => {
    const robert = contacts[0]!;
    const room = rooms.at(-1)!;
    const from = alice.mark();
    const lib = robert.mark();
    await robert.smpStart(smpSecret, "our fruit?");
    await alice.waitForEvent(room, (e) => e.type === "m.room.message" && e.content[NOTICE_KEY] === "smp-question", LONG, from);
    await alice.sendText(room, `!otr smp ${smpSecret}`);
    assert.equal((await robert.waitForSmp(["SUCCESS", "FAILURE"], lib)).event, "SUCCESS");
    await reaches(`${P}otr_smp_total`, { outcome: "success" }, 1);
    await reaches(`${P}otr_sessions`, { state: "encrypted_verified", version: "3" }, 1);
    assert.equal(sample(await scrape(), `${P}otr_smp_total`, { outcome: "failure" }), 0);
  });

  it("an AKE whose Signature message carries a broken MAC counts one failed AKE with a reason code", async () => {
    const before = await scrape();
    const mallory = await connectIrc(irc.host, irc.port, "Mallory");
    ircClients.push(mallory);
    mallory.privmsg("alice", "hello before the broken handshake");
    await joinDmFrom("Mallory", "hello before the broken handshake");
    const account = new OtrAccount({ privateKey: generateDsaKey(), instanceTag: generateInstanceTag(defaultEnv), policy: POLICY.MANUAL, maxFragmentSize: 350 });
    const conv = new OtrConversation(account, "alice");
    let cursor = mallory.mark();
    const out = (lines: string[]) => {
      for (const line of lines) mallory.privmsg("alice", line);
    };
    out(conv.startAke().toSend);
    let corrupted = false;
    while (!corrupted) {
      const m = await mallory.waitFor((x) => x.command === "PRIVMSG" && x.nick === "alice", LONG, cursor);
      cursor = mallory.messages.indexOf(m) + 1;
      const r = conv.receive(m.params.at(-1) ?? "");
      const lines = [...r.toSend];
      // The Signature message (type 0x12) is the last AKE message; it comes in fragments, the last one ends with
      // the MAC: change one base64 character inside the MAC.
      if (lines.length > 0 && isSignature(lines)) {
        const last = lines.length - 1;
        const l = lines[last]!;
        const i = l.lastIndexOf(".") - 8;
        lines[last] = l.slice(0, i) + (l[i] === "A" ? "B" : "A") + l.slice(i + 1);
        corrupted = true;
      }
      out(lines);
    }
    const failed = await reaches(`${P}otr_ake_failed_total`, {}, sample(before, `${P}otr_ake_failed_total`) + 1);
    assert.equal(failed, sample(before, `${P}otr_ake_failed_total`) + 1);
    const reasons = (await scrape()).split("\n").filter((l) => l.startsWith(`${P}otr_ake_failed_total{`));
    assert.ok(reasons.every((l) => /reason="[a-z-]+"/.test(l)), reasons.join("\n"));
    assert.equal(sample(await scrape(), `${P}otr_ake_completed_total`), sample(before, `${P}otr_ake_completed_total`), "no AKE completed");
    assert.ok(sample(await scrape(), `${P}otr_ake_started_total`) > sample(before, `${P}otr_ake_started_total`), "the broken AKE was started");
  });

  it("an IRC server restart: the connection leaves connected, comes back after another attempt", async () => {
    const before = await scrape();
    const attempts = sample(before, `${P}irc_connect_attempts_total`, { network: "local" });
    for (const c of contacts) await c.close().catch(() => undefined);
    contacts.length = 0;
    await irc.restart();
    await reaches(`${P}irc_connect_attempts_total`, { network: "local" }, attempts + 1);
    await reaches(`${P}irc_connections`, { network: "local", state: "connected" }, 1);
    const text = await scrape();
    assert.equal(sample(text, `${P}irc_connections`, { network: "local" }), 1, "one connection, in exactly one state");
  });

  it("no label value in the scrape is a nick, Matrix id, room id or secret used in the run", async () => {
    const text = await scrape();
    const forbidden = [
      "alice", "@alice:localhost", botId, "Daniel", "Robert", "Mallory", ghost("Daniel"), ghost("Robert"), ghost("Mallory"),
      ...rooms, smpSecret, ...texts,
    ];
    assert.deepEqual(findUnsafeLabelsInText(text, forbidden), []);
    // The scrape is not empty of labels: the check looked at something.
    assert.ok(sample(text, `${P}messages_bridged_total`) >= 4);
  });
});

/** Whether these wire lines (whole or fragments) carry an OTR Signature message (type 0x12). */
function isSignature(lines: string[]): boolean {
  const joined = lines.map((l) => (l.startsWith("?OTR|") || l.startsWith("?OTR,") ? l.split(",")[3] ?? "" : l)).join("");
  const b64 = /\?OTR:([A-Za-z0-9+/=]+)/.exec(joined)?.[1];
  if (!b64) return false;
  const bytes = Buffer.from(b64.slice(0, 8), "base64");
  return bytes[2] === 0x12;
}
