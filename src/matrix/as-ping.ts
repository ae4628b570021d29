// The appservice ping (Matrix 1.7, /_matrix/client/v1/appservice/{id}/ping). After a restart Synapse holds every
// transaction back while it backs off from the appservice that was down (2 s doubling up to 512 s), so messages,
// to-device events and device-list changes would arrive a minute or more late. A successful ping makes Synapse
// retry at once. matrix-appservice 3 has no ping route of its own; this adds it.

interface Express {
  post(path: string, handler: (req: { headers: { authorization?: string } }, res: { status(c: number): { send(b: unknown): unknown }; send(b: unknown): unknown }) => void): void;
}

/** Answers the homeserver's ping (authenticated with the hs_token, as transactions are). */
export function addPingRoute(app: Express, hsToken: string): void {
  app.post("/_matrix/app/v1/ping", (req, res) => {
    if (req.headers.authorization !== `Bearer ${hsToken}`) {
      res.status(403).send({ errcode: "M_FORBIDDEN", error: "Bad token supplied" });
      return;
    }
    res.send({});
  });
}

export type PingResult = { ok: true; ms: number } | { ok: false; status: number; errcode: string };

/** Asks the homeserver to ping us; resolves with what it said (never throws: a failed ping only costs time). */
export async function pingFromHomeserver(homeserverUrl: string, asToken: string, appserviceId: string, timeoutMs = 15_000): Promise<PingResult> {
  try {
    const r = await fetch(`${homeserverUrl.replace(/\/+$/, "")}/_matrix/client/v1/appservice/${encodeURIComponent(appserviceId)}/ping`, {
      method: "POST",
      headers: { authorization: `Bearer ${asToken}`, "content-type": "application/json" },
      body: "{}",
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await r.json().catch(() => ({}))) as { duration_ms?: unknown; errcode?: unknown };
    if (r.ok) return { ok: true, ms: typeof body.duration_ms === "number" ? body.duration_ms : -1 };
    return { ok: false, status: r.status, errcode: typeof body.errcode === "string" ? body.errcode : "unknown" };
  } catch (err) {
    return { ok: false, status: 0, errcode: (err as { name?: string })?.name === "TimeoutError" ? "timeout" : "unreachable" };
  }
}
