import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { escapeLocalpart, unescapeLocalpart, GhostNaming } from "../../src/matrix/localpart.js";
import { foldNick } from "../../src/irc/casemap.js";

test("escaped localparts use only the characters Matrix allows", () => {
  assert.equal(escapeLocalpart("bob"), "bob");
  assert.equal(escapeLocalpart("bob{1}|~"), "bob=7b1=7d=7c=7e");
  assert.equal(escapeLocalpart("a=b"), "a=3db");
  assert.equal(escapeLocalpart("Zoë"), "=5ao=c3=ab");
});

test("property: escaping is reversible and always valid", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: 40 }), (s) => {
      const e = escapeLocalpart(s);
      assert.match(e, /^[a-z0-9._=\/-]+$/);
      assert.equal(unescapeLocalpart(e), s);
    }),
    { numRuns: 500 },
  );
});

test("unescape rejects what escape never produces", () => {
  assert.equal(unescapeLocalpart("=zz"), null);
  assert.equal(unescapeLocalpart("=3"), null);
  assert.equal(unescapeLocalpart("=61"), null, "escaped safe character is not canonical");
  assert.equal(unescapeLocalpart("=ff"), null, "invalid UTF-8");
  assert.equal(unescapeLocalpart("A"), null);
});

test("ghost user ids follow the template and parse back to network and folded nick", () => {
  const g = new GhostNaming("irc_{network}_{nick}", "example.org");
  const nick = foldNick("Bob[away]");
  const id = g.userId("my-net", nick);
  assert.equal(id, "@irc_my-net_bob=7baway=7d:example.org");
  assert.deepEqual(g.parse(id, ["other", "my-net"]), { networkId: "my-net", foldedNick: "bob{away}" });
  assert.equal(g.parse(id, ["other"]), null);
  assert.equal(g.parse("@irc_my-net_bob:elsewhere.org", ["my-net"]), null);
  assert.equal(g.parse("@alice:example.org", ["my-net"]), null);
  assert.equal(g.parse("@irc_my-net_:example.org", ["my-net"]), null);
  assert.equal(g.userId("my-net", foldNick("BOB[away]")), id, "one ghost per IRC user, whatever the case");
  assert.ok(new RegExp(`^${g.namespaceRegex()}$`).test(id));
  assert.ok(!new RegExp(`^${g.namespaceRegex()}$`).test("@alice:example.org"));
});

test("a template without both placeholders is refused", () => {
  assert.throws(() => new GhostNaming("irc_{nick}", "x"), /needs \{network\} and \{nick\}/);
});
