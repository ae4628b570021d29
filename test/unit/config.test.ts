import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  decodeMasterKey,
  formatConfigError,
  ghostUserRegex,
  loadConfig,
  parseConfig,
  permissionFor,
  type Config,
  type ConfigError,
} from "../../src/config/index.js";
import { renderReference, renderSample } from "../../src/config/render.js";
import { REFERENCE_PATH, referenceText, SAMPLE_PATH } from "../../src/config/generate.js";
import { DefaultSchema, int, oneOf, str } from "../../src/config/schema.js";
import fc from "fast-check";
import { stringify } from "yaml";

const MINIMAL = `
homeserver:
  url: http://localhost:8008
  domain: example.org
appservice:
  url: http://localhost:8090
networks:
  - id: test
    name: Test net
    host: 127.0.0.1
    port: 6667
    tls: false
`;

const noFiles = { env: {}, readFile: (p: string): string => {
  throw Object.assign(new Error(`no such file ${p}`), { code: "ENOENT" });
} };

function ok(text: string, opts = noFiles): Config {
  const r = parseConfig(text, "test.yaml", opts);
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join("\n"));
  return r.config;
}

function errors(text: string, opts = noFiles): ConfigError[] {
  const r = parseConfig(text, "test.yaml", opts);
  assert.equal(r.ok, false, "config unexpectedly valid");
  return r.ok ? [] : r.errors;
}

test("a minimal config gets every documented default", () => {
  const c = ok(MINIMAL);
  assert.equal(c.appservice.ghost_localpart_template, "irc_{network}_{nick}");
  assert.equal(c.appservice.bind_address, "127.0.0.1");
  assert.deepEqual(c.permissions, {});
  assert.deepEqual(c.otr, { default_policy: "opportunistic", trust_on_first_use: false, persist_sessions: true });
  assert.equal(c.store.engine, "sqlite");
  assert.equal(c.store.sqlite_path, "./data/bridge.db");
  assert.equal(c.store.master_key_file, "./data/master.key");
  assert.ok(!("master_key" in c.store), "a missing master key file is not an error: the store creates it on first start");
  assert.deepEqual(c.metrics, { enabled: true, bind_address: "127.0.0.1", port: 9102 });
  assert.deepEqual(c.logging, { level: "info", format: "json" });
  const n = c.networks[0]!;
  assert.equal(n.nick_template, "{localpart}");
  assert.equal(n.max_line_bytes, 512);
  assert.equal(n.port, 6667);
  assert.equal(n.tls, false);
  assert.equal(n.password, undefined);
});

test("three mistakes are all reported, with key path and line:col", () => {
  const text = `homeserver:
  url: http://localhost:8008
  domain: example.org
appservice:
  url: http://localhost:8090
  port: "8090"
networks:
  - id: test
    name: Test
    host: irc.example.org
    max_line_bytes: 10
logging:
  level: loud
`;
  const errs = errors(text);
  assert.deepEqual(
    errs.map(formatConfigError),
    [
      `appservice.port (6:9): expected an integer from 1 to 65535, got string "8090"`,
      `networks[0].max_line_bytes (11:21): expected an integer from 64 to 8191, got integer 10`,
      `logging.level (13:10): expected one of debug, info, warn, error, got string "loud"`,
    ],
  );
});

test("unknown keys are rejected with did-you-mean and renamed-key hints, at the key's position", () => {
  const errs = errors(MINIMAL.replace("appservice:\n", "appservice:\n  bind_adress: 0.0.0.0\n  sender_localpart: bot\n") + "metrics:\n  prot: 9000\n");
  const msgs = errs.map(formatConfigError);
  assert.ok(msgs.includes(`appservice.bind_adress (6:3): unknown key "bind_adress"; did you mean "bind_address"?`), msgs.join("\n"));
  assert.ok(msgs.includes(`appservice.sender_localpart (7:3): unknown key "sender_localpart": it was renamed to "bot_localpart"`), msgs.join("\n"));
  assert.ok(msgs.some((m) => m.startsWith(`metrics.prot (`) && m.includes(`did you mean "port"?`)), msgs.join("\n"));
  const camel = errors(MINIMAL + "metrics:\n  bindAddress: 127.0.0.1\n");
  assert.match(camel[0]!.message, /did you mean "bind_address"/);
  const proto = errors(MINIMAL + "constructor: 1\ntoString: x\n__proto__: {}\n");
  assert.deepEqual(proto.map((e) => e.path), ["constructor", "toString", "__proto__"]);
  const far = errors(MINIMAL + "frobnicate: 1\n");
  assert.equal(far[0]!.message, `unknown key "frobnicate"`);
});

test("missing required keys point at the enclosing map", () => {
  const errs = errors("homeserver:\n  url: http://localhost:8008\nnetworks: []\n");
  const msgs = errs.map(formatConfigError);
  assert.ok(msgs.includes("homeserver.domain (2:3): required: expected a server name, got nothing"), msgs.join("\n"));
  assert.ok(msgs.some((m) => m.startsWith("appservice (1:1): required")), msgs.join("\n"));
  assert.ok(msgs.includes("networks (3:11): expected a list of at least 1 item, got a list"), msgs.join("\n"));
});

test("an empty file and YAML syntax errors are reported, not thrown", () => {
  assert.ok(errors("").length >= 3);
  const syntax = errors("homeserver:\n  url: [unclosed\n");
  assert.match(syntax[0]!.message, /invalid YAML/);
  assert.ok(syntax[0]!.line >= 2);
  const dup = errors(MINIMAL + "logging: {}\nlogging: {}\n");
  assert.match(dup[0]!.message, /invalid YAML/);
});

test("cross-field checks: unique network ids, ghost template, bot outside the ghost namespace, metrics port", () => {
  const two = MINIMAL + `  - id: test
    name: Again
    host: irc.example.org
`;
  assert.deepEqual(errors(two).map((e) => [e.path, e.message]), [["networks[1].id", `duplicate network id "test" (also networks[0].id)`]]);
  const noNick = MINIMAL.replace("appservice:\n", "appservice:\n  ghost_localpart_template: irc_{network}\n");
  assert.match(errors(noNick)[0]!.message, /must contain \{nick\}/);
  const unknownPh = MINIMAL.replace("appservice:\n", "appservice:\n  ghost_localpart_template: irc_{network}_{nick}_{room}\n");
  assert.match(errors(unknownPh)[0]!.message, /unknown placeholder \{room\}/);
  const upper = MINIMAL.replace("appservice:\n", "appservice:\n  ghost_localpart_template: IRC_{network}_{nick}\n");
  assert.match(errors(upper)[0]!.message, /localpart characters/);
  const botInside = MINIMAL.replace("appservice:\n", "appservice:\n  bot_localpart: irc_otr_bot\n");
  assert.deepEqual(errors(botInside).map((e) => e.path), ["appservice.bot_localpart"]);
  const samePort = MINIMAL + "metrics:\n  port: 8090\n";
  assert.deepEqual(errors(samePort).map((e) => e.path), ["metrics.port"]);
  assert.ok(ok(samePort + "  enabled: false\n"));
  const badNick = MINIMAL.replace("    tls: false\n", "    tls: false\n    nick_template: bridge\n");
  assert.match(errors(badNick)[0]!.message, /must contain \{localpart\}/);
});

test("permissions: values user|admin, keys checked, the most specific key wins", () => {
  const bad = errors(MINIMAL + `permissions:\n  "*": superuser\n  "not a key": user\n`);
  assert.deepEqual(bad.map((e) => e.path), ['permissions["*"]', 'permissions["not a key"]']);
  assert.match(bad[0]!.message, /expected one of user, admin, got string "superuser"/);
  const c = ok(MINIMAL + `permissions:
  "*": user
  example.org: admin
  "@eve:example.org": user
  "@root:other.net": admin
  "localhost:8448": user
`);
  assert.equal(permissionFor(c, "@alice:example.org"), "admin");
  assert.equal(permissionFor(c, "@eve:example.org"), "user");
  assert.equal(permissionFor(c, "@bob:elsewhere.net"), "user");
  assert.equal(permissionFor(c, "@root:other.net"), "admin");
  assert.equal(permissionFor(c, "@x:localhost:8448"), "user");
  assert.equal(permissionFor(ok(MINIMAL), "@alice:example.org"), null, "default: nobody");
  assert.equal(permissionFor(ok(MINIMAL), "constructor"), null);
  assert.equal(permissionFor(ok(MINIMAL), "@a:__proto__"), null);
  const domainOnly = ok(MINIMAL + "permissions:\n  example.org: user\n");
  assert.equal(permissionFor(domainOnly, "@alice:example.org"), "user");
  assert.equal(permissionFor(domainOnly, "@alice:example.org.evil.net"), null);
  assert.equal(permissionFor(domainOnly, "@mallory:evil.net"), null);
});

test("secrets come from *_file keys or the environment, never inline", () => {
  const dir = mkdtempSync(join(tmpdir(), "motr-config-"));
  const pw = join(dir, "pw");
  writeFileSync(pw, "hunter2\n");
  const withPw = MINIMAL.replace("    tls: false\n", `    tls: false\n    password_file: ${pw}\n    sasl:\n      mechanism: PLAIN\n      username: bot\n      password_file: ${pw}\n`);
  const c = ok(withPw, { env: {}, readFile: (p) => readFileSync(p, "utf8") });
  assert.equal(c.networks[0]!.password, "hunter2");
  assert.equal(c.networks[0]!.sasl?.password, "hunter2");

  const missing = errors(withPw.replaceAll(pw, join(dir, "nope")), { env: {}, readFile: (p) => readFileSync(p, "utf8") });
  assert.deepEqual(missing.map((e) => e.path), ["networks[0].password_file", "networks[0].sasl.password_file"]);
  assert.match(missing[0]!.message, /cannot read .*nope: ENOENT/);

  writeFileSync(join(dir, "empty"), "");
  const empty = errors(withPw.replaceAll(pw, join(dir, "empty")), { env: {}, readFile: (p) => readFileSync(p, "utf8") });
  assert.match(empty[0]!.message, /is empty/);

  const inline = errors(MINIMAL.replace("    tls: false\n", "    tls: false\n    password: hunter2\n"));
  assert.equal(inline[0]!.message, "secrets are not written inline: put it in a file and set password_file");
  assert.ok(!inline[0]!.message.includes("hunter2"));
  const inlineKey = errors(MINIMAL + "store:\n  master_key: abc\n");
  assert.match(inlineKey[0]!.message, /secrets are not written inline: .*master_key_file.*MATRIX_OTR_IRC_MASTER_KEY/);
  assert.ok(!inlineKey[0]!.message.includes("abc"));

  const plainNoPw = MINIMAL.replace("    tls: false\n", "    tls: false\n    sasl:\n      mechanism: PLAIN\n");
  assert.deepEqual(errors(plainNoPw).map((e) => e.path), ["networks[0].sasl.username", "networks[0].sasl.password_file"]);
  const ext = MINIMAL.replace("    tls: false\n", "    tls: false\n    sasl:\n      mechanism: EXTERNAL\n");
  assert.deepEqual(errors(ext).map((e) => e.path), ["networks[0].sasl.cert_file", "networks[0].sasl.key_file"]);
});

test("master key: checked from the environment or the file, never kept in the config, never echoed", () => {
  const dir = mkdtempSync(join(tmpdir(), "motr-config-"));
  const keyFile = join(dir, "master.key");
  writeFileSync(keyFile, "ab".repeat(32) + "\n");
  const text = MINIMAL + `store:\n  master_key_file: ${keyFile}\n`;
  const io = { env: {}, readFile: (p: string) => readFileSync(p, "utf8") };
  assert.ok(!("master_key" in ok(text, io).store), "checked only, never kept");
  assert.ok(ok(text, { ...io, env: { MATRIX_OTR_IRC_MASTER_KEY: Buffer.alloc(32, 7).toString("base64url") } }));
  const bad = errors(text, { ...io, env: { MATRIX_OTR_IRC_MASTER_KEY: "short-secret" } });
  assert.equal(bad[0]!.path, "store.master_key_file");
  assert.match(bad[0]!.message, /environment variable MATRIX_OTR_IRC_MASTER_KEY: expected a 32-byte key/);
  assert.ok(!bad[0]!.message.includes("short-secret"));
  writeFileSync(keyFile, "nonsense-key\n");
  const badFile = errors(text, io);
  assert.match(badFile[0]!.message, /^file .*master\.key: expected a 32-byte key/);
  assert.ok(!badFile[0]!.message.includes("nonsense-key"));
  assert.deepEqual(decodeMasterKey("ab".repeat(32)), new Uint8Array(32).fill(0xab));
  assert.deepEqual(decodeMasterKey(Buffer.alloc(32, 0xfb).toString("base64url")), new Uint8Array(32).fill(0xfb));
  assert.equal(decodeMasterKey(Buffer.alloc(31).toString("base64")), null);
});

test("an unreadable secret file is a clear error", () => {
  // A directory stands in for an unreadable file: permission bits do not stop root, which runs the tests in CI.
  const dir = mkdtempSync(join(tmpdir(), "motr-config-"));
  const e = errors(MINIMAL.replace("    tls: false\n", `    tls: false\n    password_file: ${dir}\n`), { env: {}, readFile: (p) => readFileSync(p, "utf8") });
  assert.equal(e[0]!.path, "networks[0].password_file");
  assert.match(e[0]!.message, /cannot read .*: EISDIR/);
});

test("store engine postgres needs a URL, from the file, the environment or inline", () => {
  assert.deepEqual(errors(MINIMAL + "store:\n  engine: postgres\n").map((e) => e.path), ["store.engine"]);
  const fromEnv = ok(MINIMAL + "store:\n  engine: postgres\n  postgres_url_file: /nonexistent\n", {
    env: { MATRIX_OTR_IRC_POSTGRES_URL: "postgresql://u:p@h/db" },
    readFile: noFiles.readFile,
  });
  assert.equal(fromEnv.store.postgres_url, "postgresql://u:p@h/db");
  const fromFile = ok(MINIMAL + "store:\n  engine: postgres\n  postgres_url_file: /run/pg\n", {
    env: {},
    readFile: (p) => (p === "/run/pg" ? "postgresql://u:pw@h/db\n" : noFiles.readFile(p)),
  });
  assert.equal(fromFile.store.postgres_url, "postgresql://u:pw@h/db");
  assert.ok(!Object.keys(fromFile.store).some((k) => k.includes("secret")), "the merged secret has no key of its own");
  const inline = ok(MINIMAL + "store:\n  engine: postgres\n  postgres_url: postgresql://h/db\n");
  assert.equal(inline.store.postgres_url, "postgresql://h/db");
  const both = errors(MINIMAL + "store:\n  engine: postgres\n  postgres_url: postgresql://h/db\n  postgres_url_file: /x\n", {
    env: {},
    readFile: (p) => (p === "/x" ? "postgresql://h/other" : noFiles.readFile(p)),
  });
  assert.ok(both.some((e) => e.path === "store.postgres_url_file" && /not both/.test(e.message)));
});

test("defaults are validated when the schema is declared", () => {
  assert.throws(() => new DefaultSchema(int(1, 10), 11), /invalid default 11/);
  assert.throws(() => oneOf(["a", "b"] as const).default("c" as "a"), /invalid default/);
  assert.throws(() => str({ minLength: 1 }).default(""), /invalid default/);
});

test("the ghost namespace regex covers ghosts, escapes literal parts and the domain, and is anchored", () => {
  const re = ghostUserRegex("irc_{network}_{nick}", "example.org");
  assert.equal(re.source, "^@irc_.+_.+:example\\.org$");
  assert.ok(re.test("@irc_libera_alice:example.org"));
  assert.ok(!re.test("@irc_libera_alice:exampleXorg"));
  assert.ok(!re.test("@ircotr:example.org"));
  assert.ok(!re.test("@x@irc_a_b:example.org"));
  const dotted = ghostUserRegex("irc.{network}.{nick}", "localhost:8448");
  assert.ok(dotted.test("@irc.a.b:localhost:8448"));
  assert.ok(!dotted.test("@ircXaXb:localhost:8448"));
});

test("committed sample and reference match what the schema generates", () => {
  assert.equal(readFileSync(SAMPLE_PATH, "utf8"), renderSample(), "config/config.sample.yaml is stale: run npm run gen:config");
  assert.equal(readFileSync(REFERENCE_PATH, "utf8"), referenceText(), "docs/configuration.md is stale: run npm run gen:config");
  assert.match(referenceText(), /^\| `matrix_otr_irc_messages_bridged_total` \| counter \| `network`, `direction`, `kind`, `otr` \|/m);
});

test("the sample config passes, and every key it shows is documented in the reference", () => {
  const r = loadConfig(SAMPLE_PATH, noFiles);
  if (!r.ok) assert.fail(r.errors.map(formatConfigError).join("\n"));
  const ref = renderReference();
  for (const key of ["homeserver.url", "networks[].sasl.mechanism", "store.master_key_file", "logging.format", "permissions"]) {
    assert.ok(ref.includes(`\`${key}\``), key);
  }
  // Uncommenting the optional keys of the sample must give a valid config too (their examples are valid).
  const uncommented = renderSample().replace(/^(\s*)# ((?:tls_ca_file|tls_servername|otr_fragment_size|sasl|  mechanism|  username|  password_file):.*)$/gm, "$1$2");
  const r2 = parseConfig(uncommented, "uncommented", { env: {}, readFile: (p) => (p.includes("sasl") ? "pw" : noFiles.readFile(p)) });
  if (!r2.ok) assert.fail(r2.errors.map(formatConfigError).join("\n"));
});

test("loadConfig reports an unreadable config file as one error", () => {
  const r = loadConfig("/nonexistent/config.yaml");
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.errors[0]!.message, /cannot read config file .*ENOENT/);
});

test("property: any YAML document yields a result, never an exception, and every error has a position", () => {
  const scalar = fc.oneof(fc.string({ maxLength: 12 }), fc.integer(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true }));
  const keys = fc.constantFrom("homeserver", "appservice", "networks", "permissions", "otr", "store", "metrics", "logging",
    "url", "domain", "port", "id", "name", "host", "tls", "sasl", "mechanism", "engine", "level", "format", "*", "x");
  const value = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: "small" }, scalar, fc.array(tie("node"), { maxLength: 3 }), fc.dictionary(keys, tie("node"), { maxKeys: 4 })),
  })).node;
  fc.assert(
    fc.property(fc.oneof(value, fc.dictionary(keys, value, { maxKeys: 8 })), (doc) => {
      const r = parseConfig(stringify(doc), "fuzz.yaml", noFiles);
      if (r.ok) return true;
      return r.errors.length > 0 && r.errors.every((e) => e.line >= 1 && e.col >= 1 && e.message.length > 0);
    }),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 200 }), (text) => {
      const r = parseConfig(text, "fuzz.yaml", noFiles);
      return r.ok || r.errors.length > 0;
    }),
    { numRuns: 300 },
  );
});
