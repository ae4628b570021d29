// The shared Store suite on a throwaway PostgreSQL cluster, each test on its own database.
import { after, before } from "node:test";
import { randomBytes } from "node:crypto";
import { openStore } from "../../src/store/index.js";
import type { Store, StoreConfig } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { storeContract } from "./suite.js";

let server: PostgresServer;
before(async () => { server = await startPostgres(); });
after(async () => { await server?.stop(); });
const masterKey = new Uint8Array(randomBytes(32));
const configs = new WeakMap<Store, StoreConfig>();

storeContract("postgres", {
  async make() {
    const cfg: StoreConfig = { engine: "postgres", postgres_url: await server.newDatabase() };
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
