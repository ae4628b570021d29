import { test } from "node:test";
import assert from "node:assert/strict";
import { Logger as LibraryLogger } from "matrix-appservice-bridge";
import { LogService } from "@vector-im/matrix-bot-sdk";
import { createLogger } from "../../src/log/index.js";
import { routeLibraryLogs } from "../../src/log/library.js";

async function flush(): Promise<void> {
  // winston writes through streams asynchronously.
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

test("the appservice library's and the bot SDK's log lines come out through our logger, structured and redacted", async () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", format: "json" }, { sink: { write: (s: string) => lines.push(s) } });
  routeLibraryLogs(logger);

  new LibraryLogger("Intent", { requestId: "txn-7" }).warn("could not send", { body: "attack at dawn", room_id: "!r:example.org" });
  LogService.info("MatrixHttpClient", "(REQ-1)", 'body = {"msgtype":"m.text","body":"attack at dawn"}');
  LogService.debug("Appservice", "PUT http://hs/_matrix/client/v3/rooms/x/send?access_token=syt_secret_token&user_id=@a:b");
  new LibraryLogger("Bridge").debug("verbose detail");
  await flush();

  const out = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const warn = out.find((r) => r["msg"] === "could not send");
  assert.ok(warn, lines.join(""));
  assert.equal(warn["level"], "warn");
  assert.equal(warn["module"], "Intent");
  assert.equal(warn["request_id"], "txn-7");
  assert.equal(warn["component"], "appservice-library");
  const http = out.find((r) => String(r["msg"]).includes("REQ-1"));
  assert.ok(http, lines.join(""));
  assert.equal(http["level"], "debug", "the library demotes the SDK's HTTP chatter to debug");
  assert.ok(out.some((r) => r["level"] === "debug" && r["msg"] === "verbose detail"));
  const all = lines.join("");
  assert.ok(!all.includes("attack at dawn"), all);
  assert.ok(!all.includes("syt_secret_token"), all);
  assert.ok(all.includes("m.text") && all.includes("!r:example.org"), "harmless parts stay");

  // The level applies to library lines like to ours.
  logger.configure({ level: "warn" });
  lines.length = 0;
  new LibraryLogger("Bridge").info("quiet now");
  new LibraryLogger("Bridge").error("loud");
  await flush();
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { msg: string }).msg), ["loud"]);
});
