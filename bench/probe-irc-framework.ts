// Probe: heap and RSS per connected irc-framework Client (what each puppet carries), N clients on a local ngIRCd.
//   node --expose-gc --import tsx bench/probe-irc-framework.ts [N=200]
import irc from "irc-framework";
import { startNgircd } from "../test/harness/ngircd.js";
const N = Number(process.argv[2] ?? 200);
const gc = globalThis.gc as () => void;
const s = await startNgircd({ maxConnectionsIP: 0 });
gc(); const h0 = process.memoryUsage();
const clients: any[] = [];
for (let i = 0; i < N; i++) {
  const c = new irc.Client();
  await new Promise<void>((r) => { c.once("registered", () => r()); c.connect({ host: s.host, port: s.port, nick: `p${i}`, username: "u", gecos: "g", auto_reconnect: false, version: "" }); });
  clients.push(c);
}
await new Promise((r) => setTimeout(r, 1000));
gc(); const h1 = process.memoryUsage();
console.log(`irc-framework: ${N} clients, heap/client ${((h1.heapUsed - h0.heapUsed) / N / 1024).toFixed(1)} KiB, rss/client ${((h1.rss - h0.rss) / N / 1024).toFixed(1)} KiB, external/client ${((h1.external - h0.external) / N / 1024).toFixed(1)} KiB`);
for (const c of clients) c.quit("bye");
await new Promise((r) => setTimeout(r, 500));
await s.stop(); process.exit(0);
