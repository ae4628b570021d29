// A Matrix user with real end-to-end encryption, for tests: matrix-js-sdk with its Rust crypto
// (matrix-sdk-crypto-wasm), logged in with a password on a fresh device, syncing. It keeps every timeline
// event it has seen, decrypted where it could be, so `waitForMessage` also finds messages that arrived before
// the call, and tells which ones stayed undecryptable (`decryptionFailures`).
//
// Crypto storage is the in-memory store (`initRustCrypto({ useIndexedDB: false })`): Node has no IndexedDB and
// a test device never outlives its process, so nothing needs persisting. A device is a login: `login()` twice
// for the same user gives two devices.
//
// Sending never refuses unverified devices (AllDevicesIsolationMode without errors on verified-user problems):
// the bridge's ghost devices are cross-signed by their own ghost at best, never verified by the test user.
import { createWriteStream, type WriteStream } from "node:fs";
import { join } from "node:path";
import { inspect } from "node:util";
import {
  ClientEvent, createClient, MatrixEventEvent, Preset, RoomEvent, SyncState,
  type AuthDict, type MatrixClient, type MatrixEvent,
} from "matrix-js-sdk";
import {
  AllDevicesIsolationMode, EventShieldColour, EventShieldReason, type CryptoApi,
} from "matrix-js-sdk/lib/crypto-api/index.js";
import { logger as jsSdkGlobalLogger, type Logger } from "matrix-js-sdk/lib/logger.js";
import { logRoot } from "./proc.js";

export type ShieldColour = "none" | "grey" | "red";

export interface Shield {
  colour: ShieldColour;
  /** The js-sdk's EventShieldReason name (e.g. "UNSIGNED_DEVICE"), null when the colour is "none". */
  reason: string | null;
}

/** A timeline event as the user sees it: decrypted when it was encrypted. */
export interface E2eeMessage {
  roomId: string;
  eventId: string;
  /** Clear type (m.room.message for a decrypted message). */
  type: string;
  sender: string;
  content: Record<string, unknown>;
  /** True when it came as m.room.encrypted (and was decrypted). */
  encrypted: boolean;
  /** The device that encrypted it, by the session's claimed Curve25519 key; undefined for clear events. */
  senderCurve25519Key?: string;
  /** The shield a client would show (from CryptoApi.getEncryptionInfoForEvent); null for clear events. */
  shield: Shield | null;
  /** The js-sdk event itself, for anything else. */
  event: MatrixEvent;
}

export interface DecryptionFailure {
  roomId: string;
  eventId: string;
  sender: string;
  /** DecryptionFailureCode, e.g. MEGOLM_UNKNOWN_INBOUND_SESSION_ID. */
  code: string | null;
  /** The error text of the failed attempt. */
  reason: string;
}

export interface DeviceVerification {
  /** The device is signed by its owner's self-signing key (and the signature checks out). */
  signedByOwner: boolean;
  /** The device is cross-signing verified from this user's point of view (its owner verified by us). */
  crossSigningVerified: boolean;
  /** The device is locally marked verified. */
  localVerified: boolean;
}

export interface E2eeLoginOptions {
  /** Device display name; default "e2ee-test". */
  deviceName?: string;
  /** Time allowed for login, crypto start and the first sync; default 60 s. */
  timeoutMs?: number;
}

interface HomeserverLike { url: string }

const MESSAGE_TIMEOUT_MS = 30_000;

/** A js-sdk Logger writing to one file per device under the harness log dir (the js-sdk is very chatty). */
function fileLogger(path: string): { logger: Logger; close: () => void } {
  const out: WriteStream = createWriteStream(path, { flags: "a" });
  let open = true;
  const make = (prefix: string): Logger => {
    const line = (level: string) => (...msg: unknown[]) => {
      if (!open) return;
      const text = msg.map((m) => (typeof m === "string" ? m : inspect(m, { depth: 3, breakLength: Infinity }))).join(" ");
      out.write(`${new Date().toISOString()} ${level} ${prefix}${text}\n`);
    };
    return {
      trace: line("TRACE"), debug: line("DEBUG"), info: line("INFO"), warn: line("WARN"), error: line("ERROR"),
      getChild: (ns: string) => make(`${prefix}${ns} `),
    };
  };
  return { logger: make(""), close: () => { open = false; out.end(); } };
}

/**
 * Parts of the js-sdk (the event queue, MatrixRTC) log to its global loglevel logger, i.e. to the console at
 * debug level, whatever logger the client got: route that to a file too, once per process.
 */
let globalLogRouted = false;
function routeGlobalLogger(): void {
  if (globalLogRouted) return;
  globalLogRouted = true;
  const { logger: file } = fileLogger(join(logRoot(), "matrix-js-sdk-global.log"));
  type Method = "trace" | "debug" | "info" | "warn" | "error";
  const ll = jsSdkGlobalLogger as unknown as {
    methodFactory: (name: string) => (this: { prefix?: string }, ...args: unknown[]) => void;
    rebuild(): void;
  };
  ll.methodFactory = (name: string) => function (this: { prefix?: string }, ...args: unknown[]) {
    const m: Method = (["trace", "debug", "info", "warn", "error"] as const).find((x) => x === name) ?? "info";
    file[m](...(this?.prefix ? [this.prefix, ...args] : args));
  };
  ll.rebuild();
}

/**
 * The js-sdk arms long ref'd timers it never clears: one per HTTP request (AbortSignal ponyfill, 60-110 s,
 * left running after the response) and a 5-minute one per encrypted live event. After stop() they would keep a
 * test process alive for minutes. Once per process, timers of 20 s or more armed from js-sdk code are unref'd:
 * a request in flight still holds the process through its socket, and the rest only cleans up.
 */
let jsSdkTimersUnrefd = false;
function unrefJsSdkLongTimers(): void {
  if (jsSdkTimersUnrefd) return;
  jsSdkTimersUnrefd = true;
  const original = globalThis.setTimeout;
  const jsSdkFrame = /[\\/]matrix-js-sdk[\\/]/;
  const patched = function (this: unknown, handler: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) {
    const timer = original(handler, ms, ...args);
    if (typeof ms === "number" && ms >= 20_000 && jsSdkFrame.test(new Error().stack ?? "")) timer.unref();
    return timer;
  };
  for (const key of Reflect.ownKeys(original)) {
    const d = Object.getOwnPropertyDescriptor(original, key);
    if (d && !(key in patched)) Object.defineProperty(patched, key, d); // e.g. util.promisify.custom
  }
  globalThis.setTimeout = patched as unknown as typeof setTimeout;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

function shieldOf(colour: EventShieldColour, reason: EventShieldReason | null): Shield {
  const c: ShieldColour = colour === EventShieldColour.RED ? "red" : colour === EventShieldColour.GREY ? "grey" : "none";
  return { colour: c, reason: reason === null ? null : (EventShieldReason[reason] ?? String(reason)) };
}

async function passwordLogin(url: string, user: string, password: string, deviceName: string, timeoutMs: number) {
  const res = await fetch(`${url}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      type: "m.login.password", identifier: { type: "m.id.user", user }, password,
      initial_device_display_name: deviceName,
    }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json()) as { user_id?: string; access_token?: string; device_id?: string; error?: string };
  if (!res.ok || !body.user_id || !body.access_token || !body.device_id) {
    throw new Error(`login ${user}: HTTP ${res.status} ${body.error ?? JSON.stringify(body)}`);
  }
  return { userId: body.user_id, accessToken: body.access_token, deviceId: body.device_id };
}

export class E2eeUser {
  /** Every timeline event seen, by event id, in arrival order. */
  private readonly seen = new Map<string, MatrixEvent>();
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  private constructor(
    readonly client: MatrixClient,
    readonly crypto: CryptoApi,
    readonly userId: string,
    readonly deviceId: string,
    readonly accessToken: string,
    private readonly password: string,
    readonly logPath: string,
    private readonly closeLog: () => void,
    private readonly logger: Logger,
  ) {
    client.on(RoomEvent.Timeline, (ev, room, toStartOfTimeline) => {
      if (toStartOfTimeline || !room || ev.status !== null) return; // back-pagination and our own local echoes
      const id = ev.getId();
      if (!id || this.seen.has(id)) return;
      this.seen.set(id, ev);
      this.wake();
    });
    // A failed event that the key later arrives for is decrypted again in place; failures count live.
    client.on(MatrixEventEvent.Decrypted, () => this.wake());
    // Membership as this client sees it, for a wait that times out on it (CI once saw a joined room stop
    // being "join" on the client).
    client.on(RoomEvent.MyMembership, (room, membership, prev) => {
      this.logger.info(`harness: my membership in ${room.roomId}: ${prev ?? "none"} -> ${membership}`);
    });
  }

  /**
   * Logs `user` (a localpart or a full user id) in with a password on a new device, starts Rust crypto and
   * syncing, and resolves once the first sync is done and the device keys are uploaded.
   */
  static async login(hs: HomeserverLike, user: string, password: string, opts: E2eeLoginOptions = {}): Promise<E2eeUser> {
    routeGlobalLogger();
    unrefJsSdkLongTimers();
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const creds = await passwordLogin(hs.url, user, password, opts.deviceName ?? "e2ee-test", timeoutMs);
    const localpart = creds.userId.slice(1).split(":")[0] ?? "user";
    const logPath = join(logRoot(), `e2ee-user-${localpart}-${creds.deviceId}.log`);
    const { logger, close } = fileLogger(logPath);
    const client = createClient({
      baseUrl: hs.url, userId: creds.userId, deviceId: creds.deviceId, accessToken: creds.accessToken, logger,
    });
    let started = false;
    try {
      await withTimeout(client.initRustCrypto({ useIndexedDB: false }), timeoutMs, `${creds.userId} initRustCrypto`);
      const crypto = client.getCrypto();
      if (!crypto) throw new Error("initRustCrypto left no crypto");
      // Share room keys with every device, verified or not, and never fail a send over a verified user's
      // identity change: the test user plays someone who simply talks to whoever is in the room.
      crypto.setDeviceIsolationMode(new AllDevicesIsolationMode(false));
      crypto.globalBlacklistUnverifiedDevices = false;
      const u = new E2eeUser(client, crypto, creds.userId, creds.deviceId, creds.accessToken, password, logPath, close, logger);
      // Sync errors are retried by the js-sdk itself; the timeout bounds the wait.
      const prepared = new Promise<void>((resolve) => {
        const onSync = (state: SyncState) => {
          if (state === SyncState.Prepared || state === SyncState.Syncing) { client.off(ClientEvent.Sync, onSync); resolve(); }
        };
        client.on(ClientEvent.Sync, onSync);
      });
      await client.startClient({ initialSyncLimit: 50, lazyLoadMembers: false });
      started = true;
      await withTimeout(prepared, timeoutMs, `${creds.userId} first sync`);
      // The device keys go up with the first outgoing-requests loop; wait until the server has them, so that
      // another user who queries us right away finds this device.
      await withTimeout(u.waitForOwnDeviceKeysOnServer(), timeoutMs, `${creds.userId} device keys upload`);
      return u;
    } catch (e) {
      if (started) client.stopClient();
      close();
      throw e;
    }
  }

  /** Another device of the same user (a new login with the same password). */
  loginAnotherDevice(hs: HomeserverLike, opts: E2eeLoginOptions = {}): Promise<E2eeUser> {
    return E2eeUser.login(hs, this.userId, this.password, opts);
  }

  private async waitForOwnDeviceKeysOnServer(): Promise<void> {
    for (;;) {
      const res = await this.client.downloadKeysForUsers([this.userId]);
      if (res.device_keys?.[this.userId]?.[this.deviceId]) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** The m.login.password auth dict for user-interactive auth with this user's password. */
  private passwordAuth(): AuthDict {
    return { type: "m.login.password", identifier: { type: "m.id.user", user: this.userId }, password: this.password };
  }

  /**
   * Creates cross-signing keys, uploads them (user-interactive auth with the password) and signs this device
   * with them, so other users see it as signedByOwner. Resolves once the server has the device's new signature.
   */
  async bootstrapCrossSigning(timeoutMs = 60_000): Promise<void> {
    await withTimeout(this.crypto.bootstrapCrossSigning({
      setupNewCrossSigning: true,
      authUploadDeviceSigningKeys: async (makeRequest) => {
        try {
          await makeRequest(this.passwordAuth());
        } catch (e) {
          // Synapse wants the UIA session id back when it asked for auth first.
          const session = (e as { data?: { session?: string } }).data?.session;
          if (!session) throw e;
          await makeRequest({ ...this.passwordAuth(), session });
        }
      },
    }), timeoutMs, `${this.userId} bootstrapCrossSigning`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.client.downloadKeysForUsers([this.userId]);
      const sigs = res.device_keys?.[this.userId]?.[this.deviceId]?.signatures?.[this.userId] ?? {};
      if (Object.keys(sigs).length >= 2) return; // the device's own key plus the self-signing key
      if (Date.now() > deadline) throw new Error(`${this.userId}: device ${this.deviceId} not cross-signed on the server`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async createRoomWith(opts: { invite: string[]; isDirect: boolean; preset: Preset; name?: string; encrypted: boolean }): Promise<string> {
    const initialState = opts.encrypted
      ? [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }]
      : [];
    const { room_id: roomId } = await this.client.createRoom({
      invite: opts.invite, is_direct: opts.isDirect, preset: opts.preset, initial_state: initialState,
      ...(opts.name ? { name: opts.name } : {}),
    });
    await this.waitForJoinedRoom(roomId, opts.encrypted, 30_000);
    return roomId;
  }

  /** A DM with `userId` (is_direct invite, trusted_private_chat), encrypted from its first event. */
  createEncryptedDm(userId: string): Promise<string> {
    return this.createRoomWith({ invite: [userId], isDirect: true, preset: Preset.TrustedPrivateChat, encrypted: true });
  }

  /** A private room, encrypted from its first event, inviting `invite`. */
  createEncryptedRoom(opts: { invite?: string[]; name?: string } = {}): Promise<string> {
    return this.createRoomWith({ invite: opts.invite ?? [], isDirect: false, preset: Preset.PrivateChat, encrypted: true,
      ...(opts.name ? { name: opts.name } : {}) });
  }

  /** A private room without encryption (a control: what is sent here is plaintext on the server). */
  createUnencryptedRoom(opts: { invite?: string[]; name?: string } = {}): Promise<string> {
    return this.createRoomWith({ invite: opts.invite ?? [], isDirect: false, preset: Preset.PrivateChat, encrypted: false,
      ...(opts.name ? { name: opts.name } : {}) });
  }

  async invite(roomId: string, userId: string): Promise<void> {
    await this.client.invite(roomId, userId);
  }

  /** Resolves with the room id once we are invited to it (by `from`, if given). */
  async waitForInvite(predicate: (roomId: string, inviter: string | undefined) => boolean = () => true,
    timeoutMs = MESSAGE_TIMEOUT_MS): Promise<string> {
    return this.waitFor(() => {
      for (const room of this.client.getRooms()) {
        if (room.getMyMembership() !== "invite") continue;
        const inviter = room.getMember(this.userId)?.events.member?.getSender();
        if (predicate(room.roomId, inviter)) return room.roomId;
      }
      return undefined;
    }, timeoutMs, `${this.userId} waiting for an invite`);
  }

  /** Joins and resolves once sync shows the room joined with its state (so sends know whether to encrypt). */
  async joinRoom(roomIdOrAlias: string, timeoutMs = 30_000): Promise<string> {
    const room = await this.client.joinRoom(roomIdOrAlias);
    await this.waitForJoinedRoom(room.roomId, false, timeoutMs);
    return room.roomId;
  }

  private async waitForJoinedRoom(roomId: string, encrypted: boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    // The client's view is what sends use; the server's view, asked every 2 s, says whether a lagging or wrong
    // client view is the problem (logged, and the wait goes on with the server's answer).
    let serverSaysJoin = false;
    let lastAsked = Date.now();
    const ask = async () => {
      const ev = await this.client.getStateEvent(roomId, "m.room.member", this.userId).catch(() => null);
      serverSaysJoin = (ev as { membership?: string } | null)?.membership === "join";
    };
    await this.waitFor(() => {
      const mine = this.client.getRoom(roomId)?.getMyMembership();
      if (mine === "join") return true;
      if (serverSaysJoin && this.client.getRoom(roomId)) {
        this.logger.warn(`harness: the server says ${this.userId} joined ${roomId}; the client says ${mine}`);
        return true;
      }
      if (Date.now() - lastAsked > 2_000) { lastAsked = Date.now(); void ask().then(() => this.wake()); }
      return undefined;
    }, timeoutMs, `${this.userId} joined ${roomId}`);
    if (!encrypted) return;
    while (!(await this.crypto.isEncryptionEnabledInRoom(roomId))) {
      if (Date.now() > deadline) throw new Error(`${this.userId}: ${roomId} joined but encryption not enabled`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Sends an m.text message, encrypted in an encrypted room (to every device of every member, verified or not).
   * Refuses (throws) when the room is not encrypted, unless `expectEncrypted: false`: the js-sdk sends in the
   * clear to a room it does not know as encrypted, and an E2EE test must not leak by accident.
   */
  async sendText(roomId: string, body: string, opts: { expectEncrypted?: boolean; msgtype?: string } = {}): Promise<string> {
    return this.sendContent(roomId, { msgtype: opts.msgtype ?? "m.text", body }, opts.expectEncrypted ?? true);
  }

  /** Sends any m.room.message content, with sendText's encryption check. */
  async sendContent(roomId: string, content: Record<string, unknown>, expectEncrypted = true): Promise<string> {
    await this.waitForJoinedRoom(roomId, false, 30_000);
    const encrypted = await this.crypto.isEncryptionEnabledInRoom(roomId);
    if (encrypted !== expectEncrypted) {
      throw new Error(`${this.userId}: room ${roomId} is ${encrypted ? "" : "not "}encrypted (expected ${expectEncrypted ? "" : "not "}encrypted)`);
    }
    // The js-sdk types content per msgtype; the harness sends what the test says.
    const res = await this.client.sendMessage(roomId, content as never);
    return res.event_id;
  }

  private view(ev: MatrixEvent): Omit<E2eeMessage, "shield"> | null {
    const roomId = ev.getRoomId();
    const eventId = ev.getId();
    if (!roomId || !eventId || ev.isDecryptionFailure() || ev.isBeingDecrypted() || ev.shouldAttemptDecryption()) return null;
    if (ev.getType() === "m.room.encrypted") return null; // not decrypted (yet)
    return {
      roomId, eventId, type: ev.getType(), sender: ev.getSender() ?? "", content: ev.getContent(),
      encrypted: ev.isEncrypted(), event: ev,
      ...(ev.isEncrypted() ? { senderCurve25519Key: ev.getSenderKey() ?? undefined } : {}),
    } as Omit<E2eeMessage, "shield">;
  }

  /** Every timeline event seen so far that is readable (clear or decrypted), in arrival order. */
  messages(roomId?: string): Omit<E2eeMessage, "shield">[] {
    const out: Omit<E2eeMessage, "shield">[] = [];
    for (const ev of this.seen.values()) {
      const v = this.view(ev);
      if (v && (roomId === undefined || v.roomId === roomId)) out.push(v);
    }
    return out;
  }

  /**
   * The first readable timeline event in `roomId` (seen before or after the call) that `predicate` accepts
   * (a string matches an m.room.message with that exact body), with its shield. Only others' messages and
   * those of our other devices: this device's own sends are not recorded.
   */
  async waitForMessage(roomId: string, predicate: string | ((m: Omit<E2eeMessage, "shield">) => boolean),
    timeoutMs = MESSAGE_TIMEOUT_MS): Promise<E2eeMessage> {
    const match = typeof predicate === "string"
      ? (m: Omit<E2eeMessage, "shield">) => m.type === "m.room.message" && m.content.body === predicate
      : predicate;
    const found = await this.waitFor(() => this.messages(roomId).find(match), timeoutMs,
      `${this.userId} waiting for a message in ${roomId}` +
      (typeof predicate === "string" ? ` (${JSON.stringify(predicate.slice(0, 80))})` : ""));
    return { ...found, shield: await this.shield(found.event) };
  }

  /** The shield for an event, or null when it is not encrypted. */
  async shield(ev: MatrixEvent): Promise<Shield | null> {
    const info = await this.crypto.getEncryptionInfoForEvent(ev);
    return info ? shieldOf(info.shieldColour, info.shieldReason) : null;
  }

  /**
   * Events that are undecryptable right now (a late room key removes an event from this list), except those
   * sent before this device existed (HISTORICAL_MESSAGE_* codes: no key was ever sent to it, and without key
   * backup none can come). For "no unable-to-decrypt" assertions.
   */
  get decryptionFailures(): DecryptionFailure[] {
    return this.failures(false);
  }

  /** The undecryptable events that came with history from before this device logged in. */
  get historicalDecryptionFailures(): DecryptionFailure[] {
    return this.failures(true);
  }

  private failures(historical: boolean): DecryptionFailure[] {
    const out: DecryptionFailure[] = [];
    for (const ev of this.seen.values()) {
      if (!ev.isDecryptionFailure()) continue;
      if (String(ev.decryptionFailureReason ?? "").startsWith("HISTORICAL_MESSAGE") !== historical) continue;
      out.push({
        roomId: ev.getRoomId() ?? "", eventId: ev.getId() ?? "", sender: ev.getSender() ?? "",
        code: ev.decryptionFailureReason ?? null, reason: String(ev.getContent().body ?? ""),
      });
    }
    return out;
  }

  /**
   * How `userId`'s device `deviceId` is trusted from here. Downloads their keys first (a fresh query, so a
   * signature uploaded a moment ago counts); null when the device is unknown.
   */
  async deviceVerification(userId: string, deviceId: string): Promise<DeviceVerification | null> {
    await this.crypto.getUserDeviceInfo([userId], true);
    const s = await this.crypto.getDeviceVerificationStatus(userId, deviceId);
    return s ? { signedByOwner: s.signedByOwner, crossSigningVerified: s.crossSigningVerified, localVerified: s.localVerified } : null;
  }

  /** Device ids of `userId` as this device's crypto knows them (downloading when not tracked yet). */
  async devicesOf(userId: string): Promise<string[]> {
    const map = await this.crypto.getUserDeviceInfo([userId], true);
    return [...(map.get(userId)?.keys() ?? [])];
  }

  /** Deletes one of this user's devices (UIA with the password), e.g. another login's. */
  async deleteDevice(deviceId: string): Promise<void> {
    try {
      await this.client.deleteDevice(deviceId);
    } catch (e) {
      const session = (e as { data?: { session?: string } }).data?.session;
      if (!session) throw e;
      await this.client.deleteDevice(deviceId, { ...this.passwordAuth(), session });
    }
  }

  /** Logs this device out (the server deletes it and its keys) and stops. */
  async logout(): Promise<void> {
    if (this.stopped) return;
    await this.client.logout(true);
    this.shutdown();
  }

  /** Stops syncing and crypto; the device stays on the server. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.shutdown();
  }

  private shutdown(): void {
    this.stopped = true;
    this.client.stopClient();
    this.client.removeAllListeners();
    for (const w of [...this.waiters]) w();
    this.waiters.clear();
    this.closeLog();
  }

  /** Resolves with the first non-undefined value of `check`, re-checked on every event and every 250 ms. */
  private waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let poll: NodeJS.Timeout | undefined;
      const finish = () => { clearTimeout(timer); clearInterval(poll); this.waiters.delete(waiter); };
      const waiter = () => {
        if (this.stopped) { finish(); reject(new Error(`${what}: stopped`)); return; }
        let v: T | undefined;
        try { v = check(); } catch (e) { finish(); reject(e as Error); return; }
        if (v !== undefined) { finish(); resolve(v); }
      };
      timer = setTimeout(() => {
        finish();
        const fails = this.decryptionFailures;
        reject(new Error(`timed out after ${timeoutMs} ms: ${what}` +
          (fails.length ? `; undecryptable: ${JSON.stringify(fails)}` : "") + `; log ${this.logPath}`));
      }, timeoutMs);
      poll = setInterval(waiter, 250);
      this.waiters.add(waiter);
      waiter();
    });
  }
}
