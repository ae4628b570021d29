// A loopback TCP proxy between a client under test (the bridge) and a server (ngIRCd) that keeps every byte the
// clients sent, so a test can assert what reached the server — e.g. that a message never went out as plaintext.
// The server's replies pass through untouched (and are kept too, for failure reports).
import { createServer, connect, type Server, type Socket } from "node:net";

export interface TcpTap {
  /** Where clients connect instead of the server. */
  host: string;
  port: number;
  /** Every byte any client sent to the server so far, in arrival order per connection, connections in order of data. */
  sentBytes(): Buffer;
  /** The same as UTF-8 text (IRC lines are UTF-8 here). */
  sentText(): string;
  /** Offset into sentBytes() to pass as `from`, so only later traffic counts. */
  mark(): number;
  /** Text sent after `from`. */
  sentSince(from: number): string;
  /** Whether `needle` (as UTF-8 bytes) was ever sent by a client, from offset `from` on. */
  sawSent(needle: string, from?: number): boolean;
  /** Client lines (CRLF-split) sent after `from`. */
  linesSince(from?: number): string[];
  /** Number of client connections accepted so far. */
  readonly connections: number;
  stop(): Promise<void>;
}

export async function startTcpTap(targetHost: string, targetPort: number, host = "127.0.0.1"): Promise<TcpTap> {
  const chunks: Buffer[] = [];
  let total = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    connections++;
    sockets.add(client);
    const upstream = connect({ host: targetHost, port: targetPort });
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Recorded before forwarding: what the server could see is exactly what the client wrote.
    client.on("data", (d: Buffer) => {
      chunks.push(Buffer.from(d));
      total += d.length;
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => client.write(d));
    const close = () => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream); };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port: 0 }, () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("tcp-tap: no port");
  const all = () => Buffer.concat(chunks, total);
  return {
    host,
    port: addr.port,
    sentBytes: all,
    sentText: () => all().toString("utf8"),
    mark: () => total,
    sentSince: (from) => all().subarray(from).toString("utf8"),
    sawSent: (needle, from = 0) => all().subarray(from).includes(Buffer.from(needle, "utf8")),
    linesSince: (from = 0) => all().subarray(from).toString("utf8").split(/\r?\n/).filter(Boolean),
    get connections() { return connections; },
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
