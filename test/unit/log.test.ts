import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLogger, isSensitiveField, newRequestId, redact, REDACTED, type Logger } from "../../src/log/index.js";

function capture(level: "debug" | "info" | "warn" | "error" = "debug", format: "json" | "logfmt" = "json") {
  const lines: string[] = [];
  const logger = createLogger({ level, format }, { sink: { write: (s: string) => lines.push(s) }, now: () => new Date(0) });
  return { lines, logger };
}

const SECRETS = {
  body: "attack at dawn",
  formatted_body: "<b>attack at dawn</b>",
  plaintext: "the eagle has landed",
  password: "hunter2-password",
  as_token: "as-token-0123456789",
  hsToken: "hs-token-0123456789",
  private_key: "dsa-private-x-value",
  masterKey: "master-key-material",
  secret: "smp-shared-secret",
  smp_answer_text: "my first pet",
  "sasl-password": "sasl-secret-pw",
};

test("lines are JSON with ts, level, msg and fields; levels below the threshold are dropped", () => {
  const { lines, logger } = capture("info");
  logger.debug("hidden", { a: 1 });
  logger.info("connected", { network: "libera", attempt: 2 });
  logger.error("failed", { code: "ECONNREFUSED" });
  assert.equal(lines.length, 2);
  assert.deepEqual(JSON.parse(lines[0]!), { ts: "1970-01-01T00:00:00.000Z", level: "info", msg: "connected", network: "libera", attempt: 2 });
  assert.equal(JSON.parse(lines[1]!).level, "error");
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n")));
});

test("logfmt lines quote what needs quoting and flatten nested maps", () => {
  const { lines, logger } = capture("debug", "logfmt");
  logger.warn("send queue full", { network: "libera", depth: 12, peer: { kind: "dm", n: 2 }, note: 'a "quoted" value\nsecond line', ids: ["a", "b"], mixed: ["x,y", 1] });
  assert.equal(
    lines[0],
    `ts=1970-01-01T00:00:00.000Z level=warn msg="send queue full" network=libera depth=12 peer.kind=dm peer.n=2 note="a \\"quoted\\" value\\nsecond line" ids=a,b mixed="[\\"x,y\\",1]"\n`,
  );
});

test("child loggers bind fields (a request id per transaction) and share level changes with the root", () => {
  const { lines, logger } = capture("info");
  const id = newRequestId();
  assert.match(id, /^[0-9a-f]{12}$/);
  const txn: Logger = logger.child({ request_id: id });
  const deeper = txn.child({ room: "dm" });
  deeper.info("event handled", { type: "m.room.message" });
  assert.deepEqual(JSON.parse(lines[0]!), { ts: "1970-01-01T00:00:00.000Z", level: "info", msg: "event handled", request_id: id, room: "dm", type: "m.room.message" });
  deeper.debug("not yet");
  assert.equal(lines.length, 1);
  logger.configure({ level: "debug", format: "logfmt" });
  deeper.debug("now visible");
  assert.equal(lines.length, 2);
  assert.match(lines[1]!, /^ts=\S+ level=debug msg="now visible" request_id=[0-9a-f]{12} room=dm\n$/);
  assert.ok(txn.isLevelEnabled("debug"));
});

test("no body, secret, password, token or key reaches a line, at debug, nested, in children or as error fields", () => {
  for (const format of ["json", "logfmt"] as const) {
    const { lines, logger } = capture("debug", format);
    logger.debug("event", { ...SECRETS });
    logger.debug("nested", { event: { type: "m.room.message", content: { body: SECRETS.body, msgtype: "m.text" } }, list: [{ password: SECRETS.password }] });
    logger.child({ token: SECRETS.as_token, cfg: { sasl: { password: SECRETS["sasl-password"] } } }).info("bound");
    logger.debug("irc", { raw: "PRIVMSG bob :attack at dawn", line: "PRIVMSG bob :attack at dawn" });
    const err = Object.assign(new Error("send failed"), { code: "E_SEND", password: SECRETS.password, body: SECRETS.body });
    logger.error("send failed", { err });
    logger.debug("bytes", { key_bytes: new Uint8Array([1, 2, 3]), blob: Buffer.from(SECRETS.private_key) });
    const out = lines.join("");
    for (const [name, value] of Object.entries(SECRETS)) assert.ok(!out.includes(value), `${format}: ${name} leaked: ${out}`);
    assert.ok(!out.includes("attack at dawn"));
    assert.ok(out.includes(REDACTED));
    assert.ok(out.includes("E_SEND") && out.includes("send failed"), "error code and human message are kept");
    assert.ok(out.includes("m.room.message"), "harmless siblings are kept");
  }
});

test("OTR wire data is scrubbed from any string, messages included; the query tag stays", () => {
  const { lines, logger } = capture("debug");
  const data = "?OTR:AAMDJ+MVmSfjFZcAAAAAAQAAAAIAAADAVf3Ei72ZgFeKqWvLMnuVPVCwxktsOZ1QdjeLp6jn62mCVtlY9nS6sRkecpjuLYHRxyTdRu2iEVtSsjZqK55ovZ35SfkOPHeFYa9BIuxWi9djHMVKQ8KOVGAVLibjZ6P8LreDSKtWDv9YQjIEnkwFVGCPfpBq2SX4VTQfJAQXHggR8izKxPvluXUdG9rIPh4cac98++VLdIuFMiEXjUIoTX2rEzunaCLMy0VIfowlRsgsKGrwhCCv7hBWyglbzwz+AAAAAAAAAAQAAAF2SOr,";
  logger.debug(`received ${data} from peer`, { wire: data, frag: "?OTR|5a73a599|27e31597,00001,00003,?OTR:AAMDJ+MVm,", v2: "?OTR,1,3,?OTR:AAEC,", query: "?OTRv23?" });
  const rec = JSON.parse(lines[0]!);
  assert.ok(!lines[0]!.includes("AAMDJ"), lines[0]);
  assert.equal(rec.msg, "received ?OTR:[redacted] from peer");
  assert.equal(rec.wire, "?OTR:[redacted]");
  assert.equal(rec.v2, "?OTR:[redacted]");
  assert.equal(rec.query, "?OTRv23?");
});

test("secrets inside strings (embedded JSON, inspected objects, query strings) are scrubbed too", () => {
  const { lines, logger } = capture("debug");
  logger.debug('body = {"msgtype":"m.text","body":"attack at dawn","password":"hunter2"}', {
    detail: "{ body: 'attack at dawn', msgtype: 'm.notice' }",
    url: "http://hs/_matrix/client/v3/sync?access_token=syt_abc&user_id=x",
  });
  const rec = JSON.parse(lines[0]!);
  assert.equal(rec.msg, 'body = {"msgtype":"m.text","body":"[redacted]","password":"[redacted]"}');
  assert.equal(rec.detail, "{ body: '[redacted]', msgtype: 'm.notice' }");
  assert.equal(rec.url, "http://hs/_matrix/client/v3/sync?access_token=[redacted]&user_id=x");
});

test("field-name rules: normalised, with suffixes and prefixes; ordinary operational names pass", () => {
  for (const n of ["body", "Body", "formattedBody", "as_token", "hsToken", "private-key", "privateKey", "sasl_password", "passwordFile", "masterKey", "smp_secret", "text", "message", "plaintext", "secret", "key"]) {
    assert.ok(isSensitiveField(n), n);
  }
  for (const n of ["network", "network_id", "code", "level", "count", "room_id", "user_id", "fingerprint", "state", "duration_ms", "nick"]) {
    assert.ok(!isSensitiveField(n), n);
  }
});

test("redact survives cycles, deep nesting and huge values without throwing", () => {
  const a: Record<string, unknown> = { name: "a" };
  a["self"] = a;
  let deep: Record<string, unknown> = { leaf: true };
  for (let i = 0; i < 20; i++) deep = { next: deep };
  const out = redact({ a, deep, big: "x".repeat(5000), arr: Array.from({ length: 100 }, (_, i) => i), n: 10n }) as Record<string, unknown>;
  assert.equal((out["a"] as Record<string, unknown>)["self"], "[circular]");
  assert.ok(JSON.stringify(out).includes("[nested]"));
  assert.ok((out["big"] as string).length < 1100);
  assert.equal((out["arr"] as unknown[]).length, 51);
  assert.equal(out["n"], "10");
});

test("property: a value under a sensitive name never appears in the output, whatever the nesting", () => {
  const sensitive = fc.constantFrom("body", "password", "as_token", "private_key", "secret", "plaintext", "formatted_body", "text");
  const harmless = fc.constantFrom("network", "code", "state", "count", "inner", "data");
  const secretValue = fc.string({ minLength: 12, maxLength: 30 }).map((s) => `S3CR3T${s.replace(/[^A-Za-z0-9]/g, "")}`);
  fc.assert(
    fc.property(fc.array(harmless, { maxLength: 4 }), sensitive, secretValue, fc.constantFrom("json", "logfmt"), (path, name, value, format) => {
      let fields: Record<string, unknown> = { [name]: value };
      for (const p of path.reverse()) fields = { [p]: fields, other: 1 };
      const { lines, logger } = capture("debug", format as "json" | "logfmt");
      logger.debug("x", fields);
      return !lines.join("").includes(value);
    }),
    { numRuns: 300 },
  );
});
