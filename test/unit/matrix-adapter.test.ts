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
