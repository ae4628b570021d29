// One of the bridge's own Matrix devices (the bot's, or a ghost's): an OlmMachine, the HTTP calls it asks for, and
// its durability. Every operation on a device runs one at a time (the OlmMachine's outgoing-request loop and
// Megolm session sharing must not interleave), and every operation that changes crypto state ends with a snapshot
// written to the store before it returns, so a SIGKILL right after never loses an Olm session, a one-time key the
// server handed out, or a device key.
//
// One exception, for speed: a Megolm encrypt that changed nothing but the outbound session (its ratchet index, the
// steady state of a conversation) is not written. The index is still never used twice: every snapshot written
// while the device is open says its outbound sessions may lag (SnapshotFlags), and a device reopened from such a
// snapshot — after a SIGKILL — starts with no outbound session, so its next message opens a new Megolm session
// (shared with the room's devices first, as for any new session). A clean close writes the state as it is and
// says it does not lag, so after an ordinary restart the sessions continue.
import type { OlmMachine, OutgoingRequest as WasmRequest } from "@matrix-org/matrix-sdk-crypto-wasm";
import { Snapshotter, type IdbFactory } from "./idb-snapshot.js";
import { HomeserverError, type Homeserver } from "./homeserver.js";
import { megolmIndex } from "./megolm.js";
import type { Wasm } from "./wasm.js";

export interface CryptoStatePort {
  getCryptoState(ownerUserId: string, deviceId: string): Promise<Uint8Array | null>;
  putCryptoState(ownerUserId: string, deviceId: string, state: Uint8Array): Promise<void>;
}

/** What a device reports upwards (counts for metrics, never ids or content). */
export interface DeviceObserver {
  olmMessage?(kind: "decrypted" | "undecryptable" | "plaintext" | "invalid"): void;
}

export interface DeviceOptions {
  W: Wasm;
  idb: IdbFactory;
  hs: Homeserver;
  store: CryptoStatePort;
  userId: string;
  deviceId: string;
  displayName: string;
  observer?: DeviceObserver;
}

export interface ToDeviceInput {
  events: object[];
  changed: string[];
  left: string[];
  /** The server's one-time-key counts for this device, when the transaction carried them. */
  otkCounts?: Record<string, number>;
  /** Unused fallback key algorithms, when the transaction carried them (`[]` = none left: make a new one). */
  unusedFallbackKeys?: string[];
}

export interface RoomKeyReceived { roomId: string; sessionId: string }

function storeName(userId: string, deviceId: string): string {
  return `motr/${userId}/${deviceId}`;
}

/**
 * A room's outbound session after a full encrypt (tracked users updated, Olm sessions claimed, room key shared):
 * while none of that can have changed, the next message of the conversation is only encrypted (`encrypt`).
 */
interface SharedRoom { key: string; epoch: number; sessionId: string | null; index: number; at: number }

/** crypto-wasm's defaults for rotating an outbound session, which only the full path applies. */
const ROTATION_MESSAGES = 100;
/** The short path is taken well inside them: the full path runs again before a session could expire. */
const SHORT_PATH_MAX_INDEX = ROTATION_MESSAGES - 10;
const SHORT_PATH_MAX_AGE_MS = 3600_000;
/**
 * From this index on, the session is replaced in the background, right after the message that reached it: a new
 * session shared with the room's devices (Olm to each) and the state written, which costs tens of milliseconds.
 * Done inline by the message that found the session used up, it made every hundredth message that slow; ahead of
 * time, a conversation's next message finds a fresh session already shared and only encrypts.
 */
const ROTATE_AHEAD_INDEX = ROTATION_MESSAGES - 20;

/** crypto-wasm's IndexedDB object store of outbound Megolm sessions (matrix-sdk-indexeddb). */
const OUTBOUND_STORE = "outbound_group_sessions";

export class BridgeDevice {
  private chain: Promise<unknown> = Promise.resolve();
  /** Last one-time-key counts the server told us: passing none would read as "the server has 0" (recipe pitfall 2). */
  private otkCounts: Record<string, number> | null = null;
  private closed = false;
  /** Rooms whose outbound session was shared at `epoch`, and anything that may change who gets the key bumps it. */
  private readonly shared = new Map<string, SharedRoom>();
  private epoch = 0;
  /** Rooms whose session is being replaced ahead of time (ROTATE_AHEAD_INDEX). */
  private readonly rotating = new Set<string>();
  /** The users whose device lists the machine follows: a device-list change for anyone else is not its business. */
  private tracked = new Set<string>();
  /** Whether the snapshot last stored says its outbound sessions may lag (see the module header). */
  private storedLagging: boolean;

  private constructor(private readonly o: DeviceOptions, private readonly m: OlmMachine, private readonly snap: Snapshotter, storedLagging: boolean) {
    this.storedLagging = storedLagging;
  }

  get userId(): string { return this.o.userId; }
  get deviceId(): string { return this.o.deviceId; }
  get curve25519(): string { return this.m.identityKeys.curve25519.toBase64(); }
  get ed25519(): string { return this.m.identityKeys.ed25519.toBase64(); }

  /** Whether the device follows the device list of any of these users. */
  tracks(users: readonly string[]): boolean {
    return users.some((u) => this.tracked.has(u));
  }

  private async refreshTracked(): Promise<void> {
    this.tracked = new Set([...(await this.m.trackedUsers())].map((u) => u.toString()));
  }

  /**
   * Opens the device from its stored state, or creates it: registers the user when needed, creates the device on
   * the homeserver (MSC4190), uploads its keys and a self-signed cross-signing identity, and stores the result
   * before returning.
   */
  static async open(o: DeviceOptions): Promise<BridgeDevice> {
    const prefix = storeName(o.userId, o.deviceId);
    const stored = await o.store.getCryptoState(o.userId, o.deviceId);
    const snap = new Snapshotter(o.idb, prefix);
    await snap.drop();
    // After a SIGKILL the stored outbound sessions may be behind the indexes already sent: start without them.
    const flags = stored ? await snap.restore(stored, { emptyWhenLagging: [OUTBOUND_STORE] }) : { outboundMayLag: false };
    const machine = await o.W.OlmMachine.initialize(new o.W.UserId(o.userId), new o.W.DeviceId(o.deviceId), prefix);
    // Missing room keys are asked for from the sender's other devices (m.room_key_request), answered or not.
    machine.roomKeyRequestsEnabled = true;
    const d = new BridgeDevice(o, machine, snap, flags.outboundMayLag);
    if (!stored) await d.run(() => d.create());
    else await d.run(async () => { if (await d.flush()) await d.persist(); });
    await d.run(() => d.refreshTracked());
    return d;
  }

  private async create(): Promise<void> {
    const { hs, userId, deviceId } = this.o;
    const localpart = /^@([^:]+):/.exec(userId)?.[1] ?? "";
    try {
      await hs.call("register", "POST", "/_matrix/client/v3/register", { type: "m.login.application_service", username: localpart, inhibit_login: true }, userId);
    } catch (err) {
      if (!(err instanceof HomeserverError && err.errcode === "M_USER_IN_USE")) throw err;
    }
    // PUT on a device id creates it for an appservice user (MSC4190) and is idempotent.
    await hs.call("device_create", "PUT", `/_matrix/client/v3/devices/${encodeURIComponent(deviceId)}`, { display_name: this.o.displayName }, userId);
    await this.flush();
    const b = await this.m.bootstrapCrossSigning(true);
    if (b.uploadKeysRequest) await this.send(b.uploadKeysRequest as WasmRequest);
    // An appservice-masqueraded first upload needs no user-interactive auth (MSC3967).
    await hs.call("cross_signing_upload", "POST", "/_matrix/client/v3/keys/device_signing/upload", b.uploadSigningKeysRequest.body, userId, deviceId);
    await hs.call("signatures_upload", "POST", "/_matrix/client/v3/keys/signatures/upload", b.uploadSignaturesRequest.body, userId, deviceId);
    await this.flushAndPersist();
  }

  /** Runs `fn` after every operation queued before it; a failure does not stall the queue. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(Object.assign(new Error("device closed"), { code: "crypto-device-closed" }));
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Feeds one transaction's to-device events, device-list changes and key counts; returns room keys that arrived. */
  receive(input: ToDeviceInput): Promise<RoomKeyReceived[]> {
    return this.run(async () => {
      const { W } = this.o;
      if (input.otkCounts && Object.keys(input.otkCounts).length) this.otkCounts = input.otkCounts;
      const processed = await this.m.receiveSyncChanges(
        JSON.stringify(input.events),
        new W.DeviceLists(input.changed.map((u) => new W.UserId(u)), input.left.map((u) => new W.UserId(u))),
        new Map(Object.entries(this.otkCounts ?? {})),
        input.unusedFallbackKeys ? new Set(input.unusedFallbackKeys) : undefined,
      );
      const keys: RoomKeyReceived[] = [];
      for (const p of processed) {
        const kind = p.type === W.ProcessedToDeviceEventType.Decrypted ? "decrypted"
          : p.type === W.ProcessedToDeviceEventType.UnableToDecrypt ? "undecryptable"
          : p.type === W.ProcessedToDeviceEventType.PlainText ? "plaintext" : "invalid";
        this.o.observer?.olmMessage?.(kind);
        if (kind !== "decrypted") continue;
        try {
          const ev = JSON.parse(p.rawEvent) as { type?: string; content?: { room_id?: unknown; session_id?: unknown } };
          if ((ev.type === "m.room_key" || ev.type === "m.forwarded_room_key") && typeof ev.content?.room_id === "string" && typeof ev.content.session_id === "string") {
            keys.push({ roomId: ev.content.room_id, sessionId: ev.content.session_id });
          }
        } catch { /* not JSON: nothing to retry on */ }
      }
      const changed = input.events.length > 0 || input.unusedFallbackKeys !== undefined || input.changed.length > 0;
      if (input.events.length || input.changed.length || input.left.length) this.epoch++;
      await (changed ? this.flushAndPersist() : this.flush());
      if (input.events.length) await this.refreshTracked(); // an Olm message from someone new may add a user
      return keys;
    });
  }

  /** The clear event (JSON) of an m.room.encrypted event; rejects with the wasm MegolmDecryptionError. */
  decrypt(event: object, roomId: string): Promise<{ clear: Record<string, unknown>; senderDevice: string | undefined }> {
    return this.run(async () => {
      const { W } = this.o;
      const d = await this.m.decryptRoomEvent(JSON.stringify(event), new W.RoomId(roomId), new W.DecryptionSettings(W.TrustRequirement.Untrusted));
      return { clear: JSON.parse(d.event) as Record<string, unknown>, senderDevice: d.senderDevice?.toString() };
    });
  }

  /** Sends the key request the failed decryption queued (if any) and keeps whatever it changed. */
  requestMissingKeys(): Promise<void> {
    return this.run(() => this.flushAndPersist());
  }

  /**
   * Encrypts `content` for every device of `members` (tracking their device lists, claiming one-time keys and
   * sharing the room key first, unless nothing can have changed since the last message: SharedRoom) and returns
   * the m.room.encrypted content. Its Megolm index is never used again, even after a SIGKILL (module header).
   * `requeryDevices`: device lists may be stale (changes not delivered yet), so query them all again first.
   */
  encrypt(roomId: string, members: readonly string[], type: string, content: object,
    historyVisibility: "joined" | "shared" | "invited" | "world_readable", requeryDevices = false): Promise<string> {
    return this.run(async () => {
      const { W } = this.o;
      const key = `${historyVisibility}\u0000${[...members].sort().join("\u0000")}`;
      const s = this.shared.get(roomId);
      // Short path (the steady state of a conversation): same members, no device-list change, no to-device event
      // and no request since the key was last shared, and the session far from rotation: only encrypt.
      const short = !requeryDevices && s !== undefined && s.key === key && s.epoch === this.epoch && s.index < SHORT_PATH_MAX_INDEX && Date.now() - s.at < SHORT_PATH_MAX_AGE_MS;
      if (!short) {
        this.shared.delete(roomId);
        await this.shareKey(roomId, members, historyVisibility, requeryDevices);
      }
      const encrypted = await this.m.encryptRoomEvent(new W.RoomId(roomId), type, JSON.stringify(content));
      const c = JSON.parse(encrypted) as { session_id?: unknown; ciphertext?: unknown };
      const index = typeof c.ciphertext === "string" ? megolmIndex(c.ciphertext) : null;
      // A session replaced ahead of time has no id here yet: its first message tells it.
      if (typeof c.session_id === "string" && index !== null && (!short || s!.sessionId === null || c.session_id === s!.sessionId)) {
        this.shared.set(roomId, { key, epoch: short ? s!.epoch : this.epoch, sessionId: c.session_id, index, at: short ? s!.at : Date.now() });
        if (index >= ROTATE_AHEAD_INDEX) this.rotateAhead(roomId, members, historyVisibility, key);
      }
      // Only the ratchet moved: not written (the module header says why the index is still never reused).
      if (!(this.storedLagging && this.snap.changedStores().every((st) => st.endsWith(`/${OUTBOUND_STORE}`)))) await this.persist();
      return encrypted;
    });
  }

  /** Tracks the members' devices, opens Olm sessions to new ones and shares the room's session (a new one if due). */
  private async shareKey(roomId: string, members: readonly string[], historyVisibility: "joined" | "shared" | "invited" | "world_readable",
    requeryDevices: boolean): Promise<void> {
    const { W } = this.o;
    const users = () => members.map((u) => new W.UserId(u)); // wasm consumes the arrays it is given (pitfall 1)
    await this.m.updateTrackedUsers(users());
    if (requeryDevices) await this.m.markAllTrackedUsersAsDirty();
    if (!members.every((u) => this.tracked.has(u))) await this.refreshTracked();
    await this.flush();
    const claim = await this.m.getMissingSessions(users());
    if (claim) await this.send(claim as unknown as WasmRequest);
    const settings = new W.EncryptionSettings();
    settings.historyVisibility = { joined: W.HistoryVisibility.Joined, shared: W.HistoryVisibility.Shared, invited: W.HistoryVisibility.Invited, world_readable: W.HistoryVisibility.WorldReadable }[historyVisibility];
    settings.rotationPeriodMessages = BigInt(ROTATION_MESSAGES);
    for (const r of await this.m.shareRoomKey(new W.RoomId(roomId), users(), settings)) await this.send(r as unknown as WasmRequest);
  }

  /**
   * Queues the replacement of a room's session behind the current operation (ROTATE_AHEAD_INDEX). A failure only
   * means the replacement happens inline later, as it did before: the old session stays shared and usable.
   */
  private rotateAhead(roomId: string, members: readonly string[], historyVisibility: "joined" | "shared" | "invited" | "world_readable", key: string): void {
    if (this.rotating.has(roomId)) return;
    this.rotating.add(roomId);
    void this.run(async () => {
      const before = this.shared.get(roomId);
      // Something else changed the room's sharing meanwhile (members, device lists): its next message takes the full path.
      if (!before || before.key !== key || before.epoch !== this.epoch) return;
      const { W } = this.o;
      this.shared.delete(roomId);
      await this.m.invalidateGroupSession(new W.RoomId(roomId));
      await this.shareKey(roomId, members, historyVisibility, false);
      this.shared.set(roomId, { key, epoch: this.epoch, sessionId: null, index: -1, at: Date.now() });
      await this.persist();
    }).catch(() => undefined).finally(() => this.rotating.delete(roomId));
  }

  /** Device lists changed while this device was not loaded: have every tracked user's devices queried again. */
  refreshTrackedUsers(): Promise<void> {
    return this.run(async () => {
      this.epoch++;
      await this.m.markAllTrackedUsersAsDirty();
      await this.flush();
    });
  }

  /** Whether the device's cross-signing identity is complete (master, self-signing and user-signing keys held). */
  crossSigned(): Promise<boolean> {
    return this.run(async () => {
      const s = await this.m.crossSigningStatus();
      return s.hasMaster && s.hasSelfSigning && s.hasUserSigning;
    });
  }

  /** Stores the state as it is (saying it does not lag), closes the machine and frees its databases. */
  async close(): Promise<void> {
    await this.run(async () => {
      if (this.snap.changed() || this.storedLagging) await this.write(false);
    }).catch(() => undefined); // not written: the stored snapshot still says it may lag, so nothing is reused
    this.closed = true;
    this.m.close();
    await this.snap.drop().catch(() => undefined);
  }

  private async flushAndPersist(): Promise<void> {
    await this.flush();
    await this.persist();
  }

  /** Writes the state if anything changed since the last write. */
  private async persist(): Promise<void> {
    if (this.snap.changed()) await this.write(true);
  }

  private async write(outboundMayLag: boolean): Promise<void> {
    const blob = await this.snap.snapshot({ outboundMayLag });
    await this.o.store.putCryptoState(this.o.userId, this.o.deviceId, blob);
    this.storedLagging = outboundMayLag;
  }

  /** Sends what the machine asks for; returns how many requests went out. */
  private async flush(): Promise<number> {
    // A keys/upload can be followed by a keys/query and so on: loop until the machine has nothing more to send.
    let sent = 0;
    for (let round = 0; round < 20; round++) {
      const reqs = await this.m.outgoingRequests();
      if (!reqs.length) break;
      for (const r of reqs) await this.send(r as WasmRequest);
      sent += reqs.length;
      this.epoch++; // a key query or upload may have changed whose devices get room keys
    }
    return sent;
  }

  private async send(r: WasmRequest): Promise<void> {
    const { W, hs, userId, deviceId } = this.o;
    const T = W.RequestType;
    const e = encodeURIComponent;
    const req = r as unknown as { type: number; id?: string; body: string; event_type?: string; txn_id?: string; room_id?: string };
    let kind: string, method: string, path: string;
    switch (req.type) {
      case T.KeysUpload: [kind, method, path] = ["keys_upload", "POST", "/_matrix/client/v3/keys/upload"]; break;
      case T.KeysQuery: [kind, method, path] = ["keys_query", "POST", "/_matrix/client/v3/keys/query"]; break;
      case T.KeysClaim: [kind, method, path] = ["keys_claim", "POST", "/_matrix/client/v3/keys/claim"]; break;
      case T.ToDevice: [kind, method, path] = ["to_device", "PUT", `/_matrix/client/v3/sendToDevice/${e(req.event_type ?? "")}/${e(req.txn_id ?? "")}`]; break;
      case T.SignatureUpload: [kind, method, path] = ["signatures_upload", "POST", "/_matrix/client/v3/keys/signatures/upload"]; break;
      case T.RoomMessage: [kind, method, path] = ["room_message", "PUT", `/_matrix/client/v3/rooms/${e(req.room_id ?? "")}/send/${e(req.event_type ?? "")}/${e(req.txn_id ?? "")}`]; break;
      default: return; // key backup (unused)
    }
    const res = await hs.call(kind, method, path, req.body, userId, deviceId);
    if (req.type === T.KeysUpload) {
      try {
        const counts = (JSON.parse(res) as { one_time_key_counts?: Record<string, number> }).one_time_key_counts;
        if (counts) this.otkCounts = counts;
      } catch { /* keep the last known counts */ }
    }
    if (req.id) await this.m.markRequestAsSent(req.id, req.type, res);
  }
}
