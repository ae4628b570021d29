// The OTR session manager's small parts: key generation in a worker thread, peer HTML rendering, `!otr` parsing,
// policy names, and the fragment size a peer's conversation sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKey, keygenPool } from "../../src/bridge/otr/keygen.js";
import { renderPeerText } from "../../src/bridge/otr/html.js";
import { carriesSecret, otrCommandArgs, parseOtrCommand } from "../../src/bridge/otr/command.js";
import { presetFor } from "../../src/bridge/otr/policy.js";
import { Peer } from "../../src/bridge/otr/peer.js";
import { dsaSign, dsaVerify, dsaPublicKey } from "../../src/otr/crypto/dsa.js";
import { MIN_FRAGMENT_SIZE, OtrAccount, OtrConversation, POLICY } from "../../src/otr/index.js";
import type { DmContext } from "../../src/bridge/dm-pipeline.js";
import { TestEnv, testKey } from "../otr/fixtures.js";

test("key generation runs off the event loop: the loop keeps ticking meanwhile, and the key signs and verifies", { timeout: 120_000 }, async () => {
  let ticks = 0;
  let running = true;
  const tick = () => {
    ticks++;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const key = await generateKey();
  running = false;
  assert.ok(ticks >= 5, `the loop ticked ${ticks} times while the key was made`);
  assert.equal(key.p.toString(2).length, 1024);
  assert.equal(key.q.toString(2).length, 160);
  const env = new TestEnv("sig");
  const h = new Uint8Array(32).fill(7);
  assert.ok(dsaVerify(dsaPublicKey(key), h, dsaSign(key, h, env)));
});

test("key generation pool: more requests than it makes at once are all served, in arrival order, each with its own valid key", { timeout: 120_000 }, async () => {
  const generate = keygenPool(1);
  const order: number[] = [];
  const keys = await Promise.all([0, 1, 2].map((i) => generate().then((k) => { order.push(i); return k; })));
  assert.deepEqual(order, [0, 1, 2], "one at a time, first asked first served");
  assert.equal(new Set(keys.map((k) => k.x.toString(16))).size, 3, "three different keys");
  const env = new TestEnv("pool");
  const h = new Uint8Array(32).fill(9);
  for (const k of keys) assert.ok(dsaVerify(dsaPublicKey(k), h, dsaSign(k, h, env)));
});

test("peer HTML: whitelisted tags kept, everything else escaped or dropped; plain text untouched", () => {
  assert.deepEqual(renderPeerText("a <b and c> d <3"), { body: "a <b and c> d <3" });
  assert.deepEqual(renderPeerText("x &lt;y&gt;"), { body: "x <y>" });
  const r = renderPeerText('<FONT color="red"><I>hi</I></FONT><br/>line2 <a href="javascript:alert(1)">bad</a> <u>"q"</u>');
  assert.equal(r.body, 'hi\nline2 bad "q"');
  assert.equal(r.formattedBody, "<i>hi</i><br>line2 bad <u>&quot;q&quot;</u>");
  const open = renderPeerText("<b>never closed <i>nested");
  assert.equal(open.formattedBody, "<b>never closed <i>nested</i></b>");
  const attr = renderPeerText('<a href="https://e.org/?a=1&amp;b=&quot;x">l</a>');
  assert.equal(attr.formattedBody, '<a href="https://e.org/?a=1&amp;b=&quot;x">l</a>');
});

test("!otr parsing: every input maps to one command; secrets are recognised for redaction even when malformed", () => {
  assert.equal(otrCommandArgs("hello"), null);
  assert.equal(otrCommandArgs("!otrx"), null);
  assert.equal(otrCommandArgs("!OTR  start "), "start");
  assert.equal(otrCommandArgs("!otr"), "");
  assert.deepEqual(parseOtrCommand(""), { name: "help" });
  assert.deepEqual(parseOtrCommand("smp  two words "), { name: "smp", secret: "two words" });
  assert.deepEqual(parseOtrCommand("ask Where? ; in the park"), { name: "ask", question: "Where?", secret: "in the park" });
  assert.equal(parseOtrCommand("ask no separator").name, "invalid");
  assert.deepEqual(parseOtrCommand("trust AAAA BBBB"), { name: "trust", fingerprint: "AAAA BBBB" });
  assert.deepEqual(parseOtrCommand("policy ALWAYS"), { name: "policy", policy: "always" });
  assert.equal(parseOtrCommand("policy sometimes").name, "invalid");
  assert.equal(parseOtrCommand("start now").name, "invalid");
  assert.equal(parseOtrCommand("frobnicate").name, "invalid");
  assert.ok(carriesSecret("smp"));
  assert.ok(carriesSecret("ASK q"));
  assert.ok(!carriesSecret("smp-abort"));
  assert.ok(!carriesSecret("status"));
});

test("policy names map to the library's presets", () => {
  assert.equal(presetFor("never"), POLICY.NEVER);
  assert.equal(presetFor("manual"), POLICY.MANUAL);
  assert.equal(presetFor("opportunistic"), POLICY.OPPORTUNISTIC);
  assert.equal(presetFor("always"), POLICY.ALWAYS);
});

test("a peer's fragment size follows the connection's budget, capped by config, never below the library minimum", () => {
  let budget = 300;
  const ctx = { ircTextBudget: () => budget } as unknown as DmContext;
  const account = new OtrAccount({ privateKey: testKey(0), instanceTag: 0x1234, policy: POLICY.MANUAL, maxFragmentSize: 0 });
  const freePeer = new Peer(ctx, undefined);
  const free = new OtrConversation(account, "bob", { maxFragmentSize: () => freePeer.fragmentSize() });
  const cappedPeer = new Peer(ctx, 250);
  const capped = new OtrConversation(account, "bob", { maxFragmentSize: () => cappedPeer.fragmentSize() });
  assert.equal(free.maxFragmentSize, 300);
  assert.equal(capped.maxFragmentSize, 250);
  budget = 10;
  assert.equal(free.maxFragmentSize, MIN_FRAGMENT_SIZE);
  budget = 0; // not connected: a size that fits any usual line
  assert.equal(free.maxFragmentSize, 400);
  assert.equal(account.maxFragmentSize, 0, "the shared account is untouched");
});

test("split OTR lines: joined until the '.', short or non-base64 followers are never swallowed, caps hold", async () => {
  const { SplitJoiner, MAX_JOINED_PIECES, JOIN_TIMEOUT_MS } = await import("../../src/bridge/otr/split-join.js");
  const j = new SplitJoiner();
  const head = "?OTR:" + "A".repeat(295);
  assert.deepEqual(j.push(head, 0), []);
  assert.deepEqual(j.push("B".repeat(300), 1), []);
  assert.deepEqual(j.push("C.", 2), [head + "B".repeat(300) + "C."]); // 596 base64 characters
  // A truncated message followed by plain chat: the chat goes through as itself.
  assert.deepEqual(j.push(head, 3), []);
  assert.deepEqual(j.push("ok", 4), [head, "ok"]);
  assert.deepEqual(j.push("hello there, not base64!", 5), ["hello there, not base64!"]);
  // Short OTR lines and OTR fragments are never held.
  assert.deepEqual(j.push("?OTR:AAMD.", 6), ["?OTR:AAMD."]);
  assert.deepEqual(j.push("?OTR|1|2,1,2,abc,", 7), ["?OTR|1|2,1,2,abc,"]);
  // Too old: the buffer goes on as it is.
  assert.deepEqual(j.push(head, 10), []);
  assert.deepEqual(j.push("D".repeat(300), 10 + JOIN_TIMEOUT_MS + 1), [head, "D".repeat(300)]);
  // Too many pieces.
  const k = new SplitJoiner();
  k.push(head, 0);
  let released: string[] = [];
  for (let i = 0; i < MAX_JOINED_PIECES + 2 && released.length === 0; i++) released = k.push("E".repeat(300), 1);
  assert.equal(released.length, 2);
});
