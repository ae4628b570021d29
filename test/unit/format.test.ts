import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ircToMatrix, stripIrcFormatting } from "../../src/irc/format.js";
import { htmlToIrc, nearestColour } from "../../src/matrix/format.js";

describe("mIRC formatting to Matrix HTML", () => {
  it("plain text has no formatted body", () => {
    assert.deepEqual(ircToMatrix("hello <world> & co"), { body: "hello <world> & co", html: null });
  });
  it("bold, italic, underline, strike, monospace", () => {
    const r = ircToMatrix("a \x02bold\x02 \x1dit\x1d \x1fun\x1f \x1es\x1e \x11m\x11");
    assert.equal(r.body, "a bold it un s m");
    assert.equal(r.html, "a <b>bold</b> <i>it</i> <u>un</u> <del>s</del> <code>m</code>");
  });
  it("colours with background, reset, and escaping", () => {
    const r = ircToMatrix("\x0304,01red<\x0f plain \x0312blue");
    assert.equal(r.body, "red< plain blue");
    assert.equal(r.html, '<font data-mx-color="#ff0000" data-mx-bg-color="#000000">red&lt;</font> plain <font data-mx-color="#0000fc">blue</font>');
  });
  it("a comma after a colour without digits stays text", () => {
    assert.equal(ircToMatrix("\x034,x").body, ",x");
    assert.equal(stripIrcFormatting("\x0399,99z\x02"), "z");
  });
  it("overlapping styles stay well nested", () => {
    const r = ircToMatrix("\x02b\x1dbi\x02i\x1d");
    assert.equal(r.html, "<b>b</b><b><i>bi</i></b><i>i</i>");
  });
});

describe("Matrix HTML to mIRC formatting", () => {
  it("tags become codes, entities decode, breaks become newlines", () => {
    assert.equal(htmlToIrc("<strong>B</strong> <em>I</em> <u>U</u> <del>S</del> <code>C</code> &lt;&amp;&gt;<br>next"), "\x02B\x02 \x1dI\x1d \x1fU\x1f \x1eS\x1e \x11C\x11 <&>\nnext");
  });
  it("colours map to the nearest mIRC colour", () => {
    assert.equal(htmlToIrc('<font data-mx-color="#ff0000" data-mx-bg-color="#000000">red</font>'), "\x0304,01red\x03");
    assert.equal(nearestColour("#fe0101"), 4);
    assert.equal(nearestColour("nope"), null);
  });
  it("mentions of ghosts become nicks; other links keep their target", () => {
    const mention = (u: string) => (u === "@irc_local_bob:hs" ? "Bob" : null);
    assert.equal(htmlToIrc('<a href="https://matrix.to/#/@irc_local_bob:hs">Bob (IRC)</a>: hi', { mention }), "Bob: hi");
    assert.equal(htmlToIrc('<a href="https://matrix.to/#/@carol:hs">Carol</a>', { mention }), "Carol");
    assert.equal(htmlToIrc('see <a href="https://example.org/x">this</a>'), "see this (https://example.org/x)");
  });
  it("reply quotes are dropped and paragraphs become lines", () => {
    assert.equal(htmlToIrc("<mx-reply><blockquote>old <b>x</b></blockquote></mx-reply><p>one</p><p>two</p>"), "one\ntwo");
  });
  it("round trips: IRC colours and bold through Matrix and back", () => {
    for (const text of ["\x02bold\x02 and \x0304red\x03 text", "\x0303,01green on black\x03 tail", "\x02\x0312b\x03\x02"]) {
      const html = ircToMatrix(text).html!;
      assert.ok(html);
      const back = htmlToIrc(html);
      assert.equal(ircToMatrix(back).html, html, JSON.stringify({ text, back }));
      assert.equal(stripIrcFormatting(back), stripIrcFormatting(text));
    }
  });
});
