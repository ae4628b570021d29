// An in-process fake homeserver for src/matrix/crypto: just the client-server API its devices call (MSC4190
// register + PUT devices, keys upload/query/claim, cross-signing and signature uploads, sendToDevice, room
// members, the encryption state event, room sends), keeping what was uploaded, and pushing appservice transactions
// back the way Synapse does with the E2EE flags: to-device events (MSC2409), device-list changes, one-time-key
// counts and unused fallback key types (MSC3202), and the room events of rooms an appservice's users are in.
// For fast unit tests and the bench only: it checks far less than Synapse (no signatures, no auth rules), so the
// e2e tests against the real Synapse stay the proof that the crypto works.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MatrixCrypto, type CryptoStore, type MatrixCryptoOptions, type Undecryptable } from "../../src/matrix/crypto/matrix-crypto.js";
import type { RawEvent } from "../../src/matrix/crypto/rooms.js";

type Json = Record<string, unknown>;

export interface FakeAppservice {
  asToken: string;
  /** Whether the user id is in this appservice's (exclusive) namespace. */
  isOurs(userId: string): boolean;
  /** One transaction, answered when the promise settles (a rejection makes the homeserver retry it). */
  deliver(body: Json): Promise<void>;
}

interface Device { keys?: Json; otks: Map<string, unknown>; fallback: Map<string, unknown>; fallbackUsed: boolean }
interface Room { members: Set<string>; encrypted: boolean; events: Json[] }
interface Queue { events: Json[]; toDevice: Json[]; changed: Set<string>; counts: Set<string> }
interface As extends FakeAppservice { q: Queue; busy: boolean }

class HttpError extends Error {
  constructor(readonly status: number, readonly errcode: string, message = errcode) { super(message); }
}

export class FakeCryptoHomeserver {
  readonly users = new Set<string>();
  readonly devices = new Map<string, Map<string, Device>>();
  readonly crossSigning = new Map<string, { master?: Json; self_signing?: Json; user_signing?: Json }>();
  readonly rooms = new Map<string, Room>();
  /** Requests by kind (`keys_upload`, `to_device`, ...), for tests that count round trips. */
  readonly calls = new Map<string, number>();
  /** Paths the fake does not implement, and transactions an appservice refused (each retried). */
  readonly unknown: string[] = [];
  readonly refused: unknown[] = [];
  private readonly appservices: As[] = [];
  private server!: Server;
  private seq = 0;
  private idleWaiters: Array<() => void> = [];
  url = "";

  private constructor(readonly domain: string) {}

  static async start(domain = "fake.test"): Promise<FakeCryptoHomeserver> {
    const hs = new FakeCryptoHomeserver(domain);
    hs.server = createServer((req, res) => void hs.handle(req, res));
    hs.server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => hs.server.listen(0, "127.0.0.1", r));
    hs.url = `http://127.0.0.1:${(hs.server.address() as AddressInfo).port}`;
    return hs;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  addAppservice(a: FakeAppservice): void {
    this.appservices.push({ ...a, q: { events: [], toDevice: [], changed: new Set(), counts: new Set() }, busy: false });
  }

  /** Drops an appservice and what was queued for it (a bridge that stopped, or was killed). */
  removeAppservice(asToken: string): void {
    const i = this.appservices.findIndex((a) => a.asToken === asToken);
    if (i >= 0) this.appservices.splice(i, 1);
    this.wake();
  }

  /** A room with these members (all joined), its state events pushed to the appservices of its members. */
  createRoom(members: string[], opts: { encrypted?: boolean; roomId?: string } = {}): string {
    const roomId = opts.roomId ?? `!r${++this.seq}:${this.domain}`;
    const room: Room = { members: new Set(), encrypted: opts.encrypted ?? true, events: [] };
    this.rooms.set(roomId, room);
    const creator = members[0]!;
    if (room.encrypted) this.addEvent(roomId, { type: "m.room.encryption", state_key: "", sender: creator, content: { algorithm: "m.megolm.v1.aes-sha2" } });
    for (const m of members) this.join(roomId, m);
    return roomId;
  }

  join(roomId: string, userId: string): void {
    const room = this.rooms.get(roomId)!;
    room.members.add(userId);
    this.addEvent(roomId, { type: "m.room.member", state_key: userId, sender: userId, content: { membership: "join" } });
    // Users who now share a room learn of each other's devices (Synapse sends device_lists.changed).
    for (const other of room.members) if (other !== userId) { this.deviceListChanged(other, [userId]); this.deviceListChanged(userId, [other]); }
  }

  /** Waits until every queued transaction has been delivered and answered. */
  async settle(): Promise<void> {
    for (;;) {
      this.pump();
      if (this.appservices.every((a) => !a.busy && empty(a.q))) return;
      await new Promise<void>((r) => this.idleWaiters.push(r));
    }
  }

  /** Events sent into a room so far (the homeserver's view: ciphertext only in encrypted rooms). */
  roomEvents(roomId: string): Json[] {
    return this.rooms.get(roomId)?.events ?? [];
  }

  // ------------------------------------------------------------------ transactions

  private pump(): void {
    for (const a of this.appservices) {
      if (a.busy || empty(a.q)) continue;
      a.busy = true;
      const q = a.q;
      a.q = { events: [], toDevice: [], changed: new Set(), counts: new Set() };
      const body = this.transactionBody(q);
      void a.deliver(body).then(
        () => { a.busy = false; this.wake(); },
        (err) => {
          // Synapse retries the same transaction later: put its parts back in front of whatever came since.
          this.refused.push(err);
          a.q = { events: [...q.events, ...a.q.events], toDevice: [...q.toDevice, ...a.q.toDevice], changed: new Set([...q.changed, ...a.q.changed]), counts: new Set([...q.counts, ...a.q.counts]) };
          setTimeout(() => { a.busy = false; this.wake(); }, 20);
        },
      );
    }
  }

  private wake(): void {
    const w = this.idleWaiters.splice(0);
    for (const f of w) f();
    setImmediate(() => this.pump());
  }

  private transactionBody(q: Queue): Json {
    const body: Json = { events: q.events, "de.sorunome.msc2409.to_device": q.toDevice };
    if (q.changed.size) body["org.matrix.msc3202.device_lists"] = { changed: [...q.changed], left: [] };
    if (q.counts.size) {
      const counts: Record<string, Record<string, Record<string, number>>> = {};
      const fallback: Record<string, Record<string, string[]>> = {};
      for (const key of q.counts) {
        const [user, dev] = key.split("\u0000") as [string, string];
        const d = this.devices.get(user)?.get(dev);
        if (!d) continue;
        (counts[user] ??= {})[dev] = { signed_curve25519: d.otks.size };
        (fallback[user] ??= {})[dev] = d.fallback.size && !d.fallbackUsed ? ["signed_curve25519"] : [];
      }
      body["org.matrix.msc3202.device_one_time_keys_count"] = counts;
      body["org.matrix.msc3202.device_unused_fallback_key_types"] = fallback;
    }
    return body;
  }

  private owner(userId: string): As | undefined {
    return this.appservices.find((a) => a.isOurs(userId));
  }

  private queueFor(a: As): Queue {
    setImmediate(() => this.pump());
    return a.q;
  }

  private addEvent(roomId: string, partial: Json): Json {
    const room = this.rooms.get(roomId)!;
    const ev = { ...partial, room_id: roomId, event_id: `$e${++this.seq}`, origin_server_ts: Date.now() };
    room.events.push(ev);
    // Every appservice with a member in the room sees its events (its own users' included).
    const targets = new Set<As>();
    for (const m of room.members) { const a = this.owner(m); if (a) targets.add(a); }
    const sender = this.owner(String(partial["sender"]));
    if (sender) targets.add(sender);
    for (const a of targets) this.queueFor(a).events.push(ev);
    return ev;
  }

  /** Tells the appservice of `observer` that `users` changed their devices or keys. */
  private deviceListChanged(observer: string, users: string[]): void {
    const a = this.owner(observer);
    if (a) for (const u of users) this.queueFor(a).changed.add(u);
  }

  /** The user's keys changed: tell the user's own appservice and those of everyone sharing a room with them. */
  private keysChanged(userId: string): void {
    this.deviceListChanged(userId, [userId]);
    for (const r of this.rooms.values()) if (r.members.has(userId)) for (const m of r.members) if (m !== userId) this.deviceListChanged(m, [userId]);
  }

  private countsChanged(userId: string, deviceId: string): void {
    const a = this.owner(userId);
    if (a) this.queueFor(a).counts.add(`${userId}\u0000${deviceId}`);
  }

  // ------------------------------------------------------------------ client-server API

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    let status = 200, out: unknown;
    try {
      const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      const as = this.appservices.find((a) => a.asToken === token);
      if (!as) throw new HttpError(401, "M_UNKNOWN_TOKEN");
      const user = url.searchParams.get("user_id") ?? "";
      if (!as.isOurs(user)) throw new HttpError(403, "M_EXCLUSIVE", `${user} is not in the appservice's namespace`);
      const device = url.searchParams.get("device_id") ?? undefined;
      const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Json) : {};
      out = this.route(req.method ?? "GET", decodeURIComponent(url.pathname), url.pathname, body, user, device);
    } catch (err) {
      if (err instanceof HttpError) { status = err.status; out = { errcode: err.errcode, error: err.message }; }
      else { status = 500; out = { errcode: "M_UNKNOWN", error: String(err) }; }
    }
    const text = JSON.stringify(out);
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  private count(kind: string): void {
    this.calls.set(kind, (this.calls.get(kind) ?? 0) + 1);
  }

  private device(user: string, deviceId: string | undefined): Device {
    const d = deviceId ? this.devices.get(user)?.get(deviceId) : undefined;
    if (!d) throw new HttpError(400, "M_UNKNOWN_DEVICE", `no device ${deviceId} for ${user}`);
    return d;
  }

  private route(method: string, path: string, rawPath: string, body: Json, user: string, deviceId: string | undefined): unknown {
    const p = path.replace(/^\/_matrix\/client\/v3/, "");
    let m: RegExpExecArray | null;
    if (method === "POST" && p === "/register") {
      this.count("register");
      if (body["inhibit_login"] !== true) throw new HttpError(400, "IO.ELEMENT.MSC4190.M_APPSERVICE_LOGIN_UNSUPPORTED");
      const id = `@${String(body["username"])}:${this.domain}`;
      if (this.users.has(id)) throw new HttpError(400, "M_USER_IN_USE");
      this.users.add(id);
      return { user_id: id, home_server: this.domain };
    }
    if (method === "PUT" && (m = /^\/devices\/([^/]+)$/.exec(p))) {
      this.count("device_create");
      const devs = this.devices.get(user) ?? new Map<string, Device>();
      this.devices.set(user, devs);
      if (!devs.has(m[1]!)) devs.set(m[1]!, { otks: new Map(), fallback: new Map(), fallbackUsed: false });
      return {};
    }
    if (method === "POST" && p === "/keys/upload") {
      this.count("keys_upload");
      const d = this.device(user, deviceId);
      if (body["device_keys"]) { d.keys = body["device_keys"] as Json; this.keysChanged(user); }
      for (const [k, v] of Object.entries((body["one_time_keys"] ?? {}) as Json)) d.otks.set(k, v);
      const fb = (body["fallback_keys"] ?? body["org.matrix.msc2732.fallback_keys"]) as Json | undefined;
      if (fb && Object.keys(fb).length) { d.fallback = new Map(Object.entries(fb)); d.fallbackUsed = false; }
      return { one_time_key_counts: { signed_curve25519: d.otks.size } };
    }
    if (method === "POST" && p === "/keys/device_signing/upload") {
      this.count("cross_signing_upload");
      const cs = this.crossSigning.get(user) ?? {};
      if (body["master_key"]) cs.master = body["master_key"] as Json;
      if (body["self_signing_key"]) cs.self_signing = body["self_signing_key"] as Json;
      if (body["user_signing_key"]) cs.user_signing = body["user_signing_key"] as Json;
      this.crossSigning.set(user, cs);
      this.keysChanged(user);
      return {};
    }
    if (method === "POST" && p === "/keys/signatures/upload") {
      this.count("signatures_upload");
      for (const [target, byKey] of Object.entries(body as Record<string, Json>)) {
        for (const [keyId, signed] of Object.entries(byKey)) {
          const sigs = ((signed as Json)["signatures"] ?? {}) as Record<string, Record<string, string>>;
          const dev = this.devices.get(target)?.get(keyId)?.keys;
          const cs = this.crossSigning.get(target);
          const obj = dev ?? [cs?.master, cs?.self_signing, cs?.user_signing].find((k) => k && Object.keys((k["keys"] ?? {}) as Json).includes(`ed25519:${keyId}`));
          if (!obj) continue;
          const into = (obj["signatures"] ??= {}) as Record<string, Record<string, string>>;
          for (const [signer, s] of Object.entries(sigs)) into[signer] = { ...(into[signer] ?? {}), ...s };
        }
        this.keysChanged(target);
      }
      return { failures: {} };
    }
    if (method === "POST" && p === "/keys/query") {
      this.count("keys_query");
      const out = { device_keys: {} as Json, master_keys: {} as Json, self_signing_keys: {} as Json, user_signing_keys: {} as Json, failures: {} };
      for (const [u, wanted] of Object.entries((body["device_keys"] ?? {}) as Record<string, string[]>)) {
        const devs: Json = {};
        for (const [id, d] of this.devices.get(u) ?? []) if (d.keys && (!wanted.length || wanted.includes(id))) devs[id] = d.keys;
        out.device_keys[u] = devs;
        const cs = this.crossSigning.get(u);
        if (cs?.master) out.master_keys[u] = cs.master;
        if (cs?.self_signing) out.self_signing_keys[u] = cs.self_signing;
        if (cs?.user_signing && u === user) out.user_signing_keys[u] = cs.user_signing;
      }
      return out;
    }
    if (method === "POST" && p === "/keys/claim") {
      this.count("keys_claim");
      const out: Record<string, Record<string, Json>> = {};
      for (const [u, byDev] of Object.entries((body["one_time_keys"] ?? {}) as Record<string, Record<string, string>>)) {
        for (const [id, algo] of Object.entries(byDev)) {
          const d = this.devices.get(u)?.get(id);
          if (!d) continue;
          let hit = [...d.otks.keys()].find((k) => k.startsWith(`${algo}:`));
          let key: unknown;
          if (hit) { key = d.otks.get(hit); d.otks.delete(hit); }
          else if ((hit = [...d.fallback.keys()].find((k) => k.startsWith(`${algo}:`)))) { key = d.fallback.get(hit); d.fallbackUsed = true; }
          if (!hit) continue;
          ((out[u] ??= {})[id] = { [hit]: key });
          this.countsChanged(u, id);
        }
      }
      return { one_time_keys: out, failures: {} };
    }
    if (method === "PUT" && (m = /^\/sendToDevice\/([^/]+)\/([^/]+)$/.exec(p))) {
      this.count("to_device");
      for (const [u, byDev] of Object.entries((body["messages"] ?? {}) as Record<string, Record<string, Json>>)) {
        const a = this.owner(u);
        for (const [id, content] of Object.entries(byDev)) {
          const ids = id === "*" ? [...(this.devices.get(u)?.keys() ?? [])] : [id];
          for (const to of ids) {
            if (a) this.queueFor(a).toDevice.push({ type: m[1], sender: user, content, to_user_id: u, to_device_id: to });
            if (a) this.countsChanged(u, to);
          }
        }
      }
      return {};
    }
    if (method === "GET" && (m = /^\/rooms\/([^/]+)\/members$/.exec(p))) {
      this.count("room_members");
      const room = this.rooms.get(m[1]!);
      if (!room?.members.has(user)) throw new HttpError(403, "M_FORBIDDEN");
      return { chunk: [...room.members].map((u) => ({ type: "m.room.member", state_key: u, sender: u, room_id: m![1], content: { membership: "join" } })) };
    }
    if (method === "GET" && (m = /^\/rooms\/([^/]+)\/state\/m\.room\.encryption\/?$/.exec(p))) {
      this.count("room_state");
      const room = this.rooms.get(m[1]!);
      if (!room?.encrypted) throw new HttpError(404, "M_NOT_FOUND");
      return { algorithm: "m.megolm.v1.aes-sha2" };
    }
    if (method === "PUT" && (m = /^\/rooms\/([^/]+)\/send\/([^/]+)\/([^/]+)$/.exec(p))) {
      this.count("room_send");
      const room = this.rooms.get(m[1]!);
      if (!room?.members.has(user)) throw new HttpError(403, "M_FORBIDDEN");
      const ev = this.addEvent(m[1]!, { type: m[2], sender: user, content: body });
      return { event_id: ev["event_id"] };
    }
    this.unknown.push(`${method} ${rawPath}`);
    throw new HttpError(404, "M_UNRECOGNIZED", `fake homeserver: ${method} ${rawPath} is not implemented`);
  }
}

function empty(q: Queue): boolean {
  return !q.events.length && !q.toDevice.length && !q.changed.size && !q.counts.size;
}

// ------------------------------------------------------------------ a bridge's crypto on the fake homeserver


export interface FakeBridge {
  crypto: MatrixCrypto;
  bot: string;
  /** Room events of other appservices' users the crypto handed on (clear ones decrypted), in order. */
  received: RawEvent[];
  undecryptable: Undecryptable[];
  stop(): Promise<void>;
}

/**
 * A MatrixCrypto for the users `@<prefix>*` (its bot is `@<prefix>bot`), fed by the fake homeserver's
 * transactions. `store` is any CryptoStore (MemoryStore, or the SQL store for durability tests and the bench).
 */
export async function fakeBridge(hs: FakeCryptoHomeserver, prefix: string, store: CryptoStore, opts: { keepOwn?: boolean; onTransaction?: (ms: number, body: Record<string, unknown>) => void; crypto?: Pick<MatrixCryptoOptions, "maxLoadedDevices" | "deviceIdleMs"> } = {}): Promise<FakeBridge> {
  const isOurs = (u: string) => u.startsWith(`@${prefix}`) && u.endsWith(`:${hs.domain}`);
  const asToken = `as-${prefix}-${Math.random().toString(36).slice(2)}`;
  const bot = `@${prefix}bot:${hs.domain}`;
  const received: RawEvent[] = [];
  const undecryptable: Undecryptable[] = [];
  let crypto: MatrixCrypto | null = null;
  const early: Array<() => void> = [];
  hs.addAppservice({
    asToken, isOurs,
    async deliver(body) {
      // Transactions wait until the crypto is up (as the adapter's do).
      if (!crypto) await new Promise<void>((r) => early.push(r));
      const t0 = performance.now();
      const out = await crypto!.transaction(body);
      opts.onTransaction?.(performance.now() - t0, body);
      for (const ev of out) if (opts.keepOwn || !isOurs(String(ev.sender))) received.push(ev);
    },
  });
  crypto = await MatrixCrypto.start({
    homeserverUrl: hs.url, asToken, botUserId: bot, isOurUser: (u) => isOurs(u) && u !== bot, store,
    deviceDisplayName: `fake ${prefix}`,
    onUndecryptable: (u) => undecryptable.push(u),
    log: () => undefined,
    ...opts.crypto,
  });
  for (const f of early.splice(0)) f();
  return { crypto, bot, received, undecryptable, stop: async () => { hs.removeAppservice(asToken); await crypto!.stop(); } };
}

/** A CryptoStore in plain maps, that can be copied (a copy taken right after a call returns = what a SIGKILL keeps). */
export class MapCryptoStore implements CryptoStore {
  readonly states = new Map<string, { ownerUserId: string; deviceId: string; state: Uint8Array }>();
  readonly kv = new Map<string, string>();
  writes = 0;
  async getCryptoState(ownerUserId: string, deviceId: string): Promise<Uint8Array | null> {
    return this.states.get(`${ownerUserId}\u0000${deviceId}`)?.state ?? null;
  }
  async putCryptoState(ownerUserId: string, deviceId: string, state: Uint8Array): Promise<void> {
    this.writes++;
    this.states.set(`${ownerUserId}\u0000${deviceId}`, { ownerUserId, deviceId, state: new Uint8Array(state) });
  }
  async listCryptoDevices(): Promise<Array<{ ownerUserId: string; deviceId: string }>> {
    return [...this.states.values()].map(({ ownerUserId, deviceId }) => ({ ownerUserId, deviceId }));
  }
  async getState(key: string): Promise<string | null> { return this.kv.get(key) ?? null; }
  async putState(key: string, value: string): Promise<void> { this.kv.set(key, value); }
  async deleteState(key: string): Promise<void> { this.kv.delete(key); }
  copy(): MapCryptoStore {
    const c = new MapCryptoStore();
    for (const [k, v] of this.states) c.states.set(k, { ...v, state: new Uint8Array(v.state) });
    for (const [k, v] of this.kv) c.kv.set(k, v);
    return c;
  }
}
