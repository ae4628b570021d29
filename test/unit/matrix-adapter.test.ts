import { test } from "node:test";
import assert from "node:assert/strict";
import { stripReplyFallback, MatrixAdapter } from "../../src/matrix/adapter.js";

test("reply fallbacks are stripped to the answer; ordinary quotes are kept", () => {
  assert.equal(stripReplyFallback("> <@bob:x> original\n> more\n\nmy answer"), "my answer");
  assert.equal(stripReplyFallback("> <@bob:x> original\n\nline 1\nline 2"), "line 1\nline 2");
  assert.equal(stripReplyFallback("> just a quote"), "> just a quote");
  assert.equal(stripReplyFallback("> quote\nno blank line"), "> quote\nno blank line");
  assert.equal(stripReplyFallback("plain"), "plain");
});

test("the adapter derives the bot id from the registration and refuses one without sender_localpart", () => {
  const base = { homeserverUrl: "http://127.0.0.1:1", domain: "example.org", ghostTemplate: "irc_{network}_{nick}", networkIds: ["libera"], onError() {} };
  const a = new MatrixAdapter({ ...base, registration: { sender_localpart: "ircotr", as_token: "a", hs_token: "h" } });
  assert.equal(a.botUserId, "@ircotr:example.org");
  assert.equal(a.ghostUserId("libera", "bob{1}"), "@irc_libera_bob=7b1=7d:example.org");
  assert.deepEqual(a.parseGhost("@irc_libera_bob=7b1=7d:example.org"), { networkId: "libera", foldedNick: "bob{1}" });
  assert.throws(() => new MatrixAdapter({ ...base, registration: {} }), /sender_localpart/);
});

test("stopListening refuses new transactions at once; repeating it and stop() afterwards are fine", { timeout: 60_000 }, async () => {
  const a = new MatrixAdapter({
    homeserverUrl: "http://127.0.0.1:1",
    domain: "example.org",
    ghostTemplate: "irc_{network}_{nick}",
    networkIds: ["libera"],
    registration: { id: "t", url: "http://127.0.0.1", sender_localpart: "ircotr", as_token: "a", hs_token: "h", namespaces: { users: [], aliases: [], rooms: [] } },
    onError() {},
    onLog() {},
  });
  await a.start(0, "127.0.0.1");
  const server = (a as unknown as { bridge: { appService: { server: import("node:http").Server } } }).bridge.appService.server;
  const { port } = server.address() as import("node:net").AddressInfo;
  const put = (txn: string) =>
    fetch(`http://127.0.0.1:${port}/_matrix/app/v1/transactions/${txn}`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: "Bearer h" },
      body: JSON.stringify({ events: [] }),
    });
  assert.equal((await put("1")).status, 200);
  await a.stopListening();
  await assert.rejects(put("2"), "the homeserver cannot deliver: it keeps the transaction and retries");
  await a.stopListening();
  await a.stop();
  await a.stop();
});
