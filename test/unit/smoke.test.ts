import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Bridge } from "matrix-appservice-bridge";

// The native Matrix crypto binding is replaced by a local package; the bridge library must still load,
// and any real use of Matrix-side encryption must fail with a clear error.
test("matrix-appservice-bridge loads with the crypto binding replaced", async () => {
  assert.equal(typeof Bridge, "function");
  const crypto = createRequire(import.meta.url)("@matrix-org/matrix-sdk-crypto-nodejs");
  assert.throws(() => new crypto.OlmMachine(), /Matrix-side encryption is not available/);
});
