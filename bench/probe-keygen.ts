// Probe: RSS growth of N DSA key generations C at a time through the bridge's key generator (src/bridge/otr/keygen.ts).
//   node --expose-gc --import tsx bench/probe-keygen.ts [N=16] [C=16]
import { generateKey } from "../src/bridge/otr/keygen.js";
const N = Number(process.argv[2] ?? 16), C = Number(process.argv[3] ?? 16);
const rss = () => (process.memoryUsage().rss / 1048576).toFixed(1);
console.log(`rss before ${rss()} MiB`);
const t0 = performance.now();
let next = 0;
await Promise.all(Array.from({ length: C }, async () => { while (next++ < N) await generateKey(); }));
console.log(`${N} keys, ${C} at a time: ${((performance.now() - t0) / N).toFixed(0)} ms/key, rss after ${rss()} MiB`);
await new Promise((r) => setTimeout(r, 3000));
(globalThis as any).gc?.();
console.log(`rss 3 s later ${rss()} MiB`);
