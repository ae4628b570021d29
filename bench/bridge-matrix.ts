// The bench's Matrix users, all at once: a second appservice that owns the namespace @bench_* on the bench's
// Synapse, so it can register U users in one request each (no password hashing, no login), act as any of them
// (`?user_id=`, the appservice identity assertion of the client-server API), and receive every event in every room
// they are in as pushed transactions instead of U /sync loops. Invites from the bridges under test are joined
// at once, as a client that auto-joins DMs would. Message events are handed to `onMessage` with the time they
// arrived here, which ends the IRC->Matrix latency clock.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";
import { freePort } from "../test/harness/ports.js";

export interface BenchEvent {
  type: string;
  sender: string;
  room_id: string;
  event_id: string;
  state_key?: string;
  content: Record<string, unknown>;
  /** For joined invites: the room's m.room.create `type` ("m.space" for a space), set by the bench. */
  roomType?: string | null;
}

export const BENCH_PREFIX = "bench_";

export class BenchUsers {
  readonly asToken = randomBytes(24).toString("hex");
  readonly hsToken = randomBytes(24).toString("hex");
  private server: Server | null = null;
  private port = 0;
  private txn = 0;
  /** Called for every m.room.message, with performance.now() at arrival. */
  onMessage: (e: BenchEvent, at: number) => void = () => undefined;
  /** Called after an invite to one of our users was joined. */
  onJoined: (e: BenchEvent) => void = () => undefined;
  /** Joins that failed (room gone, ...); counted, never thrown. */
  joinFailures = 0;
  /** Users whose invites are accepted (others are left pending). */
  acceptFrom: (sender: string) => boolean = () => true;
  private inflight = 0;

  constructor(public hsUrl: string, readonly domain: string) {}

  userId(localpart: string): string { return `@${localpart}:${this.domain}`; }

  /** Starts the listener and writes the registration Synapse loads. */
  async start(registrationPath: string): Promise<void> {
    this.port = await freePort();
    this.server = createServer((req, res) => {
      void this.handle(req).then((code) => { res.writeHead(code, { "content-type": "application/json" }); res.end("{}"); },
        () => { res.writeHead(500); res.end("{}"); });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => this.server!.listen(this.port, "127.0.0.1", r));
    writeFileSync(registrationPath, stringify({
      id: "bench-users", url: `http://127.0.0.1:${this.port}`, as_token: this.asToken, hs_token: this.hsToken,
      sender_localpart: `${BENCH_PREFIX}bot`, rate_limited: false,
      namespaces: { users: [{ exclusive: true, regex: `@${BENCH_PREFIX}.*` }], aliases: [], rooms: [] },
    }), { mode: 0o600 });
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) { s.closeAllConnections(); await new Promise<void>((r) => s.close(() => r())); }
  }

  private async handle(req: IncomingMessage): Promise<number> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const at = performance.now();
    const auth = req.headers.authorization ?? "";
    if (auth !== `Bearer ${this.hsToken}`) return 403;
    if (!req.url?.includes("/transactions/")) return 200;
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { events?: BenchEvent[] };
    for (const e of body.events ?? []) {
      if (e.type === "m.room.message") this.onMessage(e, at);
      else if (e.type === "m.room.member" && e.content.membership === "invite" && e.state_key?.startsWith(`@${BENCH_PREFIX}`)
        && this.acceptFrom(e.sender)) {
        void this.joinWithRetry(e);
      }
    }
    return 200;
  }

  private async joinWithRetry(e: BenchEvent): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.request("POST", `/_matrix/client/v3/join/${encodeURIComponent(e.room_id)}`, e.state_key!, {});
        // Heisenbridge also invites to a space per network: the workload must tell it from a DM.
        const create = await this.request<{ type?: string }>("GET",
          `/_matrix/client/v3/rooms/${encodeURIComponent(e.room_id)}/state/m.room.create/`, e.state_key!);
        this.onJoined({ ...e, roomType: create.type ?? null });
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
    this.joinFailures++;
  }

  /** A client-server call made as `userId`. */
  async request<T = Record<string, unknown>>(method: string, path: string, userId: string, body?: unknown): Promise<T> {
    const sep = path.includes("?") ? "&" : "?";
    this.inflight++;
    try {
      const res = await fetch(`${this.hsUrl}${path}${sep}user_id=${encodeURIComponent(userId)}`, {
        method,
        headers: { authorization: `Bearer ${this.asToken}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(120_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path} as ${userId}: HTTP ${res.status} ${text.slice(0, 200)}`);
      return (text ? JSON.parse(text) : {}) as T;
    } finally {
      this.inflight--;
    }
  }

  /** Registers @<localpart> (idempotent: an existing user is fine). */
  async register(localpart: string): Promise<void> {
    const res = await fetch(`${this.hsUrl}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.asToken}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.application_service", username: localpart, inhibit_login: true }),
    });
    if (!res.ok) {
      const text = await res.text();
      if (!text.includes("M_USER_IN_USE")) throw new Error(`register ${localpart}: HTTP ${res.status} ${text.slice(0, 200)}`);
    } else {
      await res.arrayBuffer();
    }
  }

  /** Opens a DM with `target` the way a client's "start chat" does. */
  async createDm(userId: string, target: string): Promise<string> {
    const r = await this.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", userId,
      { preset: "trusted_private_chat", is_direct: true, invite: [target] });
    return r.room_id;
  }

  async sendText(userId: string, roomId: string, body: string): Promise<void> {
    await this.request("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/b${++this.txn}`,
      userId, { msgtype: "m.text", body });
  }
}

/** Runs `f` over `items` with at most `limit` in flight; resolves when all settled, rejects on the first error. */
export async function pool<T>(items: readonly T[], limit: number, f: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await f(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
