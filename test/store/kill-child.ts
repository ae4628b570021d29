// Child process of kill.test.ts: opens the store, says "ready", waits for "go", then writes an endless burst of
// keys, trust records, DM room mappings and crypto states, printing "ack <i>" after each write has resolved. The parent kills it
// with SIGKILL at a random point and checks what survived. Stdout to a pipe is synchronous on Linux, so an ack the
// parent reads was written after the store call resolved.
import { createInterface } from "node:readline";
import { openStore } from "../../src/store/index.js";
import { parseMasterKey } from "../../src/store/master-key.js";
import type { StoreConfig } from "../../src/store/types.js";
import { writeStep } from "./kill-steps.js";

const cfg = JSON.parse(process.env.KILL_STORE_CFG!) as StoreConfig;
const key = parseMasterKey(process.env.KILL_MASTER_KEY!, "KILL_MASTER_KEY");
const generation = Number(process.env.KILL_GENERATION);

const store = await openStore(cfg, key);
process.stdout.write("ready\n");
const rl = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => rl.once("line", () => resolve()));
for (let i = 0; ; i++) {
  await writeStep(store, generation, i);
  process.stdout.write(`ack ${i}\n`);
}
