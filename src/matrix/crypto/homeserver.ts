// Client-server API calls made on behalf of one of the bridge's devices. An appservice has no access token per
// ghost: it masquerades with its own token plus `user_id` and, for device-bound calls, `device_id` (MSC4190 /
// MSC3202). Errors carry the Matrix errcode, never a request body (bodies hold keys and ciphertext).

export class HomeserverError extends Error {
  constructor(readonly status: number, readonly errcode: string, message: string) {
    super(message);
    this.name = "HomeserverError";
  }
  get code(): string {
    return "homeserver-" + (this.errcode || String(this.status));
  }
}

export interface CryptoHttpObserver {
  /** One call to the homeserver: what for (`keys_upload`, `to_device`, ...), how long, and whether it worked. */
  request(kind: string, seconds: number, ok: boolean): void;
}

/** How many times a 429 or a 5xx is retried, and the longest wait between tries. */
const MAX_RETRIES = 5;
const MAX_BACKOFF_MS = 10_000;

export class Homeserver {
  constructor(
    private readonly baseUrl: string,
    private readonly asToken: string,
    private readonly observer?: CryptoHttpObserver,
  ) {}

  /** Returns the response body as text (crypto-wasm wants the raw JSON of responses). */
  async call(kind: string, method: string, path: string, body: string | object | undefined, userId: string, deviceId?: string): Promise<string> {
    const q = `user_id=${encodeURIComponent(userId)}` + (deviceId ? `&device_id=${encodeURIComponent(deviceId)}&org.matrix.msc3202.device_id=${encodeURIComponent(deviceId)}` : "");
    const url = `${this.baseUrl.replace(/\/+$/, "")}${path}${path.includes("?") ? "&" : "?"}${q}`;
    const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
    const started = performance.now();
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers: { authorization: `Bearer ${this.asToken}`, ...(payload !== undefined ? { "content-type": "application/json" } : {}) },
          ...(payload !== undefined ? { body: payload } : {}),
          signal: AbortSignal.timeout(60_000),
        });
      } catch (err) {
        if (attempt < MAX_RETRIES) { await sleep(backoff(attempt)); continue; }
        this.observer?.request(kind, (performance.now() - started) / 1000, false);
        throw Object.assign(new Error(`${kind}: homeserver unreachable`), { code: "homeserver-unreachable", cause: err });
      }
      const text = await res.text();
      if (res.ok) {
        this.observer?.request(kind, (performance.now() - started) / 1000, true);
        return text;
      }
      let errcode = "";
      let message = "";
      let retryAfter = 0;
      try {
        const j = JSON.parse(text) as { errcode?: string; error?: string; retry_after_ms?: number };
        errcode = j.errcode ?? "";
        message = j.error ?? "";
        retryAfter = Number(j.retry_after_ms ?? 0);
      } catch { /* not JSON: status only */ }
      if ((res.status === 429 || res.status >= 500) && attempt < MAX_RETRIES) {
        await sleep(Math.min(MAX_BACKOFF_MS, retryAfter || backoff(attempt)));
        continue;
      }
      this.observer?.request(kind, (performance.now() - started) / 1000, false);
      throw new HomeserverError(res.status, errcode, `${kind}: ${res.status} ${errcode} ${message}`.trim());
    }
  }
}

function backoff(attempt: number): number {
  return Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
