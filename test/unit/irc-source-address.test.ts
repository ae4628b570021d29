import { test } from "node:test";
import assert from "node:assert/strict";
import { sourceAddressFor } from "../../src/irc/source-address.js";

test("a user always gets the same source address, users spread over all of them, none configured = system choice", () => {
  const pool = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
  assert.equal(sourceAddressFor("@alice:example.org", []), undefined);
  assert.equal(sourceAddressFor("@alice:example.org", pool), sourceAddressFor("@alice:example.org", [...pool]));
  const used = new Set(Array.from({ length: 60 }, (_, i) => sourceAddressFor(`@user${i}:example.org`, pool)));
  assert.deepEqual([...used].sort(), pool);
});
