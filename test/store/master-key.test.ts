// Where the master key comes from, without a database: formats, precedence, creation rules.
import { after, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { formatMasterKey, loadMasterKey, MASTER_KEY_ENV, parseMasterKey, writeMasterKeyFile } from "../../src/store/master-key.js";

const dir = mkdtempSync(join(tmpdir(), "motr-mk-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const keyPath = () => join(dir, `k${++n}`, "nested", "master.key");

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

it("parses 64 hex digits and base64 (standard, url-safe, with or without padding), nothing else", () => {
  const k = new Uint8Array(randomBytes(32));
  const b = Buffer.from(k);
  for (const text of [b.toString("hex"), b.toString("hex").toUpperCase(), ` ${b.toString("hex")}\n`, b.toString("base64"), b.toString("base64").replace(/=$/, ""), b.toString("base64url")]) {
    assert.deepEqual(parseMasterKey(text, "test"), k, text);
  }
  for (const bad of ["", "00", b.toString("hex").slice(2), b.toString("hex") + "00", Buffer.alloc(31).toString("base64"), Buffer.alloc(33).toString("base64"), "g".repeat(64)]) {
    assert.equal(code(() => parseMasterKey(bad, "test")), "master-key-malformed", bad);
  }
});

it("prefers the environment over the key file and never creates a file then", () => {
  const path = keyPath();
  const k = new Uint8Array(randomBytes(32));
  const r = loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: false, env: { [MASTER_KEY_ENV]: formatMasterKey(k) } });
  assert.deepEqual(r, { key: k, source: "env", path: null });
  assert.equal(existsSync(path), false);
  assert.equal(code(() => loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: false, env: { [MASTER_KEY_ENV]: "short" } })), "master-key-malformed");
});

it("creates a missing key file (0600, directory 0700) only while the database holds no sealed data", () => {
  const path = keyPath();
  assert.equal(code(() => loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: true, env: {} })), "master-key-missing");
  assert.equal(existsSync(path), false);
  const created = loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: false, env: {} });
  assert.equal(created.source, "created");
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(statSync(join(path, "..")).mode & 0o777, 0o700);
  assert.deepEqual(parseMasterKey(readFileSync(path, "utf8"), "file"), created.key);
  const again = loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: true, env: {} });
  assert.deepEqual(again, { key: created.key, source: "file", path });
});

it("never overwrites an existing key file when creating one", () => {
  const path = keyPath();
  const first = new Uint8Array(randomBytes(32));
  writeMasterKeyFile(path, first, { exclusive: true });
  assert.throws(() => writeMasterKeyFile(path, new Uint8Array(randomBytes(32)), { exclusive: true }), /EEXIST/);
  assert.deepEqual(parseMasterKey(readFileSync(path, "utf8"), "file"), first);
  writeFileSync(path, "garbage");
  assert.equal(code(() => loadMasterKey({ engine: "sqlite", master_key_file: path }, { sealedDataExists: false, env: {} })), "master-key-malformed");
  assert.equal(readFileSync(path, "utf8"), "garbage", "a malformed key file is reported, not replaced");
});
