// In-memory Store for unit tests of the bridge: the same observable behaviour as the SQLite and PostgreSQL
// engines (validation, first-writer-wins, one-room-one-key, copies in and out), held to it by the shared suite
// in test/store/. Nothing is sealed because nothing leaves the process.
import { StoreError, type ChannelKey, type ChannelRoom, type DmKey, type DmRoom, type FingerprintRecord, type OtrPolicyName, type Store, type UserNetwork } from "./types.js";
import * as v from "./validate.js";
import { byKeys } from "./order.js";
import { checkRecords, INBOX_DONE_MAX, INBOX_DONE_RETENTION_MS } from "./inbox.js";
import { checkOutboxRecords } from "./outbox.js";
import type { InboxEvent, InboxRecord, OutboxEntry, OutboxRecord } from "./types.js";

const SEP = "\0"; // ids never contain NUL (validate.checkId), so joined keys cannot collide

function k(...parts: string[]): string {
  return parts.join(SEP);
}

export class MemoryStore implements Store {
  private closed = false;
  private readonly userNetworks = new Map<string, UserNetwork>();
  private readonly passwords = new Map<string, string>();
  private readonly privateKeys = new Map<string, Uint8Array>();
  private readonly instanceTags = new Map<string, number>();
  private readonly fingerprints = new Map<string, FingerprintRecord>();
  private readonly dmRooms = new Map<string, DmRoom>();
  private readonly dmByRoom = new Map<string, string>();
  private readonly managementRooms = new Map<string, string>();
  private readonly managementByRoom = new Map<string, string>();
  private readonly channelRooms = new Map<string, ChannelRoom>();
  private readonly channelByRoom = new Map<string, string>();
  private readonly channelKeys = new Map<string, string>();
  private readonly cryptoStates = new Map<string, { ownerUserId: string; deviceId: string; state: Uint8Array }>();
  private readonly peerPolicies = new Map<string, OtrPolicyName>();
  private readonly otrSessions = new Map<string, Uint8Array>();
  private readonly state = new Map<string, string>();
  /** Insertion order is arrival order; `event` null and `doneAt` set once done. */
  private readonly inbox = new Map<string, { roomId: string; seq: number; event: Uint8Array | null; receivedAt: number; doneAt: number | null }>();
  private inboxSeq = 0;
  private readonly outbox = new Map<number, OutboxEntry>();
  private outboxSeq = 0;

  private open(): void {
    if (this.closed) throw new StoreError("store-closed", "the store is closed");
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async getUserNetwork(userId: string, networkId: string): Promise<UserNetwork | null> {
    this.open();
    const u = this.userNetworks.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId)));
    return u ? { ...u } : null;
  }

  async putUserNetwork(u: UserNetwork): Promise<void> {
    this.open();
    const c = v.checkUserNetwork(u);
    this.userNetworks.set(k(c.userId, c.networkId), c);
  }

  async listUserNetworks(userId: string): Promise<UserNetwork[]> {
    this.open();
    v.checkId("userId", userId);
    return [...this.userNetworks.values()].filter((u) => u.userId === userId).map((u) => ({ ...u })).sort(byKeys("networkId"));
  }

  async getIrcPassword(userId: string, networkId: string): Promise<string | null> {
    this.open();
    return this.passwords.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId))) ?? null;
  }

  async setIrcPassword(userId: string, networkId: string, pw: string | null): Promise<void> {
    this.open();
    const key = k(v.checkId("userId", userId), v.checkId("networkId", networkId));
    const p = v.checkPassword(pw);
    if (p === null) this.passwords.delete(key);
    else this.passwords.set(key, p);
  }

  async getOtrPrivateKey(userId: string, networkId: string): Promise<Uint8Array | null> {
    this.open();
    const key = this.privateKeys.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId)));
    return key ? new Uint8Array(key) : null;
  }

  async putOtrPrivateKeyIfAbsent(userId: string, networkId: string, key: Uint8Array): Promise<Uint8Array> {
    this.open();
    const id = k(v.checkId("userId", userId), v.checkId("networkId", networkId));
    const bytes = v.checkKeyBytes(key);
    const existing = this.privateKeys.get(id);
    if (existing) return new Uint8Array(existing);
    // new Uint8Array(x) copies; x.slice() would alias the caller's memory when x is a Buffer (Buffer#slice is a view).
    const copy = new Uint8Array(bytes);
    this.privateKeys.set(id, copy);
    return new Uint8Array(copy);
  }

  async getInstanceTag(userId: string, networkId: string): Promise<number | null> {
    this.open();
    return this.instanceTags.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId))) ?? null;
  }

  async putInstanceTagIfAbsent(userId: string, networkId: string, tag: number): Promise<number> {
    this.open();
    const id = k(v.checkId("userId", userId), v.checkId("networkId", networkId));
    const t = v.checkInstanceTag(tag);
    const existing = this.instanceTags.get(id);
    if (existing !== undefined) return existing;
    this.instanceTags.set(id, t);
    return t;
  }

  async listFingerprints(userId: string, networkId: string): Promise<FingerprintRecord[]> {
    this.open();
    v.checkId("userId", userId);
    v.checkId("networkId", networkId);
    return [...this.fingerprints.values()]
      .filter((r) => r.userId === userId && r.networkId === networkId)
      .map((r) => ({ ...r }))
      .sort(byKeys("peerNick", "firstSeen", "fingerprint"));
  }

  async putFingerprint(r: FingerprintRecord): Promise<void> {
    this.open();
    const c = v.checkFingerprintRecord(r);
    this.fingerprints.set(k(c.userId, c.networkId, c.peerNick, c.fingerprint), c);
  }

  async deleteFingerprint(userId: string, networkId: string, fingerprint: string, peerNick?: string): Promise<void> {
    this.open();
    v.checkId("userId", userId);
    v.checkId("networkId", networkId);
    const fp = v.normalizeFingerprint(fingerprint);
    if (peerNick !== undefined) v.checkId("peerNick", peerNick);
    for (const [key, r] of this.fingerprints) {
      if (r.userId === userId && r.networkId === networkId && r.fingerprint === fp && (peerNick === undefined || r.peerNick === peerNick)) {
        this.fingerprints.delete(key);
      }
    }
  }

  async getDmRoom(userId: string, networkId: string, foldedNick: string): Promise<string | null> {
    this.open();
    return this.dmRooms.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)))?.roomId ?? null;
  }

  async putDmRoom(userId: string, networkId: string, foldedNick: string, roomId: string): Promise<void> {
    this.open();
    const key = k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick));
    v.checkId("roomId", roomId);
    const owner = this.dmByRoom.get(roomId);
    if (owner !== undefined && owner !== key) throw new StoreError("room-conflict", "that room is already mapped to another DM");
    const previous = this.dmRooms.get(key);
    if (previous) this.dmByRoom.delete(previous.roomId);
    this.dmRooms.set(key, { userId, networkId, foldedNick, roomId });
    this.dmByRoom.set(roomId, key);
  }

  async deleteDmRoom(userId: string, networkId: string, foldedNick: string): Promise<void> {
    this.open();
    const key = k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick));
    const previous = this.dmRooms.get(key);
    if (!previous) return;
    this.dmRooms.delete(key);
    this.dmByRoom.delete(previous.roomId);
  }

  async findDmByRoom(roomId: string): Promise<DmKey | null> {
    this.open();
    const key = this.dmByRoom.get(v.checkId("roomId", roomId));
    const r = key === undefined ? undefined : this.dmRooms.get(key);
    return r ? { userId: r.userId, networkId: r.networkId, foldedNick: r.foldedNick } : null;
  }

  async listDmRooms(userId: string, networkId?: string): Promise<DmRoom[]> {
    this.open();
    v.checkId("userId", userId);
    if (networkId !== undefined) v.checkId("networkId", networkId);
    return [...this.dmRooms.values()]
      .filter((r) => r.userId === userId && (networkId === undefined || r.networkId === networkId))
      .map((r) => ({ ...r }))
      .sort(byKeys("networkId", "foldedNick"));
  }

  async getManagementRoom(userId: string): Promise<string | null> {
    this.open();
    return this.managementRooms.get(v.checkId("userId", userId)) ?? null;
  }

  async putManagementRoom(userId: string, roomId: string): Promise<void> {
    this.open();
    v.checkId("userId", userId);
    v.checkId("roomId", roomId);
    const owner = this.managementByRoom.get(roomId);
    if (owner !== undefined && owner !== userId) throw new StoreError("room-conflict", "that room is already another user's management room");
    const previous = this.managementRooms.get(userId);
    if (previous !== undefined) this.managementByRoom.delete(previous);
    this.managementRooms.set(userId, roomId);
    this.managementByRoom.set(roomId, userId);
  }

  async findManagementRoomOwner(roomId: string): Promise<string | null> {
    this.open();
    return this.managementByRoom.get(v.checkId("roomId", roomId)) ?? null;
  }

  async getChannelRoom(networkId: string, foldedChannel: string): Promise<string | null> {
    this.open();
    return this.channelRooms.get(k(v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel)))?.roomId ?? null;
  }

  async putChannelRoom(networkId: string, foldedChannel: string, roomId: string): Promise<void> {
    this.open();
    const key = k(v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel));
    v.checkId("roomId", roomId);
    const owner = this.channelByRoom.get(roomId);
    if (owner !== undefined && owner !== key) throw new StoreError("room-conflict", "that room is already mapped to another channel");
    const previous = this.channelRooms.get(key);
    if (previous) this.channelByRoom.delete(previous.roomId);
    this.channelRooms.set(key, { networkId, foldedChannel, roomId });
    this.channelByRoom.set(roomId, key);
  }

  async deleteChannelRoom(networkId: string, foldedChannel: string): Promise<void> {
    this.open();
    const key = k(v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel));
    const previous = this.channelRooms.get(key);
    if (!previous) return;
    this.channelRooms.delete(key);
    this.channelByRoom.delete(previous.roomId);
  }

  async findChannelByRoom(roomId: string): Promise<ChannelKey | null> {
    this.open();
    const key = this.channelByRoom.get(v.checkId("roomId", roomId));
    const r = key === undefined ? undefined : this.channelRooms.get(key);
    return r ? { networkId: r.networkId, foldedChannel: r.foldedChannel } : null;
  }

  async listChannelRooms(networkId?: string): Promise<ChannelRoom[]> {
    this.open();
    if (networkId !== undefined) v.checkId("networkId", networkId);
    return [...this.channelRooms.values()]
      .filter((r) => networkId === undefined || r.networkId === networkId)
      .map((r) => ({ ...r }))
      .sort(byKeys("networkId", "foldedChannel"));
  }

  async getChannelKey(userId: string, networkId: string, foldedChannel: string): Promise<string | null> {
    this.open();
    return this.channelKeys.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel))) ?? null;
  }

  async setChannelKey(userId: string, networkId: string, foldedChannel: string, key: string | null): Promise<void> {
    this.open();
    const id = k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedChannel", foldedChannel));
    const c = v.checkChannelKey(key);
    if (c === null) this.channelKeys.delete(id);
    else this.channelKeys.set(id, c);
  }

  async getCryptoState(ownerUserId: string, deviceId: string): Promise<Uint8Array | null> {
    this.open();
    const r = this.cryptoStates.get(k(v.checkMatrixUserId("ownerUserId", ownerUserId), v.checkDeviceId(deviceId)));
    return r ? new Uint8Array(r.state) : null;
  }

  async putCryptoState(ownerUserId: string, deviceId: string, state: Uint8Array): Promise<void> {
    this.open();
    const owner = v.checkMatrixUserId("ownerUserId", ownerUserId);
    const device = v.checkDeviceId(deviceId);
    // A copy, as for private keys: the caller may reuse its buffer (often a Buffer) as soon as this resolves.
    this.cryptoStates.set(k(owner, device), { ownerUserId: owner, deviceId: device, state: new Uint8Array(v.checkCryptoState(state)) });
  }

  async deleteCryptoState(ownerUserId: string, deviceId: string): Promise<void> {
    this.open();
    this.cryptoStates.delete(k(v.checkMatrixUserId("ownerUserId", ownerUserId), v.checkDeviceId(deviceId)));
  }

  async listCryptoDevices(): Promise<Array<{ ownerUserId: string; deviceId: string }>> {
    this.open();
    return [...this.cryptoStates.values()].map(({ ownerUserId, deviceId }) => ({ ownerUserId, deviceId })).sort(byKeys("ownerUserId", "deviceId"));
  }

  async getOtrSession(userId: string, networkId: string, foldedNick: string): Promise<Uint8Array | null> {
    this.open();
    const r = this.otrSessions.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)));
    return r ? new Uint8Array(r) : null;
  }

  async putOtrSession(userId: string, networkId: string, foldedNick: string, state: Uint8Array): Promise<void> {
    this.open();
    const id = k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick));
    this.otrSessions.set(id, new Uint8Array(v.checkOtrSession(state)));
  }

  async deleteOtrSession(userId: string, networkId: string, foldedNick: string): Promise<void> {
    this.open();
    this.otrSessions.delete(k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick)));
  }

  async getPeerPolicy(userId: string, networkId: string, foldedNick: string): Promise<OtrPolicyName | null> {
    this.open();
    return this.peerPolicies.get(k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick))) ?? null;
  }

  async putPeerPolicy(userId: string, networkId: string, foldedNick: string, policy: OtrPolicyName | null): Promise<void> {
    this.open();
    const key = k(v.checkId("userId", userId), v.checkId("networkId", networkId), v.checkId("foldedNick", foldedNick));
    const p = v.checkPolicy(policy, true);
    if (p === null) this.peerPolicies.delete(key);
    else this.peerPolicies.set(key, p);
  }

  async getState(key: string): Promise<string | null> {
    this.open();
    return this.state.get(v.checkId("key", key)) ?? null;
  }

  async putState(key: string, value: string): Promise<void> {
    this.open();
    this.state.set(v.checkId("key", key), v.checkStateValue(value));
  }

  async deleteState(key: string): Promise<void> {
    this.open();
    this.state.delete(v.checkId("key", key));
  }

  async inboxRecord(events: readonly InboxRecord[]): Promise<boolean[]> {
    this.open();
    const now = Date.now();
    return checkRecords(events).map((e) => {
      if (this.inbox.has(e.eventId)) return false;
      this.inbox.set(e.eventId, { roomId: e.roomId, seq: ++this.inboxSeq, event: new Uint8Array(e.event), receivedAt: now, doneAt: null });
      return true;
    });
  }

  async inboxDone(eventIds: readonly string[]): Promise<void> {
    this.open();
    const now = Date.now();
    for (const id of eventIds) {
      const r = this.inbox.get(v.checkMatrixId("eventId", "$", id));
      if (r && r.doneAt === null) Object.assign(r, { event: null, doneAt: now });
    }
    const done = [...this.inbox.entries()].filter(([, r]) => r.doneAt !== null);
    let excess = done.length - INBOX_DONE_MAX;
    for (const [id, r] of done) {
      if (excess > 0 || r.doneAt! < now - INBOX_DONE_RETENTION_MS) {
        this.inbox.delete(id);
        excess--;
      }
    }
  }

  async inboxPending(): Promise<InboxEvent[]> {
    this.open();
    return [...this.inbox.entries()]
      .filter(([, r]) => r.doneAt === null)
      .map(([eventId, r]) => ({ eventId, roomId: r.roomId, seq: r.seq, receivedAt: r.receivedAt, event: new Uint8Array(r.event!) }));
  }

  async outboxAdd(records: ReadonlyArray<OutboxRecord & { queuedAt: number }>): Promise<number[]> {
    this.open();
    return checkOutboxRecords(records).map((r) => {
      const seq = ++this.outboxSeq;
      this.outbox.set(seq, { ...r, seq, message: new Uint8Array(r.message) });
      return seq;
    });
  }

  async outboxDelete(seqs: readonly number[]): Promise<void> {
    this.open();
    for (const s of v.checkSeqs(seqs)) this.outbox.delete(s);
  }

  async outboxPending(): Promise<OutboxEntry[]> {
    this.open();
    return [...this.outbox.values()].sort((a, b) => a.seq - b.seq).map((e) => ({ ...e, message: new Uint8Array(e.message) }));
  }
}
