// Case mapping from ISUPPORT: `[]\` are the upper case of `{}|` under rfc1459 (and strict-rfc1459), not under ascii.
import { test } from "node:test";
import assert from "node:assert/strict";
import { foldNick, parseCaseMapping, sameNick } from "../../src/irc/casemap.js";

test("rfc1459: []\\^ fold to {}|~, so Bob[1]\\ and bob{1}| are one nick", () => {
  assert.ok(sameNick("Bob[1]\\", "bob{1}|", "rfc1459"));
  assert.ok(sameNick("a^", "A~", "rfc1459"));
  assert.equal(foldNick("[]\\", "rfc1459"), "{}|");
});

test("strict-rfc1459 folds []\\ but not ^", () => {
  assert.ok(sameNick("x[]\\", "X{}|", "strict-rfc1459"));
  assert.ok(!sameNick("a^", "a~", "strict-rfc1459"));
});

test("ascii folds only A-Z", () => {
  assert.ok(sameNick("BOB", "bob", "ascii"));
  assert.ok(!sameNick("bob[", "bob{", "ascii"));
});

test("CASEMAPPING values from ISUPPORT; anything unknown stays rfc1459 (the RFC default)", () => {
  assert.equal(parseCaseMapping("ascii"), "ascii");
  assert.equal(parseCaseMapping("STRICT-RFC1459"), "strict-rfc1459");
  assert.equal(parseCaseMapping("rfc7613"), "rfc1459");
  assert.equal(parseCaseMapping(undefined), "rfc1459");
});
