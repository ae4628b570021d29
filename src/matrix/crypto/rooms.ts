// What the crypto side must know about rooms, kept from the events that pass through appservice transactions:
// which rooms are encrypted, who is in them (whose devices get the room key), and which of the bridge's own users
// are joined (whose device can decrypt there). The last is persisted so the bridge still knows, after a restart,
// which ghost reads an encrypted event in an old room.

export interface KvPort {
  getState(key: string): Promise<string | null>;
  putState(key: string, value: string): Promise<void>;
  deleteState(key: string): Promise<void>;
}

export interface RawEvent {
  type?: string;
  room_id?: string;
  sender?: string;
  state_key?: string;
  event_id?: string;
  origin_server_ts?: number;
  content?: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
}

const OURS_KEY = (roomId: string) => `e2ee.ours.${roomId}`;
/** Members lists kept per room for key sharing; the oldest are dropped past this many rooms (re-read when needed). */
const MAX_CACHED_MEMBER_LISTS = 20_000;

export class RoomTracker {
  private readonly encrypted = new Map<string, boolean>();
  private readonly members = new Map<string, Set<string>>();
  private readonly ours = new Map<string, Set<string>>();

  constructor(private readonly kv: KvPort, private readonly isOurs: (userId: string) => boolean) {}

  /** Updates what is known from one event of a transaction (state events only). */
  async observe(ev: RawEvent): Promise<void> {
    const room = ev.room_id;
    if (!room || typeof ev.state_key !== "string") return;
    if (ev.type === "m.room.encryption" && ev.state_key === "" && typeof ev.content?.["algorithm"] === "string") {
      this.encrypted.set(room, true);
      return;
    }
    if (ev.type !== "m.room.member") return;
    const user = ev.state_key;
    const membership = ev.content?.["membership"];
    const present = membership === "join" || membership === "invite";
    const list = this.members.get(room);
    if (list) present ? list.add(user) : list.delete(user);
    if (this.isOurs(user)) await this.setOurs(room, user, membership === "join");
  }

  knownEncrypted(roomId: string): boolean | undefined {
    return this.encrypted.get(roomId);
  }

  setEncrypted(roomId: string, encrypted: boolean): void {
    this.encrypted.set(roomId, encrypted);
  }

  cachedMembers(roomId: string): string[] | undefined {
    const m = this.members.get(roomId);
    return m ? [...m] : undefined;
  }

  setMembers(roomId: string, users: Iterable<string>): void {
    if (this.members.size >= MAX_CACHED_MEMBER_LISTS && !this.members.has(roomId)) {
      const oldest = this.members.keys().next().value;
      if (oldest !== undefined) this.members.delete(oldest);
    }
    this.members.set(roomId, new Set(users));
  }

  /** Our users joined to the room, as far as transactions (and earlier runs) have told us. */
  async ourMembers(roomId: string): Promise<string[]> {
    let s = this.ours.get(roomId);
    if (!s) {
      const raw = await this.kv.getState(OURS_KEY(roomId));
      s = new Set(parseList(raw));
      this.ours.set(roomId, s);
    }
    return [...s];
  }

  async setOurs(roomId: string, userId: string, joined: boolean): Promise<void> {
    const before = await this.ourMembers(roomId);
    const s = new Set(before);
    if (joined) s.add(userId);
    else s.delete(userId);
    if (s.size === before.length && before.every((u) => s.has(u))) return;
    this.ours.set(roomId, s);
    if (s.size) await this.kv.putState(OURS_KEY(roomId), JSON.stringify([...s].sort()));
    else await this.kv.deleteState(OURS_KEY(roomId));
  }
}

function parseList(raw: string | null): string[] {
  if (!raw) return [];
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}
