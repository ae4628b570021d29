import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { buildLine, splitMessage, textBudget, utf8Bytes, IrcLineError, IRC_MAX_LINE_BYTES } from "../../src/irc/sanitize.js";
import { foldNick, sameNick, parseCaseMapping } from "../../src/irc/casemap.js";

const PREFIX = { nick: "alice", user: "~alice", host: "h".repeat(63) };

test("CR, LF and CRLF become separate messages and never reach a line", () => {
  const parts = splitMessage("hello\r\nQUIT :x\rNICK y\nend", 400);
  assert.deepEqual(parts, ["hello", "QUIT :x", "NICK y", "end"]);
  for (const p of parts) assert.doesNotMatch(p, /[\r\n\0]/);
});

test("NUL is removed and empty lines are skipped", () => {
  assert.deepEqual(splitMessage("a\0b\n\n\r\n   \nc", 400), ["ab", "c"]);
});

test("buildLine refuses CR, LF, NUL in any part and spaces or ':' in middle params", () => {
  assert.throws(() => buildLine("PRIVMSG", ["bob"], "x\r\nQUIT"), IrcLineError);
  assert.throws(() => buildLine("PRIVMSG", ["bob"], "x\0"), IrcLineError);
  assert.throws(() => buildLine("PRIVMSG", ["bob\nQUIT"], "x"), IrcLineError);
  assert.throws(() => buildLine("PRIVMSG", ["bob evil"], "x"), IrcLineError);
  assert.throws(() => buildLine("PRIVMSG", [":bob"], "x"), IrcLineError);
  assert.throws(() => buildLine("PRIVMSG", [""], "x"), IrcLineError);
  assert.throws(() => buildLine("PRIV MSG", ["bob"], "x"), IrcLineError);
  assert.equal(buildLine("PRIVMSG", ["bob"], "hi there"), "PRIVMSG bob :hi there");
  assert.equal(buildLine("NICK", ["new"]), "NICK new");
});

test("buildLine refuses a line over 512 bytes", () => {
  assert.throws(() => buildLine("PRIVMSG", ["bob"], "x".repeat(520)), (e: IrcLineError) => e.code === "line-too-long");
});

test("text budget accounts for the prefix the server prepends", () => {
  const b = textBudget(PREFIX, "PRIVMSG", "bob");
  const relayed = `:${PREFIX.nick}!${PREFIX.user}@${PREFIX.host} PRIVMSG bob :${"x".repeat(b)}\r\n`;
  assert.equal(utf8Bytes(relayed), IRC_MAX_LINE_BYTES);
  assert.ok(textBudget({ nick: "alice" }, "PRIVMSG", "bob") <= b, "unknown user/host assumed at maximum");
});

test("long ASCII splits at spaces and stays within budget", () => {
  const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(" ");
  const parts = splitMessage(words, 100);
  for (const p of parts) assert.ok(utf8Bytes(p) <= 100);
  assert.equal(parts.join(" "), words, "every break replaces exactly one space");
  assert.ok(parts.every((p) => !p.startsWith(" ") && !p.endsWith(" ")), "no piece starts or ends with the break space");
});

test("emoji, flags and combining marks are never cut inside a grapheme", () => {
  const family = "👨‍👩‍👧‍👦"; // 25 bytes, one grapheme
  const accented = "e\u0301\u0302"; // 5 bytes, one grapheme
  const text = (family + accented + "日本語").repeat(60);
  const budget = textBudget(PREFIX, "PRIVMSG", "bob");
  const parts = splitMessage(text, budget);
  const seg = new Intl.Segmenter(undefined, { granularity: "grapheme" });
  for (const p of parts) {
    assert.ok(utf8Bytes(p) <= budget);
    assert.ok(!p.startsWith("\u200d") && !/^[\u0300-\u036f]/.test(p), "no piece starts mid-grapheme");
  }
  assert.equal(parts.join(""), text);
  const total = [...seg.segment(text)].length;
  assert.equal(parts.reduce((n, p) => n + [...seg.segment(p)].length, 0), total, "grapheme count preserved");
});

test("a grapheme bigger than the budget falls back to code point boundaries", () => {
  const monster = "a" + "\u0301".repeat(200); // 401 bytes, one grapheme
  const parts = splitMessage(monster, 50);
  for (const p of parts) assert.ok(utf8Bytes(p) <= 50);
  assert.equal(parts.join(""), monster);
});

test("property: any text splits into pieces within budget, without CR/LF/NUL, losing only those and blank lines", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 400 }), fc.integer({ min: 4, max: 120 }), (text, budget) => {
      const parts = splitMessage(text, budget);
      for (const p of parts) {
        assert.ok(utf8Bytes(p) <= budget);
        assert.doesNotMatch(p, /[\r\n\0]/);
        assert.ok(!/[\ud800-\udbff]$/.test(p) && !/^[\udc00-\udfff]/.test(p), "no split surrogate pair");
        buildLine("PRIVMSG", ["bob"], p);
      }
      const lines = text.split(/\r\n|\r|\n/).map((l) => l.replace(/\0/g, "")).filter((l) => l.trim() !== "");
      // Breaks at a space drop that one space; everything else is kept, in order.
      assert.equal(parts.join("").replace(/ /g, ""), lines.join("").replace(/ /g, ""));
      if (!lines.some((l) => l.includes(" "))) assert.equal(parts.join(""), lines.join(""));
    }),
    { numRuns: 300 },
  );
});

test("rfc1459 case mapping folds []\\^ to {}|~, ascii does not", () => {
  assert.equal(foldNick("Bob[1]\\^"), "bob{1}|~");
  assert.ok(sameNick("[]\\", "{}|"));
  assert.ok(!sameNick("[]\\", "{}|", "ascii"));
  assert.equal(foldNick("ABC[]", "ascii"), "abc[]");
  assert.equal(foldNick("A^", "strict-rfc1459"), "a^");
  assert.equal(parseCaseMapping("ascii"), "ascii");
  assert.equal(parseCaseMapping(undefined), "rfc1459");
  assert.equal(parseCaseMapping("unicode-whatever"), "rfc1459");
});
