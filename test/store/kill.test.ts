// Crash safety (issue 5): a child writing a burst of keys, trust records, room mappings and Matrix crypto states
// (the caller acknowledges Matrix transactions once putCryptoState resolves) is killed with SIGKILL
// at a random point, 50 times on one SQLite database (and on PostgreSQL). After every kill the store opens and
// holds exactly a prefix of the burst that covers every acknowledged write: nothing acknowledged is lost, nothing
// is half-written, nothing after the one write in flight exists.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomInt } from "node:crypto";
import { createInterface } from "node:readline";
import { openStore } from "../../src/store/index.js";
import { formatMasterKey } from "../../src/store/master-key.js";
import type { StoreConfig } from "../../src/store/types.js";
import { startPostgres, type PostgresServer } from "../harness/postgres.js";
import { highestListed, stepPresent } from "./kill-steps.js";

const CHILD = new URL("./kill-child.ts", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "motr-kill-"));
let server: PostgresServer | undefined;
before(async () => { server = await startPostgres(); });
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Warm {
  child: ChildProcess;
  generation: number;
  ready: Promise<void>;
  acks: number[];
  exited: Promise<void>;
  /** Set when the child ended on its own (a crash of the writer, not our kill). */
  failure: () => Error | null;
}

function spawnChild(cfg: StoreConfig, key: Uint8Array, generation: number): Warm {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD], {
    env: { ...process.env, KILL_STORE_CFG: JSON.stringify(cfg), KILL_MASTER_KEY: formatMasterKey(key), KILL_GENERATION: String(generation) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const acks: number[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const lines = createInterface({ input: child.stdout! });
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => { onReady = res; onFail = rej; });
  lines.on("line", (l) => {
    if (l === "ready") onReady();
    else if (l.startsWith("ack ")) acks.push(Number(l.slice(4)));
  });
  // "close" on stdout: every ack the child managed to write has been read.
  const exited = new Promise<void>((res) => lines.once("close", () => res()));
  let failure: Error | null = null;
  child.once("exit", (code, signal) => {
    if (signal !== "SIGKILL") {
      failure = new Error(`child exited on its own (${code ?? signal}): ${stderr}`);
      onFail(failure);
    }
  });
  return { child, generation, ready, acks, exited, failure: () => failure };
}

async function runKills(cfg: StoreConfig, rounds: number): Promise<{ acked: number; inFlightSurvived: number }> {
  const key = new Uint8Array(randomBytes(32));
  await (await openStore(cfg, key)).close(); // create the schema and canary once
  let acked = 0;
  let inFlightSurvived = 0;
  // Two warm children: the next one starts (tsx, open) while the current one is being killed and checked.
  let next: Warm | undefined = spawnChild(cfg, key, 0);
  let cur: Warm | undefined;
  try {
    for (let g = 0; g < rounds; g++) {
      const w: Warm = next!;
      cur = w;
      next = g + 1 < rounds ? spawnChild(cfg, key, g + 1) : undefined;
      await w.ready;
      // Kill after a random number of acks (0 = before the first write finished), then let the child run on for a
      // random few milliseconds so the kill lands anywhere inside a write, not just between an ack and the next one.
      const target = randomInt(0, 90);
      w.child.stdin!.write("go\n");
      await new Promise<void>((res, rej) => {
        const poll = () => (w.failure() ? rej(w.failure()) : w.acks.length >= target ? res() : setTimeout(poll, 1));
        poll();
      });
      await new Promise((res) => setTimeout(res, randomInt(0, 4)));
      w.child.kill("SIGKILL");
      await w.exited;

      const lastAck = w.acks.length ? w.acks[w.acks.length - 1]! : -1;
      assert.deepEqual(w.acks, [...Array(w.acks.length).keys()], "acks arrive in order");
      const store = await openStore(cfg, key); // must always open after a kill
      try {
        for (let i = 0; i <= lastAck; i++) assert.ok(await stepPresent(store, g, i), `round ${g}: acknowledged step ${i} of ${lastAck} lost`);
        const inFlight = await stepPresent(store, g, lastAck + 1);
        if (inFlight) inFlightSurvived++;
        for (let i = lastAck + 2; i <= lastAck + 6; i++) assert.equal(await stepPresent(store, g, i), false, `round ${g}: step ${i} exists beyond the write in flight`);
        assert.ok((await highestListed(store, g)) <= lastAck + 1, `round ${g}: a listed row lies beyond the write in flight`);
      } finally {
        await store.close();
      }
      acked += w.acks.length;
    }
  } finally {
    // A failed round must not leave a warm child waiting for "go" and keeping the test process alive.
    for (const w of [cur, next]) if (w && w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
  }
  return { acked, inFlightSurvived };
}

describe("SIGKILL during a burst of writes", { timeout: 600_000 }, () => {
  it("SQLite: 50 kills, always opens, always a consistent prefix of what was acknowledged", async (t) => {
    const cfg: StoreConfig = { engine: "sqlite", sqlite_path: join(dir, "kill.db") };
    const { acked, inFlightSurvived } = await runKills(cfg, 50);
    t.diagnostic(`${acked} acknowledged writes; the unacknowledged write in flight survived ${inFlightSurvived} of 50 kills`);
    assert.ok(acked > 50, `the children did write (${acked} acks)`);
  });

  it("PostgreSQL: 50 kills, same guarantees", async (t) => {
    const cfg: StoreConfig = { engine: "postgres", postgres_url: await server!.newDatabase() };
    const { acked, inFlightSurvived } = await runKills(cfg, 50);
    t.diagnostic(`${acked} acknowledged writes; the unacknowledged write in flight survived ${inFlightSurvived} of 50 kills`);
    assert.ok(acked > 50, `the children did write (${acked} acks)`);
  });
});
