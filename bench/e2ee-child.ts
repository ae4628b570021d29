// The bridge side of bench/e2ee.ts's memory figure, in a process of its own so its RSS is clean: a SQLite store
// in a temp dir, an appservice listener the fake homeserver pushes transactions to, and (mode "e2ee") a
// MatrixCrypto with one device per ghost, or (mode "plain") nothing but the listener and plain room sends. Driven
// by the parent over IPC; it answers each command when done. Not a test and not a daemon: bench only.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { MatrixCrypto } from "../src/matrix/crypto/matrix-crypto.js";
import { generateMasterKey, openStore } from "../src/store/index.js";

type Cmd =
  | { cmd: "devices"; users: string[] }
  | { cmd: "send"; pairs: Array<{ room: string; ghost: string }> }
  | { cmd: "measure" }
  | { cmd: "exit" };

const [mode, hsUrl, asToken, domain, dir, maxLoaded] = process.argv.slice(2) as ["e2ee" | "plain", string, string, string, string, string?];
const gc = globalThis.gc as (() => void) | undefined;
if (!gc) throw new Error("bench child needs --expose-gc");
const isGhost = (u: string) => u.startsWith("@irc_") && u.endsWith(`:${domain}`);
const bot = `@irc_bot:${domain}`;

// The wasm module's linear memory, for the report (crypto-wasm instantiates it on first use, after this).
// (The project compiles without the DOM library, so WebAssembly is reached through globalThis.)
interface WasmInstance { exports: Record<string, { buffer?: ArrayBuffer } | undefined> }
const WA = (globalThis as unknown as { WebAssembly: { instantiate: (...a: unknown[]) => Promise<unknown> } }).WebAssembly;
let wasmInstance: WasmInstance | null = null;
const instantiate = WA.instantiate.bind(WA);
WA.instantiate = async (...a: unknown[]) => {
  const r = (await instantiate(...a)) as { instance?: WasmInstance };
  wasmInstance = r.instance ?? (r as unknown as WasmInstance);
  return r;
};
const wasmBytes = () => wasmInstance?.exports["memory"]?.buffer?.byteLength ?? 0;

const store = await openStore({ engine: "sqlite", sqlite_path: join(dir, "bridge.db") }, generateMasterKey());
const crypto = mode === "e2ee" ? await MatrixCrypto.start({
  homeserverUrl: hsUrl, asToken, botUserId: bot, isOurUser: (u) => isGhost(u) && u !== bot, store,
  deviceDisplayName: "bench", onUndecryptable: () => { undecryptable++; }, log: () => undefined,
  ...(maxLoaded ? { maxLoadedDevices: Number(maxLoaded) } : {}),
}) : null;

let received = 0, undecryptable = 0;
let chain: Promise<unknown> = Promise.resolve();
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
    const run = async () => {
      try {
        const events = crypto ? await crypto.transaction(body) : (body["events"] as Array<{ type?: string; sender?: string }>);
        for (const e of events) if (e.type === "m.room.message" && !isGhost(String(e.sender))) received++;
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } catch (err) {
        res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ errcode: "M_UNKNOWN", error: String(err) }));
      }
    };
    chain = chain.then(run, run);
  });
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));

async function pool<T>(items: T[], n: number, fn: (x: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => { while (i < items.length) await fn(items[i++]!); }));
}

const content = { msgtype: "m.text", body: "x".repeat(200) };
process.on("message", (m: Cmd) => void (async () => {
  switch (m.cmd) {
    case "devices":
      if (crypto) await pool(m.users, 4, (u) => crypto.device(u));
      break;
    case "send":
      await pool(m.pairs, 4, async ({ room, ghost }) => {
        if (crypto) { await crypto.send(room, ghost, "m.room.message", content, "invited"); return; }
        const r = await fetch(`${hsUrl}/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${Math.random()}?user_id=${encodeURIComponent(ghost)}`, {
          method: "PUT", headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" }, body: JSON.stringify(content),
        });
        if (!r.ok) throw new Error(`plain send: ${r.status}`);
      });
      break;
    case "measure": {
      await chain;
      // Full collections with pauses between them, then idle until RSS stops falling: V8 keeps the pages the setup
      // freed pooled (resident) until its memory reducer runs, some 8 s into quiet, as it does in a bridge that
      // has gone quiet. Measured right after the setup, the pool alone was +160 MB of RSS for 300 DMs.
      for (let i = 0; i < 6; i++) { gc(); await new Promise((r) => setTimeout(r, 500)); }
      const settleStart = Date.now();
      let last = process.memoryUsage().rss;
      for (;;) {
        await new Promise((r) => setTimeout(r, 2_000));
        const rss = process.memoryUsage().rss;
        const quiet = Date.now() - settleStart >= 12_000;
        if ((quiet && last - rss < 1024 * 1024) || Date.now() - settleStart > 60_000) break;
        last = rss;
      }
      process.send!({ done: "measure", memory: { ...process.memoryUsage(), wasm: wasmBytes() }, received, undecryptable, loaded: crypto ? (crypto as { loadedDevices?: number }).loadedDevices ?? -1 : 0 });
      return;
    }
    case "exit":
      await crypto?.stop();
      await store.close();
      server.close();
      process.send!({ done: "exit" });
      process.disconnect();
      return;
  }
  process.send!({ done: m.cmd });
})().catch((err) => { process.send!({ error: String((err as Error)?.stack ?? err) }); }));

process.send!({ ready: (server.address() as AddressInfo).port });
