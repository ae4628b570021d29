// A minimal Matrix client-server API client over fetch, to play the Matrix user in end-to-end tests.
// It keeps every timeline event and invite its syncs have seen, so `waitForEvent` also finds events that
// arrived before the call (pass `from = client.mark()` to only look at later ones).

export interface MatrixEvent {
  type: string;
  sender: string;
  event_id: string;
  room_id?: string;
  state_key?: string;
  origin_server_ts?: number;
  content: Record<string, unknown>;
  redacts?: string;
  unsigned?: Record<string, unknown>;
}

export interface SeenEvent { roomId: string; event: MatrixEvent }

export class MatrixApiError extends Error {
  constructor(readonly status: number, readonly errcode: string | undefined, message: string) {
    super(message);
    this.name = "MatrixApiError";
  }
}

interface SyncResponse {
  next_batch: string;
  rooms?: {
    join?: Record<string, { timeline?: { events?: MatrixEvent[] }; state?: { events?: MatrixEvent[] } }>;
    invite?: Record<string, { invite_state?: { events?: MatrixEvent[] } }>;
    leave?: Record<string, { timeline?: { events?: MatrixEvent[] } }>;
  };
}

type Waiter = { check: () => boolean };

const SYNC_FILTER = JSON.stringify({
  room: { timeline: { limit: 200 }, state: { lazy_load_members: false } },
  presence: { not_types: ["*"] },
  account_data: { not_types: ["*"] },
});

export class MatrixClient {
  /** Every timeline event seen by sync, in order. */
  readonly events: SeenEvent[] = [];
  /** Rooms we are invited to (room id -> stripped invite state), as last seen by sync. */
  readonly invites = new Map<string, MatrixEvent[]>();
  private readonly seenIds = new Set<string>();
  private since: string | undefined;
  private syncing: Promise<void> | null = null;
  private txn = 0;

  constructor(readonly baseUrl: string, readonly userId: string, readonly accessToken: string) {}

  static async login(baseUrl: string, user: string, password: string): Promise<MatrixClient> {
    const res = await fetch(`${baseUrl}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user }, password }),
    });
    const body = (await res.json()) as { user_id?: string; access_token?: string; errcode?: string; error?: string };
    if (!res.ok || !body.access_token || !body.user_id) {
      throw new MatrixApiError(res.status, body.errcode, `login ${user}: ${body.error ?? res.status}`);
    }
    return new MatrixClient(baseUrl, body.user_id, body.access_token);
  }

  /** Raw authenticated request; retries on 429 (M_LIMIT_EXCEEDED) after the advised delay. */
  async request<T = Record<string, unknown>>(method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.accessToken}`,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let json: Record<string, unknown> = {};
      try { json = text ? (JSON.parse(text) as Record<string, unknown>) : {}; } catch { /* non-JSON error page */ }
      if (res.status === 429 && attempt < 10) {
        const wait = Number(json.retry_after_ms ?? 500);
        await new Promise((r) => setTimeout(r, Math.min(wait, 5000)));
        continue;
      }
      if (!res.ok) {
        throw new MatrixApiError(res.status, json.errcode as string | undefined,
          `${method} ${path}: HTTP ${res.status} ${String(json.errcode ?? "")} ${String(json.error ?? text)}`);
      }
      return json as T;
    }
  }

  private txnId(): string { return `t${Date.now()}.${++this.txn}`; }
  private r(roomId: string): string { return encodeURIComponent(roomId); }

  async whoami(): Promise<string> {
    return (await this.request<{ user_id: string }>("GET", "/_matrix/client/v3/account/whoami")).user_id;
  }

  async createRoom(opts: { invite?: string[]; isDirect?: boolean; preset?: "private_chat" | "trusted_private_chat" | "public_chat";
    name?: string; topic?: string; initialState?: unknown[]; roomAliasName?: string } = {}): Promise<string> {
    const body: Record<string, unknown> = { preset: opts.preset ?? "private_chat" };
    if (opts.invite) body.invite = opts.invite;
    if (opts.isDirect !== undefined) body.is_direct = opts.isDirect;
    if (opts.name) body.name = opts.name;
    if (opts.topic) body.topic = opts.topic;
    if (opts.initialState) body.initial_state = opts.initialState;
    if (opts.roomAliasName) body.room_alias_name = opts.roomAliasName;
    return (await this.request<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", body)).room_id;
  }

  /** Opens a DM with `userId` (is_direct invite), like a client's "start chat". */
  createDm(userId: string): Promise<string> {
    return this.createRoom({ invite: [userId], isDirect: true, preset: "trusted_private_chat" });
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.request("POST", `/_matrix/client/v3/rooms/${this.r(roomId)}/invite`, { user_id: userId });
  }

  async join(roomIdOrAlias: string): Promise<string> {
    return (await this.request<{ room_id: string }>("POST", `/_matrix/client/v3/join/${this.r(roomIdOrAlias)}`, {})).room_id;
  }

  async leave(roomId: string): Promise<void> {
    await this.request("POST", `/_matrix/client/v3/rooms/${this.r(roomId)}/leave`, {});
  }

  async sendEvent(roomId: string, type: string, content: Record<string, unknown>): Promise<string> {
    return (await this.request<{ event_id: string }>("PUT",
      `/_matrix/client/v3/rooms/${this.r(roomId)}/send/${encodeURIComponent(type)}/${this.txnId()}`, content)).event_id;
  }

  sendText(roomId: string, body: string): Promise<string> {
    return this.sendEvent(roomId, "m.room.message", { msgtype: "m.text", body });
  }

  sendNotice(roomId: string, body: string): Promise<string> {
    return this.sendEvent(roomId, "m.room.message", { msgtype: "m.notice", body });
  }

  sendEmote(roomId: string, body: string): Promise<string> {
    return this.sendEvent(roomId, "m.room.message", { msgtype: "m.emote", body });
  }

  async sendState(roomId: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    return (await this.request<{ event_id: string }>("PUT",
      `/_matrix/client/v3/rooms/${this.r(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`, content)).event_id;
  }

  async redact(roomId: string, eventId: string, reason?: string): Promise<string> {
    return (await this.request<{ event_id: string }>("PUT",
      `/_matrix/client/v3/rooms/${this.r(roomId)}/redact/${encodeURIComponent(eventId)}/${this.txnId()}`,
      reason ? { reason } : {})).event_id;
  }

  /** The room's full current state. */
  getState(roomId: string): Promise<MatrixEvent[]> {
    return this.request<MatrixEvent[]>("GET", `/_matrix/client/v3/rooms/${this.r(roomId)}/state`) as unknown as Promise<MatrixEvent[]>;
  }

  /** One state event's content, or null when absent. */
  async getStateEvent(roomId: string, type: string, stateKey = ""): Promise<Record<string, unknown> | null> {
    try {
      return await this.request("GET",
        `/_matrix/client/v3/rooms/${this.r(roomId)}/state/${encodeURIComponent(type)}/${encodeURIComponent(stateKey)}`);
    } catch (e) {
      if (e instanceof MatrixApiError && e.status === 404) return null;
      throw e;
    }
  }

  async getJoinedMembers(roomId: string): Promise<string[]> {
    const r = await this.request<{ joined: Record<string, unknown> }>("GET", `/_matrix/client/v3/rooms/${this.r(roomId)}/joined_members`);
    return Object.keys(r.joined);
  }

  async getJoinedRooms(): Promise<string[]> {
    return (await this.request<{ joined_rooms: string[] }>("GET", "/_matrix/client/v3/joined_rooms")).joined_rooms;
  }

  /** One event by id (a redacted one comes back with empty content). */
  getEvent(roomId: string, eventId: string): Promise<MatrixEvent> {
    return this.request<MatrixEvent>("GET", `/_matrix/client/v3/rooms/${this.r(roomId)}/event/${encodeURIComponent(eventId)}`);
  }

  /** Latest timeline events of a room, oldest first. */
  async getMessages(roomId: string, limit = 50): Promise<MatrixEvent[]> {
    const r = await this.request<{ chunk: MatrixEvent[] }>("GET",
      `/_matrix/client/v3/rooms/${this.r(roomId)}/messages?dir=b&limit=${limit}`);
    return r.chunk.reverse();
  }

  async setDisplayName(name: string): Promise<void> {
    await this.request("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(this.userId)}/displayname`, { displayname: name });
  }

  /** One /sync call (long-polls up to `timeoutMs`); records events and invites; returns the raw response. */
  async sync(opts: { since?: string; timeoutMs?: number } = {}): Promise<SyncResponse> {
    const since = opts.since ?? this.since;
    const qs = new URLSearchParams({ timeout: String(opts.timeoutMs ?? 0), filter: SYNC_FILTER });
    if (since) qs.set("since", since);
    const res = await this.request<SyncResponse>("GET", `/_matrix/client/v3/sync?${qs}`, undefined, (opts.timeoutMs ?? 0) + 60_000);
    this.ingest(res);
    this.since = res.next_batch;
    return res;
  }

  private ingest(res: SyncResponse): void {
    const rooms = res.rooms ?? {};
    for (const [roomId, room] of [...Object.entries(rooms.join ?? {}), ...Object.entries(rooms.leave ?? {})]) {
      for (const event of room.timeline?.events ?? []) {
        if (this.seenIds.has(event.event_id)) continue;
        this.seenIds.add(event.event_id);
        this.events.push({ roomId, event });
      }
      this.invites.delete(roomId);
    }
    for (const [roomId, inv] of Object.entries(rooms.invite ?? {})) {
      this.invites.set(roomId, inv.invite_state?.events ?? []);
    }
  }

  /** Index to pass as `from` so only events seen after this point match. */
  mark(): number { return this.events.length; }

  /** Syncs (one long-poll at a time, shared by concurrent waiters) until `check` holds or the deadline passes. */
  private async syncUntil(w: Waiter, timeoutMs: number, what: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (w.check()) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.userId}: timed out after ${timeoutMs} ms waiting for ${what()}`);
      if (!this.syncing) {
        this.syncing = this.sync({ timeoutMs: Math.max(0, Math.min(left, 5000)) }).then(() => undefined)
          .finally(() => { this.syncing = null; });
      }
      await this.syncing;
    }
  }

  /**
   * Resolves with the first timeline event (at index >= `from`) in `roomId` (or any room when null) that matches.
   */
  async waitForEvent(roomId: string | null, pred: (e: MatrixEvent, roomId: string) => boolean,
    timeoutMs = 60_000, from = 0): Promise<MatrixEvent & { room_id: string }> {
    let found: SeenEvent | undefined;
    let scanned = from;
    const check = () => {
      for (; scanned < this.events.length; scanned++) {
        const s = this.events[scanned]!;
        if ((roomId === null || s.roomId === roomId) && pred(s.event, s.roomId)) { found = s; return true; }
      }
      return false;
    };
    await this.syncUntil({ check }, timeoutMs, () => {
      const recent = this.events.slice(-8).map((s) => `${s.roomId} ${s.event.sender} ${s.event.type} ${JSON.stringify(s.event.content).slice(0, 120)}`);
      return `an event in ${roomId ?? "any room"}; last events seen:\n${recent.join("\n")}`;
    });
    return { ...found!.event, room_id: found!.roomId };
  }

  /** Waits for an m.room.message whose body matches, from `sender` if given. */
  waitForMessage(roomId: string | null, body: string | RegExp | ((b: string) => boolean), opts: { sender?: string; timeoutMs?: number; from?: number } = {}) {
    const match = typeof body === "string" ? (b: string) => b === body : body instanceof RegExp ? (b: string) => body.test(b) : body;
    return this.waitForEvent(roomId, (e) => e.type === "m.room.message"
      && (opts.sender === undefined || e.sender === opts.sender)
      && typeof e.content.body === "string" && match(e.content.body), opts.timeoutMs ?? 60_000, opts.from ?? 0);
  }

  /** Resolves with the id of a room we are invited to for which `pred` holds (e.g. invited by a given user). */
  async waitForInvite(pred: (roomId: string, inviteState: MatrixEvent[]) => boolean = () => true, timeoutMs = 60_000): Promise<string> {
    let found: string | undefined;
    const check = () => {
      for (const [roomId, state] of this.invites) if (pred(roomId, state)) { found = roomId; return true; }
      return false;
    };
    await this.syncUntil({ check }, timeoutMs, () => `an invite; pending invites: ${[...this.invites.keys()].join(", ") || "none"}`);
    return found!;
  }

  /** The user id who invited us to `roomId`, from the stripped invite state. */
  inviterOf(roomId: string): string | null {
    const ev = this.invites.get(roomId)?.find((e) => e.type === "m.room.member" && e.state_key === this.userId);
    return ev?.sender ?? null;
  }
}
