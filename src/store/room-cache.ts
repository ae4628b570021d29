// The room mappings (DM, management, channel rooms; both directions) kept in memory in front of a Store. Every
// Matrix event asks which kind of room it is in (three lookups) and every DM message which room its DM has, while
// the mappings change only when a room is made, adopted or left: at 200 msg/s they were most of the store's
// requests (bench:bridge U=300: 5,000 lookups to 2,000 writes in 10 s), each a trip through the store's one queue.
// Written through this process only; one bridge process per database, as everything else in the store assumes.
import type { ChannelKey, DmKey, Store } from "./types.js";

/** Entries kept at most (answers, "no such room" included); the oldest go first. */
export const ROOM_CACHE_MAX = 100_000;

const LOOKUPS = new Set<string>(["getDmRoom", "findDmByRoom", "getManagementRoom", "findManagementRoomOwner", "getChannelRoom", "findChannelByRoom"]);
// close too: a closed store answers store-closed, never from memory.
const WRITES = new Set<string>(["putDmRoom", "deleteDmRoom", "putManagementRoom", "putChannelRoom", "deleteChannelRoom", "close"]);

type Answer = string | DmKey | ChannelKey | null;

function copy(v: Answer): Answer {
  return v !== null && typeof v === "object" ? { ...v } : v;
}

export function cacheRoomMappings(store: Store, max = ROOM_CACHE_MAX): Store {
  const answers = new Map<string, Answer>();
  // Bumped when a mapping write starts and when it ends: a lookup that was under way meanwhile may have read
  // either side of it, so its answer is not kept.
  let generation = 0;
  const forget = () => {
    generation++;
    answers.clear();
  };

  const lookup = (name: string, f: (...a: unknown[]) => Promise<Answer>) => async (...args: unknown[]): Promise<Answer> => {
    const key = `${name}${JSON.stringify(args)}`;
    if (answers.has(key)) {
      const hit = answers.get(key)!;
      answers.delete(key); // re-insert: Map order is the eviction order
      answers.set(key, hit);
      return copy(hit);
    }
    const seen = generation;
    const v = await f(...args);
    if (seen === generation) {
      if (answers.size >= max) answers.delete(answers.keys().next().value!);
      answers.set(key, copy(v));
    }
    return v;
  };

  const write = (f: (...a: unknown[]) => Promise<void>) => async (...args: unknown[]): Promise<void> => {
    forget();
    try {
      await f(...args);
    } finally {
      forget();
    }
  };

  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(obj, prop, receiver) {
      const v = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      let w = wrapped.get(prop);
      if (w === undefined) {
        const f = (v as (...a: unknown[]) => Promise<never>).bind(obj);
        const name = String(prop);
        w = LOOKUPS.has(name) ? lookup(name, f) : WRITES.has(name) ? write(f) : f;
        wrapped.set(prop, w);
      }
      return w;
    },
  });
}
