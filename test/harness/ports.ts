// Free loopback TCP ports for servers started by tests. The kernel picks an unused ephemeral port when we listen
// on port 0; we release it at once and hand the number to the server. A narrow race with another process taking
// it remains, which is why callers wait for *their* server to answer rather than for the port to be open.
import { createServer } from "node:net";

export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("no port from listen(0)"));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}
