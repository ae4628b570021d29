// End-to-bridge encryption for the Matrix adapter. Each of the bridge's users that sits in an encrypted room (the
// bot, a ghost) gets its own device with its own OlmMachine, created by the appservice (MSC4190) and fed by the
// appservice transaction stream (to-device events, device lists, one-time-key counts: MSC2409, MSC3202), so no
// ghost needs a /sync loop. The adapter hands whole transactions here first and gets back the room events with
// m.room.encrypted replaced by their clear events; it hands outgoing messages here and gets them encrypted. The
// rest of the bridge never sees Olm.
// Devices are opened on demand and closed again (their state stored first) when idle or when more than
// `maxLoadedDevices` are open, least recently used first: an open device costs an OlmMachine and its in-memory
// database, and a bridge with thousands of DMs has only a few conversations going at any time.
import { randomBytes } from "node:crypto";
import { BridgeDevice, type CryptoStatePort, type DeviceObserver } from "./device.js";
import { Homeserver, HomeserverError, type CryptoHttpObserver } from "./homeserver.js";
import { megolmIndex, ReplayGuard } from "./megolm.js";
import { RoomTracker, type KvPort, type RawEvent } from "./rooms.js";
import { loadWasm, type Wasm } from "./wasm.js";
import type { IdbFactory } from "./idb-snapshot.js";

export interface CryptoStore extends CryptoStatePort, KvPort {
  listCryptoDevices(): Promise<Array<{ ownerUserId: string; deviceId: string }>>;
}

export interface CryptoObserver extends CryptoHttpObserver, DeviceObserver {
  roomEvent?(what: "encrypted" | "decrypted"): void;
  decryptionFailure?(reason: UndecryptableReason): void;
  devices?(loaded: number): void;
}

export type UndecryptableReason = "missing-key" | "unknown-index" | "replayed" | "tampered" | "malformed" | "other";

export interface Undecryptable {
  roomId: string;
  eventId: string;
  sender: string;
  /** Which of our users should answer in the room (a member whose device was asked to decrypt). */
  ourUser: string;
  reason: UndecryptableReason;
}

export interface MatrixCryptoOptions {
  homeserverUrl: string;
  asToken: string;
  botUserId: string;
  isOurUser(userId: string): boolean;
  store: CryptoStore;
  deviceDisplayName: string;
  observer?: CryptoObserver;
  /** A message that could not be decrypted (the adapter tells the sender); called at most once per event. */
  onUndecryptable(u: Undecryptable): void;
  log(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void;
  /** Devices kept open at once; beyond this the least recently used are closed (reopened from the store on use). */
  maxLoadedDevices?: number;
  /** A device unused this long is closed. */
  deviceIdleMs?: number;
}

export const DEFAULT_MAX_LOADED_DEVICES = 50;
export const DEFAULT_DEVICE_IDLE_MS = 10 * 60_000;

/** The to-device event type of the start-up probe (plain, not encrypted: it only carries a nonce). */
const PROBE_TYPE = "org.matrix_otr_irc.probe";
const PROBE_DEVICE = "MOTRPROBE";
const PROBE_REPEAT_MS = 2_000;

/** Undecryptable events kept for a retry when their key arrives: how many, and for how long. */
const MAX_PENDING_EVENTS = 2_000;
const PENDING_TTL_MS = 24 * 3600_000;

interface Pending { event: RawEvent; roomId: string; ourUsers: string[]; at: number }

export type HistoryVisibility = "joined" | "shared" | "invited" | "world_readable";

export class MatrixCrypto {
  private readonly devices = new Map<string, Promise<BridgeDevice>>();
  /** The devices of `devices` that have finished opening. */
  private readonly opened = new Map<string, BridgeDevice>();
  private readonly deviceIds = new Map<string, string>();
  private readonly rooms: RoomTracker;
  private readonly replays: ReplayGuard;
  /** Undecryptable events by Megolm session id. */
  private readonly pending = new Map<string, Pending[]>();
  private pendingCount = 0;
  private readonly hs: Homeserver;
  private readonly probes = new Map<string, () => void>();
  /**
   * False until the start-up probe came back in a transaction. Until then the homeserver may be holding
   * transactions back (Synapse backs off from an appservice that was down, for a minute or more after a restart),
   * device-list changes among them: a user's new device would get no room key. So until then every encryption
   * first re-queries the devices of everyone the sending device tracks.
   */
  private caughtUp = false;
  /** Operations running on each device (a busy device is never closed), and when each was last used. */
  private readonly busy = new Map<string, number>();
  private readonly lastUsed = new Map<string, number>();
  /** Devices being closed: reopening one waits until its state is stored and its databases are gone. */
  private readonly closing = new Map<string, Promise<void>>();
  private sweep: ReturnType<typeof setInterval> | null = null;

  private constructor(private readonly o: MatrixCryptoOptions, private readonly W: Wasm, private readonly idb: IdbFactory) {
    this.hs = new Homeserver(o.homeserverUrl, o.asToken, o.observer);
    this.rooms = new RoomTracker(o.store, (u) => u === o.botUserId || o.isOurUser(u));
    this.replays = new ReplayGuard(o.store);
  }

  static async start(o: MatrixCryptoOptions): Promise<MatrixCrypto> {
    const { W, idb } = await loadWasm();
    const c = new MatrixCrypto(o, W, idb);
    for (const d of await o.store.listCryptoDevices()) c.deviceIds.set(d.ownerUserId, d.deviceId);
    await c.device(o.botUserId);
    c.sweep = setInterval(() => c.evict(), Math.min(c.idleMs, 60_000));
    c.sweep.unref();
    return c;
  }

  private get idleMs(): number { return this.o.deviceIdleMs ?? DEFAULT_DEVICE_IDLE_MS; }

  /**
   * The device of one of our users, opened from the store or created on the homeserver. A caller that keeps the
   * device past its own use may find it closed later (crypto-device-closed): MatrixCrypto's own calls go through
   * `use`, which keeps it open while they run.
   */
  device(userId: string): Promise<BridgeDevice> {
    this.lastUsed.set(userId, Date.now());
    let d = this.devices.get(userId);
    if (d) {
      // Most recently used last: eviction walks the map from its start.
      this.devices.delete(userId);
      this.devices.set(userId, d);
      return d;
    }
    const known = this.deviceIds.get(userId);
    const deviceId = known ?? newDeviceId();
    const closing = this.closing.get(userId) ?? Promise.resolve();
    const opened: Promise<BridgeDevice> = closing.then(() => BridgeDevice.open({
      W: this.W, idb: this.idb, hs: this.hs, store: this.o.store, userId, deviceId,
      displayName: this.o.deviceDisplayName, ...(this.o.observer ? { observer: this.o.observer } : {}),
    })).then(async (dev) => {
      this.deviceIds.set(userId, deviceId);
      // While it was not loaded, device-list changes went only to loaded devices: re-query what it tracks.
      if (known) await dev.refreshTrackedUsers();
      return dev;
    });
    this.devices.set(userId, opened);
    opened.catch(() => { if (this.devices.get(userId) === opened) this.devices.delete(userId); });
    void opened.then((dev) => {
      if (this.devices.get(userId) === opened) this.opened.set(userId, dev);
      this.o.observer?.devices?.(this.devices.size);
      this.evict();
    }, () => undefined);
    return opened;
  }

  /** Runs `fn` on the user's device, which stays open while it runs. */
  private async use<T>(userId: string, fn: (dev: BridgeDevice) => Promise<T>): Promise<T> {
    this.busy.set(userId, (this.busy.get(userId) ?? 0) + 1);
    try {
      return await fn(await this.device(userId));
    } finally {
      const n = (this.busy.get(userId) ?? 1) - 1;
      if (n) this.busy.set(userId, n);
      else this.busy.delete(userId);
      this.lastUsed.set(userId, Date.now());
    }
  }

  /** Closes devices idle for `deviceIdleMs`, and the least recently used beyond `maxLoadedDevices` (never the bot's). */
  private evict(now = Date.now()): void {
    let excess = this.devices.size - (this.o.maxLoadedDevices ?? DEFAULT_MAX_LOADED_DEVICES);
    for (const u of [...this.devices.keys()]) {
      if (u === this.o.botUserId || this.busy.has(u)) continue;
      const idle = now - (this.lastUsed.get(u) ?? 0) >= this.idleMs;
      if (!idle && excess <= 0) continue;
      excess--;
      const d = this.devices.get(u)!;
      this.devices.delete(u);
      this.opened.delete(u);
      const closed: Promise<void> = d.then((dev) => dev.close(), () => undefined)
        .finally(() => { if (this.closing.get(u) === closed) this.closing.delete(u); });
      this.closing.set(u, closed);
    }
    this.o.observer?.devices?.(this.devices.size);
  }

  /** How many devices are open now (for tests and the bench). */
  get loadedDevices(): number {
    return this.devices.size;
  }

  deviceIdOf(userId: string): string | undefined {
    return this.deviceIds.get(userId);
  }

  /**
   * One appservice transaction: to-device events, device lists and key counts go to the devices first (a room key
   * and the event it opens can come in the same transaction), then the room events come back in order, encrypted
   * ones replaced by their clear events (with `unsigned["org.matrix_otr_irc.encrypted"] = true`), undecryptable
   * ones held for a retry and reported, plus earlier held events whose key has now arrived.
   */
  async transaction(body: Record<string, unknown>): Promise<RawEvent[]> {
    const toDevice = asArray(body["de.sorunome.msc2409.to_device"] ?? body["to_device"]);
    const lists = (body["org.matrix.msc3202.device_lists"] ?? body["device_lists"] ?? {}) as { changed?: unknown; left?: unknown };
    const changed = asArray(lists.changed).filter((u): u is string => typeof u === "string");
    const left = asArray(lists.left).filter((u): u is string => typeof u === "string");
    const otk = (body["org.matrix.msc3202.device_one_time_keys_count"] ?? body["org.matrix.msc3202.device_one_time_key_counts"] ?? {}) as Record<string, Record<string, Record<string, number>>>;
    const fallback = (body["org.matrix.msc3202.device_unused_fallback_key_types"] ?? {}) as Record<string, Record<string, string[]>>;

    const byDevice = new Map<string, object[]>();
    for (const e of toDevice) {
      const ev = e as { to_user_id?: unknown; to_device_id?: unknown; type?: unknown; content?: { nonce?: unknown } };
      if (ev.type === PROBE_TYPE && typeof ev.content?.nonce === "string") {
        this.probes.get(ev.content.nonce)?.();
        continue;
      }
      if (typeof ev.to_user_id !== "string" || typeof ev.to_device_id !== "string") continue;
      if (this.deviceIds.get(ev.to_user_id) !== ev.to_device_id) continue; // not a device of ours (or an old one)
      const { to_user_id: _u, to_device_id: _d, ...rest } = e as Record<string, unknown>;
      const list = byDevice.get(ev.to_user_id) ?? [];
      list.push(rest);
      byDevice.set(ev.to_user_id, list);
    }
    const users = new Set<string>([...byDevice.keys()]);
    for (const u of [...Object.keys(otk), ...Object.keys(fallback)]) if (this.deviceIds.has(u)) users.add(u);
    // Device-list changes go to the loaded devices that follow one of those users (and to those still opening);
    // the others would ignore them, and closed ones re-query what they track when they reopen.
    if (changed.length || left.length) {
      const who = [...changed, ...left];
      for (const u of this.devices.keys()) {
        const dev = this.opened.get(u);
        if (!dev || dev.tracks(who)) users.add(u);
      }
    }
    const keys: Array<{ roomId: string; sessionId: string }> = [];
    await Promise.all([...users].map(async (u) => {
      const id = this.deviceIds.get(u);
      if (!id) return;
      const counts = otk[u]?.[id];
      const fb = fallback[u]?.[id];
      try {
        keys.push(...(await this.use(u, (dev) => dev.receive({
          events: byDevice.get(u) ?? [], changed, left,
          ...(counts ? { otkCounts: counts } : {}), ...(Array.isArray(fb) ? { unusedFallbackKeys: fb } : {}),
        }))));
      } catch (err) {
        this.o.log("error", "a device could not take a transaction's to-device events", { code: codeOf(err) });
        throw err; // the homeserver retries the transaction: nothing is lost
      }
    }));

    const out: RawEvent[] = [];
    for (const raw of asArray(body["events"])) {
      const ev = raw as RawEvent;
      await this.rooms.observe(ev);
      if (ev.type !== "m.room.encrypted" || !ev.room_id || !ev.event_id) {
        out.push(ev);
        continue;
      }
      const clear = await this.decryptOrHold(ev, ev.room_id);
      if (clear) out.push(clear);
    }
    out.push(...(await this.retryHeld(keys)));
    return out;
  }

  /**
   * Whether the homeserver delivers to-device messages to the appservice (MSC2409): the bot's device sends one to
   * itself and waits for it to come back in a transaction. Without that, no room key ever reaches a ghost.
   */
  async probeToDevice(timeoutMs: number): Promise<boolean> {
    const bot = this.o.botUserId;
    const dev = await this.device(bot);
    const sentAt = Date.now();
    const deadline = sentAt + timeoutMs;
    const nonces: string[] = [];
    let back!: () => void;
    const arrived = new Promise<void>((r) => (back = r));
    const onBack = () => {
      for (const n of nonces) this.probes.delete(n);
      if (!this.caughtUp && Date.now() > deadline) this.o.log("info", "the start-up check came back late: the homeserver delivers transactions again", { after_seconds: Math.round((Date.now() - sentAt) / 1000) });
      this.caughtUp = true;
      back();
    };
    // Synapse does not hand a device its own to-device messages back: the probe goes to a second, keyless
    // device of the bot, made for this.
    await this.hs.call("device_create", "PUT", `/_matrix/client/v3/devices/${PROBE_DEVICE}`, { display_name: "matrix-otr-irc start-up check" }, bot);
    // Synapse drops a transaction that has only to-device messages while it is still replaying what it held for
    // an appservice that was down: a probe sent during that replay never comes. So probe again every few seconds
    // until one comes back or time is up; a late one (its nonce stays known) still ends the re-querying of device
    // lists.
    while (!this.caughtUp && Date.now() < deadline) {
      const nonce = randomBytes(12).toString("hex");
      nonces.push(nonce);
      this.probes.set(nonce, onBack);
      await this.hs.call("to_device", "PUT", `/_matrix/client/v3/sendToDevice/${PROBE_TYPE}/${nonce}`, { messages: { [bot]: { [PROBE_DEVICE]: { nonce } } } }, bot, dev.deviceId);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([arrived, new Promise<void>((r) => (timer = setTimeout(r, Math.min(PROBE_REPEAT_MS, Math.max(0, deadline - Date.now())))))]);
      clearTimeout(timer);
    }
    return this.caughtUp;
  }

  /** Whether the room is encrypted, asked of the homeserver as `asUser` the first time. */
  async isEncrypted(roomId: string, asUser: string): Promise<boolean> {
    const known = this.rooms.knownEncrypted(roomId);
    if (known !== undefined) return known;
    try {
      const t = await this.hs.call("room_state", "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`, undefined, asUser);
      const algo = (JSON.parse(t) as { algorithm?: unknown }).algorithm;
      this.rooms.setEncrypted(roomId, typeof algo === "string");
    } catch (err) {
      if (!(err instanceof HomeserverError && err.errcode === "M_NOT_FOUND")) throw err;
      this.rooms.setEncrypted(roomId, false);
    }
    return this.rooms.knownEncrypted(roomId) === true;
  }

  /** A room the bridge just created with encryption on: no need to ask. */
  markEncrypted(roomId: string, encrypted: boolean): void {
    this.rooms.setEncrypted(roomId, encrypted);
  }

  /** Records that one of our users joined or left a room (the adapter's own joins, before their event comes back). */
  async noteMembership(roomId: string, userId: string, joined: boolean): Promise<void> {
    await this.rooms.setOurs(roomId, userId, joined);
  }

  /**
   * Encrypts an event for the room's members as `from` and sends it; returns the event id. `txnId`: the caller's,
   * so a retry after a lost answer makes no second event (re-encrypted, the same id).
   */
  async send(roomId: string, from: string, type: string, content: object, history: HistoryVisibility = "shared", txnId?: string): Promise<string> {
    const { encrypted, deviceId } = await this.use(from, async (dev) => {
      const members = await this.members(roomId, from);
      return { encrypted: await dev.encrypt(roomId, members, type, content, history, !this.caughtUp), deviceId: dev.deviceId };
    });
    this.o.observer?.roomEvent?.("encrypted");
    const txn = encodeURIComponent(txnId ?? `motr.${Date.now()}.${randomBytes(6).toString("hex")}`);
    const res = await this.hs.call("room_send", "PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.encrypted/${txn}`, encrypted, from, deviceId);
    await this.rooms.setOurs(roomId, from, true);
    return String((JSON.parse(res) as { event_id?: unknown }).event_id ?? "");
  }

  async stop(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    await this.replays.flush().catch((err: unknown) => this.o.log("warn", "the Megolm replay records could not be stored", { code: (err as { code?: string })?.code ?? "error" }));
    const devs = await Promise.allSettled([...this.devices.values()]);
    this.devices.clear();
    this.opened.clear();
    for (const d of devs) if (d.status === "fulfilled") await d.value.close();
    await Promise.allSettled([...this.closing.values()]);
  }

  private async members(roomId: string, asUser: string): Promise<string[]> {
    const cached = this.rooms.cachedMembers(roomId);
    if (cached) return cached;
    const t = await this.hs.call("room_members", "GET", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/members?not_membership=leave`, undefined, asUser);
    const chunk = asArray((JSON.parse(t) as { chunk?: unknown }).chunk) as RawEvent[];
    const users = chunk
      .filter((e) => e.type === "m.room.member" && typeof e.state_key === "string" && (e.content?.["membership"] === "join" || e.content?.["membership"] === "invite"))
      .map((e) => e.state_key as string);
    this.rooms.setMembers(roomId, users);
    return users;
  }

  private async decryptOrHold(ev: RawEvent, roomId: string): Promise<RawEvent | null> {
    const content = ev.content ?? {};
    const sessionId = typeof content["session_id"] === "string" ? content["session_id"] : "";
    const index = typeof content["ciphertext"] === "string" ? megolmIndex(content["ciphertext"]) : null;
    if (!sessionId || index === null || content["algorithm"] !== "m.megolm.v1.aes-sha2") {
      this.fail(ev, roomId, (await this.rooms.ourMembers(roomId))[0] ?? this.o.botUserId, "malformed");
      return null;
    }
    const ours = await this.rooms.ourMembers(roomId);
    if (!ours.length) return null; // an event only the homeserver thought was for us: no device of ours is there
    let lastReason: UndecryptableReason = "missing-key";
    for (const u of ours) {
      const r = await this.tryDecrypt(ev, roomId, u, sessionId, index);
      if ("event" in r) return r.event;
      lastReason = r.reason;
      if (r.reason !== "missing-key") break; // tampering and replays do not get better with another device
    }
    if (lastReason === "missing-key" || lastReason === "unknown-index") this.hold(sessionId, { event: ev, roomId, ourUsers: ours, at: Date.now() });
    this.fail(ev, roomId, ours[0]!, lastReason);
    return null;
  }

  private tryDecrypt(ev: RawEvent, roomId: string, userId: string, sessionId: string, index: number): Promise<{ event: RawEvent } | { reason: UndecryptableReason }> {
    return this.use(userId, (dev) => this.tryDecryptOn(dev, ev, roomId, sessionId, index));
  }

  private async tryDecryptOn(dev: BridgeDevice, ev: RawEvent, roomId: string, sessionId: string, index: number): Promise<{ event: RawEvent } | { reason: UndecryptableReason }> {
    try {
      const { clear } = await dev.decrypt(ev, roomId);
      if (await this.replays.isReplay(sessionId, index, ev.event_id!)) return { reason: "replayed" };
      this.o.observer?.roomEvent?.("decrypted");
      return {
        event: {
          ...ev,
          type: typeof clear["type"] === "string" ? clear["type"] : "m.room.message",
          content: (clear["content"] ?? {}) as Record<string, unknown>,
          unsigned: { ...(ev.unsigned ?? {}), "org.matrix_otr_irc.encrypted": true },
        },
      };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const C = this.W.DecryptionErrorCode;
      const reason: UndecryptableReason = code === C.MissingRoomKey ? "missing-key"
        : code === C.UnknownMessageIndex ? "unknown-index"
        : code === C.UnableToDecrypt || code === C.MismatchedIdentityKeys || code === C.MismatchedSender ? "tampered" : "other";
      if (reason === "missing-key" || reason === "unknown-index") await dev.requestMissingKeys().catch(() => undefined);
      return { reason };
    }
  }

  private fail(ev: RawEvent, roomId: string, ourUser: string, reason: UndecryptableReason): void {
    this.o.observer?.decryptionFailure?.(reason);
    if (!ev.sender || !ev.event_id || this.o.isOurUser(ev.sender) || ev.sender === this.o.botUserId) return;
    this.o.onUndecryptable({ roomId, eventId: ev.event_id, sender: ev.sender, ourUser, reason });
  }

  private hold(sessionId: string, p: Pending): void {
    const now = p.at;
    if (this.pendingCount >= MAX_PENDING_EVENTS) this.expire(now, true);
    const list = this.pending.get(sessionId) ?? [];
    if (list.some((x) => x.event.event_id === p.event.event_id)) return;
    list.push(p);
    this.pending.set(sessionId, list);
    this.pendingCount++;
  }

  private expire(now: number, makeRoom: boolean): void {
    for (const [sid, list] of this.pending) {
      const keep = list.filter((p) => now - p.at < PENDING_TTL_MS);
      this.pendingCount -= list.length - keep.length;
      if (keep.length) this.pending.set(sid, keep);
      else this.pending.delete(sid);
    }
    if (makeRoom && this.pendingCount >= MAX_PENDING_EVENTS) {
      const first = this.pending.keys().next().value;
      if (first !== undefined) {
        this.pendingCount -= this.pending.get(first)!.length;
        this.pending.delete(first);
      }
    }
  }

  private async retryHeld(keys: Array<{ roomId: string; sessionId: string }>): Promise<RawEvent[]> {
    const out: RawEvent[] = [];
    for (const k of keys) {
      const list = this.pending.get(k.sessionId);
      if (!list) continue;
      this.pending.delete(k.sessionId);
      this.pendingCount -= list.length;
      for (const p of list) {
        const sessionId = k.sessionId;
        const index = megolmIndex(String(p.event.content?.["ciphertext"] ?? "")) ?? -1;
        let done = false;
        for (const u of p.ourUsers) {
          const r = await this.tryDecrypt(p.event, p.roomId, u, sessionId, index);
          if ("event" in r) { out.push(r.event); done = true; break; }
        }
        if (!done) this.hold(sessionId, p);
      }
    }
    return out;
  }
}

/** Device ids of ours: recognisable in a device list, random so a lost state never reuses one. */
function newDeviceId(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  const b = randomBytes(10);
  return "MOTR" + [...b].map((x) => alphabet[x % alphabet.length]).join("");
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
