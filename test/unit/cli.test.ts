import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { AppServiceRegistration } from "matrix-appservice-bridge";
import { runCli } from "../../src/cli/run.js";
import type { CliIo } from "../../src/cli/io.js";
import { permissionFor, type Config } from "../../src/config/index.js";
import { REGISTRATION_EXAMPLE_PATH, registrationExampleText, SAMPLE_PATH } from "../../src/config/generate.js";
import type { StartBridgeOptions } from "../../src/main.js";

const root = fileURLToPath(new URL("../..", import.meta.url));

function fakeIo(extra: Partial<CliIo> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const logs: string[] = [];
  const signals = new EventEmitter();
  const io: CliIo = {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    env: {},
    signals,
    logSink: { write: (l: string) => logs.push(l) },
    ...extra,
  };
  return { io, signals, out: () => out.join(""), err: () => err.join(""), logs };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), "motr-cli-"));
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function writeConfig(dir: string, extra = "", metricsPort = 9102): string {
  const path = join(dir, "config.yaml");
  writeFileSync(path, `homeserver:
  url: http://127.0.0.1:9
  domain: example.org
appservice:
  url: http://localhost:8090
  port: 8090
networks:
  - id: local
    name: Local
    host: 127.0.0.1
    port: 6667
    tls: false
store:
  sqlite_path: ${join(dir, "bridge.db")}
  master_key_file: ${join(dir, "master.key")}
metrics:
  port: ${metricsPort}
${extra}`);
  return path;
}

test("usage: no command, unknown command and bad options exit 2; --help exits 0 for every command", async () => {
  let r = fakeIo();
  assert.equal(await runCli([], r.io), 2);
  assert.match(r.err(), /^Usage: matrix-otr-irc <command>/);
  r = fakeIo();
  assert.equal(await runCli(["frobnicate"], r.io), 2);
  assert.match(r.err(), /unknown command "frobnicate"/);
  r = fakeIo();
  assert.equal(await runCli(["--help"], r.io), 0);
  assert.match(r.out(), /generate-registration/);
  r = fakeIo();
  assert.equal(await runCli(["--version"], r.io), 0);
  assert.match(r.out(), /^matrix-otr-irc \d+\.\d+\.\d+/);
  for (const cmd of [["start"], ["generate-registration"], ["check-config"], ["store", "rotate-master-key"], ["keys", "import"], ["keys", "export"]]) {
    r = fakeIo();
    assert.equal(await runCli([...cmd, "--help"], r.io), 0, cmd.join(" "));
    assert.ok(r.out().startsWith(`Usage: matrix-otr-irc ${cmd.join(" ")}`), r.out());
  }
  r = fakeIo();
  assert.equal(await runCli(["check-config", "--bogus"], r.io), 2);
  assert.match(r.err(), /check-config: Unknown option '--bogus'/);
  r = fakeIo();
  assert.equal(await runCli(["check-config"], r.io), 2);
  assert.match(r.err(), /missing -c/);
  r = fakeIo();
  assert.equal(await runCli(["start", "-c", "x.yaml"], r.io), 2);
  assert.match(r.err(), /missing -f/);
  r = fakeIo();
  assert.equal(await runCli(["store", "polish"], r.io), 2);
  assert.match(r.err(), /unknown subcommand "polish"/);
});

test("check-config: the sample passes; a file with three mistakes prints all three with line numbers and exits 2", async () => {
  let r = fakeIo();
  assert.equal(await runCli(["check-config", "-c", SAMPLE_PATH], r.io), 0);
  assert.equal(r.out(), "config OK\n");
  const dir = tmp();
  const bad = join(dir, "bad.yaml");
  writeFileSync(bad, `homeserver:
  url: not a url
  domain: example.org
appservice:
  url: http://localhost:8090
  prot: 8091
networks:
  - id: Bad_Id
    name: x
    host: irc.example.org
`);
  r = fakeIo();
  assert.equal(await runCli(["check-config", "--config", bad], r.io), 2);
  const lines = r.err().trimEnd().split("\n");
  assert.equal(lines[0], `${bad}: 3 errors`);
  assert.match(lines[1]!, /^ {2}homeserver\.url \(2:8\): expected an http\(s\) URL, got string "not a url"$/);
  assert.match(lines[2]!, /^ {2}appservice\.prot \(6:3\): unknown key "prot"; did you mean "port"\?$/);
  assert.match(lines[3]!, /^ {2}networks\[0\]\.id \(8:9\): expected a network id .*, got string "Bad_Id"$/);
  r = fakeIo();
  assert.equal(await runCli(["check-config", "-c", join(dir, "missing.yaml")], r.io), 2);
  assert.match(r.err(), /cannot read config file .*missing\.yaml: ENOENT/);
});

test("generate-registration writes a registration the appservice library accepts, with fresh tokens and the ghost namespace", async () => {
  const dir = tmp();
  const cfg = writeConfig(dir, `permissions:\n  example.org: user\n`);
  const reg = join(dir, "registration.yaml");
  let r = fakeIo();
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", reg], r.io), 0, r.err());
  assert.match(r.out(), /wrote .*registration\.yaml/);
  assert.equal(statSync(reg).mode & 0o777, 0o600, "the file holds tokens");
  const text = readFileSync(reg, "utf8");
  const obj = parse(text);
  assert.match(obj.as_token, /^[0-9a-f]{64}$/);
  assert.match(obj.hs_token, /^[0-9a-f]{64}$/);
  assert.notEqual(obj.as_token, obj.hs_token);
  assert.equal(obj.id, "matrix-otr-irc");
  assert.equal(obj.url, "http://localhost:8090");
  assert.equal(obj.sender_localpart, "ircotr");
  assert.equal(obj.rate_limited, false);
  // Portal rooms are created on alias queries (issue 8), so the channel alias namespace is claimed too.
  assert.deepEqual(obj.namespaces.aliases, [{ exclusive: true, regex: "^#irc_.+_.+:example\\.org$" }]);
  assert.deepEqual(obj.namespaces.rooms, []);
  assert.deepEqual(obj.namespaces.users, [{ exclusive: true, regex: "^@irc_.+_.+:example\\.org$" }]);

  const lib = AppServiceRegistration.fromObject(obj);
  assert.ok(lib.isUserMatch("@irc_local_alice:example.org", true));
  assert.ok(lib.isUserMatch("@irc_local_=5bbob=5d:example.org", true));
  assert.ok(!lib.isUserMatch("@alice:example.org", true));
  assert.ok(!lib.isUserMatch("@irc_local_alice:example.org.evil", true));
  assert.ok(lib.isAliasMatch("#irc_local_#otr:example.org", true));
  assert.ok(!lib.isAliasMatch("#otr:example.org", true));
  assert.ok(!lib.isUserMatch("@ircotr:example.org", true), "the bot is outside the ghost namespace");

  r = fakeIo();
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", reg], r.io), 2);
  assert.match(r.err(), /already exists; pass --force/);
  assert.equal(readFileSync(reg, "utf8"), text, "not overwritten");
  r = fakeIo();
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", reg, "--force"], r.io), 0);
  assert.notEqual(parse(readFileSync(reg, "utf8")).as_token, obj.as_token, "new tokens");

  r = fakeIo();
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", join(dir, "no", "such", "dir.yaml")], r.io), 1);
  assert.match(r.err(), /cannot write .*ENOENT/);
});

test("check-config -f checks that the registration fits the config", async () => {
  const dir = tmp();
  const cfg = writeConfig(dir);
  const reg = join(dir, "reg.yaml");
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", reg], fakeIo().io), 0);
  let r = fakeIo();
  assert.equal(await runCli(["check-config", "-c", cfg, "-f", reg], r.io), 0, r.err());
  assert.equal(r.out(), "config OK, registration OK\n");
  // The config moves on (new bot name, other ghost template) while the registration stays behind.
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace("appservice:\n", "appservice:\n  bot_localpart: otrbot\n  ghost_localpart_template: x_{network}_{nick}\n"));
  r = fakeIo();
  assert.equal(await runCli(["check-config", "-c", cfg, "-f", reg], r.io), 2);
  assert.match(r.err(), /2 problems with this config/);
  assert.match(r.err(), /sender_localpart is "ircotr" but appservice\.bot_localpart is "otrbot"/);
  assert.match(r.err(), /no exclusive regex covering ghosts such as @x_local_nick:example\.org/);
  r = fakeIo();
  assert.equal(await runCli(["check-config", "-c", SAMPLE_PATH, "-f", REGISTRATION_EXAMPLE_PATH], r.io), 2);
  assert.match(r.err(), /as_token is the example's placeholder/);
});

test("registration.example.yaml is generated from the sample config by the same code, with placeholder tokens", () => {
  const text = readFileSync(REGISTRATION_EXAMPLE_PATH, "utf8");
  assert.equal(text, registrationExampleText(), "registration.example.yaml is stale: run npm run gen:config");
  const obj = parse(text);
  assert.match(obj.as_token, /^REPLACE_ME/);
  assert.equal(obj.namespaces.users[0].regex, "^@irc_.+_.+:example\\.org$");
});

test("start: validates, serves metrics, calls startBridge, reloads permissions and logging on SIGHUP, stops on SIGTERM with 0", async (t) => {
  const dir = tmp();
  const metricsPort = await freePort();
  const cfgPath = writeConfig(dir, "permissions:\n  example.org: user\n", metricsPort);
  let received: StartBridgeOptions | null = null;
  let stopped = 0;
  let started!: () => void;
  const startedP = new Promise<void>((res) => (started = res));
  const r = fakeIo({
    startBridge: async (o) => {
      received = o;
      o.logger.info("fake bridge up", { body: "secret text that must not be logged" });
      started();
      return { core: {} as never, stop: async () => void stopped++ };
    },
  });
  assert.equal(await runCli(["generate-registration", "-c", cfgPath, "-f", join(dir, "registration.yaml")], fakeIo().io), 0);
  const done = runCli(["start", "-c", cfgPath, "-f", join(dir, "registration.yaml")], r.io);
  // Whatever fails below, stop the command so the metrics listener does not keep the test process alive.
  t.after(async () => {
    r.signals.emit("SIGTERM");
    await done;
  });
  await startedP;
  const opts = received as unknown as StartBridgeOptions;
  assert.equal(opts.registrationPath, join(dir, "registration.yaml"));
  assert.equal(opts.config.metrics.port, metricsPort);
  assert.ok(opts.metrics?.registry, "the metrics registry is handed to the bridge");
  const config: Config = opts.config;

  const metricsText = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  assert.match(metricsText, /^# TYPE matrix_otr_irc_messages_bridged_total counter$/m);
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/health`)).status, 200);
  const ready = await fetch(`http://127.0.0.1:${metricsPort}/ready`);
  assert.equal(ready.status, 503, "the homeserver (port 9) is unreachable");
  assert.deepEqual(((await ready.json()) as { checks: unknown }).checks, { homeserver: false, appservice: true, store: true });

  assert.equal(permissionFor(config, "@alice:example.org"), "user");
  writeConfig(dir, `permissions:\n  "@alice:example.org": admin\nlogging:\n  level: debug\n  format: logfmt\notr:\n  default_policy: always\n`, metricsPort);
  r.signals.emit("SIGHUP");
  assert.equal(permissionFor(config, "@alice:example.org"), "admin", "the live config object sees the new permissions");
  assert.equal(permissionFor(config, "@bob:example.org"), null);
  const reloadLine = r.logs.find((l) => l.includes("config reloaded"));
  assert.ok(reloadLine, r.logs.join(""));
  assert.match(reloadLine!, /^ts=\S+ level=info msg="config reloaded" applied=permissions,logging restart_needed_for=otr\n$/);

  writeFileSync(cfgPath, "homeserver: [\n");
  r.signals.emit("SIGHUP");
  assert.ok(r.logs.some((l) => l.includes("config reload failed")));
  assert.equal(permissionFor(config, "@alice:example.org"), "admin", "a broken file keeps the running config");

  r.signals.emit("SIGTERM");
  assert.equal(await done, 0);
  assert.equal(stopped, 1);
  assert.ok(!r.logs.join("").includes("secret text"), "the bridge's logger is the redacting one");
  assert.ok(r.logs.some((l) => l.includes("shutdown complete")));
  await assert.rejects(fetch(`http://127.0.0.1:${metricsPort}/health`), "the metrics listener is closed after shutdown");
});

test("start: an invalid config exits 2 before anything starts; start failures exit 2 (config) or 1 (runtime)", async () => {
  const dir = tmp();
  let r = fakeIo({ startBridge: async () => assert.fail("must not start") });
  writeFileSync(join(dir, "bad.yaml"), "homeserver: {}\n");
  assert.equal(await runCli(["start", "-c", join(dir, "bad.yaml"), "-f", "r.yaml"], r.io), 2);
  assert.match(r.err(), /homeserver\.url/);

  const cfg = writeConfig(dir);
  writeFileSync(cfg, readFileSync(cfg, "utf8").replace("metrics:\n", "metrics:\n  enabled: false\n"));
  r = fakeIo({ startBridge: async () => assert.fail("must not start") });
  assert.equal(await runCli(["start", "-c", cfg, "-f", join(dir, "none.yaml")], r.io), 2);
  assert.match(r.err(), /none\.yaml: cannot read the registration: ENOENT/);
  const reg = join(dir, "reg.yaml");
  assert.equal(await runCli(["generate-registration", "-c", cfg, "-f", reg], fakeIo().io), 0);
  r = fakeIo({ startBridge: async () => { throw Object.assign(new Error("not an appservice registration"), { code: "registration-invalid" }); } });
  assert.equal(await runCli(["start", "-c", cfg, "-f", reg], r.io), 2);
  assert.ok(r.logs.some((l) => l.includes("registration-invalid") && l.includes("failed to start")), r.logs.join(""));
  r = fakeIo({ startBridge: async () => { throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }); } });
  assert.equal(await runCli(["start", "-c", cfg, "-f", reg], r.io), 1);
  assert.equal(r.signals.listenerCount("SIGTERM") + r.signals.listenerCount("SIGHUP"), 0, "no signal handlers left behind");

  // SIGTERM while the bridge is still starting: it finishes starting, then stops cleanly.
  let stops = 0;
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  r = fakeIo({ startBridge: async () => { await gate; return { core: {} as never, stop: async () => void stops++ }; } });
  const done = runCli(["start", "-c", cfg, "-f", reg], r.io);
  while (r.signals.listenerCount("SIGTERM") === 0) await new Promise((res) => setImmediate(res));
  r.signals.emit("SIGTERM");
  release();
  assert.equal(await done, 0);
  assert.equal(stops, 1);
});

test("store rotate-master-key re-seals with a new key file", async () => {
  const dir = tmp();
  const cfg = writeConfig(dir);
  const oldKey = "11".repeat(32);
  writeFileSync(join(dir, "master.key"), oldKey + "\n", { mode: 0o600 });
  const { openStore } = await import("../../src/store/index.js");
  const store = await openStore({ engine: "sqlite", sqlite_path: join(dir, "bridge.db") }, new Uint8Array(32).fill(0x11));
  await store.setIrcPassword("@alice:example.org", "local", "irc-pw");
  await store.close();

  let r = fakeIo();
  assert.equal(await runCli(["store", "rotate-master-key", "-c", cfg], r.io), 0, r.err());
  assert.match(r.out(), /master key rotated: \d+ secrets? re-sealed; new key in .*master\.key/);
  const newKey = readFileSync(join(dir, "master.key"), "utf8").trim();
  assert.match(newKey, /^[0-9a-f]{64}$/);
  assert.notEqual(newKey, oldKey);
  const reopened = await openStore({ engine: "sqlite", sqlite_path: join(dir, "bridge.db") }, Uint8Array.from(Buffer.from(newKey, "hex")));
  assert.equal(await reopened.getIrcPassword("@alice:example.org", "local"), "irc-pw");
  await reopened.close();

  r = fakeIo({ env: { MATRIX_OTR_IRC_MASTER_KEY: "22".repeat(32) } });
  assert.equal(await runCli(["store", "rotate-master-key", "-c", cfg], r.io), 2);
  assert.match(r.err(), /MATRIX_OTR_IRC_MASTER_KEY/);
});

test("keys export then import moves an OTR identity through libotr files; refusals have their exit codes", async () => {
  const dir = tmp();
  const cfg = writeConfig(dir);
  writeFileSync(join(dir, "master.key"), "33".repeat(32) + "\n", { mode: 0o600 });
  const { openStore } = await import("../../src/store/index.js");
  const { generateDsaKey } = await import("../../src/otr/crypto/dsa.js");
  const { encodeStoredOtrKey } = await import("../../src/bridge/keys-cli.js");
  const store = await openStore({ engine: "sqlite", sqlite_path: join(dir, "bridge.db") }, new Uint8Array(32).fill(0x33));
  await store.putOtrPrivateKeyIfAbsent("@alice:example.org", "local", encodeStoredOtrKey(generateDsaKey()));
  await store.putFingerprint({
    userId: "@alice:example.org", networkId: "local", peerNick: "bob", fingerprint: "ab".repeat(20),
    trust: "verified", verifiedBy: "smp", firstSeen: 1, lastSeen: 2,
  });
  await store.close();

  const keyFile = join(dir, "otr.private_key");
  const fpFile = join(dir, "otr.fingerprints");
  let r = fakeIo();
  assert.equal(await runCli(["keys", "export", "-c", cfg, "-u", "@alice:example.org", "-n", "local", "-k", keyFile, "--fingerprints", fpFile], r.io), 0, r.err());
  const fp = /fingerprint ((?:[0-9A-F]{8} ){4}[0-9A-F]{8})/.exec(r.out())?.[1];
  assert.ok(fp, r.out());
  assert.match(r.out(), /wrote 1 fingerprint to/);
  assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  assert.match(readFileSync(keyFile, "utf8"), /\(privkeys/);

  r = fakeIo();
  assert.equal(await runCli(["keys", "export", "-c", cfg, "-u", "@alice:example.org", "-n", "local", "-k", keyFile], r.io), 2);
  assert.match(r.err(), /exists; not overwriting it \(file-exists\)/);

  r = fakeIo();
  assert.equal(await runCli(["keys", "import", "-c", cfg, "-u", "@carol:example.org", "-n", "local", "-k", keyFile, "--fingerprints", fpFile], r.io), 0, r.err());
  assert.ok(r.out().includes(`imported OTR key of @carol:example.org on local`), r.out());
  assert.ok(r.out().includes(`fingerprint ${fp}`), "the same identity arrives");
  assert.match(r.out(), /fingerprints: 1 recorded, 1 verified/);

  r = fakeIo();
  assert.equal(await runCli(["keys", "import", "-c", cfg, "-u", "@dave:example.org", "-n", "nowhere", "-k", keyFile], r.io), 2);
  assert.match(r.err(), /no network "nowhere"/);
  r = fakeIo();
  assert.equal(await runCli(["keys", "import", "-c", cfg, "-u", "dave", "-n", "local", "-k", keyFile], r.io), 2);
  assert.match(r.err(), /not a Matrix user id/);
  r = fakeIo();
  assert.equal(await runCli(["keys", "import", "-c", cfg, "-u", "@dave:example.org", "-n", "local", "-k", join(dir, "missing")], r.io), 2);
  assert.match(r.err(), /unreadable-file/);
  r = fakeIo();
  assert.equal(await runCli(["keys", "export", "-c", cfg, "-u", "@nobody:example.org", "-n", "local", "-k", join(dir, "none.key")], r.io), 1);
  assert.match(r.err(), /no OTR key .*\(no-key\)/);
});

test("the executable exits with the command's status", () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), ...args], { cwd: root, encoding: "utf8", timeout: 120_000 });
  const good = run("check-config", "-c", SAMPLE_PATH);
  assert.equal(good.status, 0, good.stderr);
  assert.equal(good.stdout, "config OK\n");
  const dir = tmp();
  writeFileSync(join(dir, "c.yaml"), "nonsense: true\n");
  const bad = run("check-config", "-c", join(dir, "c.yaml"));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown key "nonsense"/);
  assert.equal(run().status, 2);
});
