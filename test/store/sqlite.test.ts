// The shared Store suite on SQLite, each test on its own database file.
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { openStore } from "../../src/store/index.js";
import type { Store, StoreConfig } from "../../src/store/types.js";
import { storeContract } from "./suite.js";

const dir = mkdtempSync(join(tmpdir(), "motr-sqlite-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const masterKey = new Uint8Array(randomBytes(32));
const configs = new WeakMap<Store, StoreConfig>();

storeContract("sqlite", {
  async make() {
    const cfg: StoreConfig = { engine: "sqlite", sqlite_path: join(dir, `${randomBytes(6).toString("hex")}.db`) };
    const s = await openStore(cfg, masterKey);
    configs.set(s, cfg);
    return s;
  },
  async reopen(s) {
    const cfg = configs.get(s)!;
    await s.close();
    const t = await openStore(cfg, masterKey);
    configs.set(t, cfg);
    return t;
  },
});
