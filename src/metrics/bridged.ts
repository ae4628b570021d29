// matrix_rooms{kind} and matrix_ghosts: what is bridged, counted at start-up from the store and kept current by
// watching the store's room mappings and the Matrix port's calls. The keys are held in memory only (to count each
// room or ghost once); the gauges carry a kind label, never an id.

import type { Metrics } from "./metrics.js";

type Gauges = Pick<Metrics, "matrixGhosts" | "matrixRooms">;

/** The store methods that map rooms; typed structurally so src/metrics does not import src/store. */
export interface RoomStoreLike {
  listDmRooms(userId: string, networkId?: string): Promise<Array<{ networkId: string; foldedNick: string; roomId: string }>>;
  listChannelRooms(networkId?: string): Promise<Array<{ networkId: string; foldedChannel: string; roomId: string }>>;
  getManagementRoom(userId: string): Promise<string | null>;
}

export interface GhostNamer {
  ghostUserId(networkId: string, foldedNick: string): string;
  parseGhost(userId: string): { networkId: string; foldedNick: string } | null;
}

export class BridgedTracker {
  private readonly dm = new Set<string>();
  private readonly channel = new Set<string>();
  private readonly management = new Set<string>();
  private readonly ghosts = new Set<string>();

  constructor(private readonly metrics: Gauges, private readonly namer: GhostNamer) {
    this.publish();
  }

  /** Counts what the store already maps: every channel room, and the DM and management rooms of `userIds`. */
  async seed(store: RoomStoreLike, userIds: Iterable<string>): Promise<void> {
    for (const c of await store.listChannelRooms()) this.channel.add(key(c.networkId, c.foldedChannel));
    for (const userId of new Set(userIds)) {
      for (const d of await store.listDmRooms(userId)) {
        this.dm.add(key(userId, d.networkId, d.foldedNick));
        this.ghosts.add(this.namer.ghostUserId(d.networkId, d.foldedNick));
      }
      if (await store.getManagementRoom(userId)) this.management.add(userId);
    }
    this.publish();
  }

  /** Wraps the store: room mappings that succeed update the counts. Everything else passes through. */
  store<T extends object>(target: T): T {
    const after: Record<string, (args: unknown[]) => void> = {
      putDmRoom: ([u, n, nick]) => {
        this.dm.add(key(u, n, nick));
        this.ghosts.add(this.namer.ghostUserId(String(n), String(nick)));
      },
      deleteDmRoom: ([u, n, nick]) => this.dm.delete(key(u, n, nick)),
      putChannelRoom: ([n, ch]) => this.channel.add(key(n, ch)),
      deleteChannelRoom: ([n, ch]) => this.channel.delete(key(n, ch)),
      putManagementRoom: ([u]) => this.management.add(String(u)),
    };
    return new Proxy(target, {
      get: (obj, prop, receiver) => {
        const v = Reflect.get(obj, prop, receiver) as unknown;
        if (typeof v !== "function") return v;
        const hook = typeof prop === "string" ? after[prop] : undefined;
        if (!hook) return (v as (...a: unknown[]) => unknown).bind(obj);
        return async (...args: unknown[]) => {
          const r = await (v as (...a: unknown[]) => Promise<unknown>).apply(obj, args);
          hook(args);
          this.publish();
          return r;
        };
      },
    });
  }

  /** Wraps the Matrix port: any ghost a call acts as or on (sender, invitee, display name) counts once. */
  matrix<T extends object>(target: T): T {
    return new Proxy(target, {
      get: (obj, prop, receiver) => {
        const v = Reflect.get(obj, prop, receiver) as unknown;
        if (typeof v !== "function") return v;
        const f = (v as (...a: unknown[]) => unknown).bind(obj);
        if (prop === "ghostUserId" || prop === "parseGhost") return f;
        return (...args: unknown[]) => {
          this.noteGhosts(args);
          return f(...args);
        };
      },
    });
  }

  private noteGhosts(args: unknown[]): void {
    let added = false;
    for (const a of args) {
      if (typeof a !== "string" || !a.startsWith("@") || this.ghosts.has(a)) continue;
      if (this.namer.parseGhost(a)) {
        this.ghosts.add(a);
        added = true;
      }
    }
    if (added) this.publish();
  }

  private publish(): void {
    this.metrics.matrixRooms.set({ kind: "dm" }, this.dm.size);
    this.metrics.matrixRooms.set({ kind: "channel" }, this.channel.size);
    this.metrics.matrixRooms.set({ kind: "management" }, this.management.size);
    this.metrics.matrixGhosts.set(this.ghosts.size);
  }
}

function key(...parts: unknown[]): string {
  return parts.map(String).join("\u0000");
}
