// The metrics listener: /metrics (Prometheus text format), /health (the process is up and serving) and /ready
// (the checks the caller passes in: homeserver reachable, store open, appservice listening). It is its own HTTP
// server on its own address, never the appservice port: the library's built-in /metrics on the appservice port is
// unauthenticated and reachable by whoever reaches the homeserver-facing listener.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export interface Readiness {
  ok: boolean;
  /** Named checks, each passing or not, e.g. { homeserver: true, store: true, appservice: false }. */
  checks: Record<string, boolean>;
}

export interface MetricsServerOptions {
  bind: string;
  /** 0 picks a free port (tests); read the chosen one from the result. */
  port: number;
  registry: Registry;
  readiness: () => Promise<Readiness>;
  /** A readiness probe that has not answered after this long counts as not ready. */
  readinessTimeoutMs?: number;
}

export interface MetricsServer {
  readonly port: number;
  readonly address: string;
  close(): Promise<void>;
}

export class MetricsServerError extends Error {
  constructor(
    readonly code: "metrics-listen-failed",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "MetricsServerError";
  }
}

const DEFAULT_READINESS_TIMEOUT_MS = 5000;

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    handle(req, res, opts).catch(() => {
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    });
  });
  // Scrapes are short; do not let idle keep-alive sockets hold shutdown up.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) =>
      reject(new MetricsServerError("metrics-listen-failed", `cannot listen on ${opts.bind}:${opts.port} for metrics: ${err.code ?? err.message}`, { cause: err }));
    server.once("error", onError);
    server.listen(opts.port, opts.bind, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    port: addr.port,
    address: addr.address,
    close: () => closeServer(server),
  };
}

async function handle(req: IncomingMessage, res: ServerResponse, opts: MetricsServerOptions): Promise<void> {
  const path = (req.url ?? "/").split("?")[0];
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
  }
  switch (path) {
    case "/metrics":
      return send(res, 200, opts.registry.contentType, await opts.registry.metrics());
    case "/health":
      return send(res, 200, "application/json", JSON.stringify({ status: "ok" }) + "\n");
    case "/ready": {
      const r = await readinessWithTimeout(opts);
      return send(res, r.ok ? 200 : 503, "application/json", JSON.stringify(r) + "\n");
    }
    default:
      return send(res, 404, "text/plain; charset=utf-8", "not found: try /metrics, /health or /ready\n");
  }
}

async function readinessWithTimeout(opts: MetricsServerOptions): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, checks: { readiness_timeout: false } }), opts.readinessTimeoutMs ?? DEFAULT_READINESS_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([opts.readiness().catch(() => ({ ok: false, checks: { readiness_error: false } })), timeout]);
    // A check that failed makes the whole answer not ready, whatever `ok` says.
    return { ok: r.ok && Object.values(r.checks).every(Boolean), checks: r.checks };
  } finally {
    clearTimeout(timer);
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store", "Content-Length": Buffer.byteLength(body) });
  res.end(res.req.method === "HEAD" ? undefined : body);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
