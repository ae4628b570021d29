// The long-term OTR identity of a (Matrix user, network): DSA key and instance tag, each loaded from the store or
// made on first need and persisted *before* any use, so a key that signed an AKE is never lost to a crash.
// The store's first-writer-wins rule decides races (two bridges, or an import during generation): whatever it
// returns is the identity, even if it is not the key we just made.
import type { Store } from "../../store/types.js";
import { generateInstanceTag, type DsaPrivateKey, type OtrEnv } from "../../otr/index.js";
import { decodeStoredOtrKey, encodeStoredOtrKey } from "../keys-cli.js";
import type { KeyGenerator } from "./keygen.js";

export class IdentityError extends Error {
  constructor(readonly code: "bad-stored-key", message: string) {
    super(message);
    this.name = "IdentityError";
  }
}

export class IdentityBook {
  private readonly keys = new Map<string, Promise<DsaPrivateKey>>();
  private readonly tags = new Map<string, Promise<number>>();

  constructor(private readonly o: { store: Store; generateKey: KeyGenerator; env: OtrEnv }) {}

  /**
   * The user's DSA key on the network; `onGenerate` runs once when none is stored and one must be made (the
   * caller tells the user). Only asked for when a conversation may go private: most DMs never need it.
   */
  key(userId: string, networkId: string, onGenerate?: () => void): Promise<DsaPrivateKey> {
    return once(this.keys, `${userId}\u0000${networkId}`, () => this.loadKey(userId, networkId, onGenerate));
  }

  /** The user's instance tag on the network (a store read, or a random one made and stored). */
  instanceTag(userId: string, networkId: string): Promise<number> {
    const { store, env } = this.o;
    return once(this.tags, `${userId}\u0000${networkId}`, async () =>
      (await store.getInstanceTag(userId, networkId)) ?? (await store.putInstanceTagIfAbsent(userId, networkId, generateInstanceTag(env))));
  }

  /** Whether the key is loaded or being loaded (a message needing it waits no longer than that). */
  keyRequested(userId: string, networkId: string): boolean {
    return this.keys.has(`${userId}\u0000${networkId}`);
  }

  private async loadKey(userId: string, networkId: string, onGenerate?: () => void): Promise<DsaPrivateKey> {
    const { store } = this.o;
    let bytes = await store.getOtrPrivateKey(userId, networkId);
    if (!bytes) {
      onGenerate?.();
      const fresh = await this.o.generateKey();
      bytes = await store.putOtrPrivateKeyIfAbsent(userId, networkId, encodeStoredOtrKey(fresh));
    }
    const decoded = decodeStoredOtrKey(bytes);
    if (!decoded) throw new IdentityError("bad-stored-key", `the stored OTR key of this user on ${networkId} does not parse`);
    return decoded.key;
  }
}

/** One load per key at a time and its result kept; a failure (store down, worker died) is not: the next need tries again. */
function once<T>(cache: Map<string, Promise<T>>, k: string, load: () => Promise<T>): Promise<T> {
  let p = cache.get(k);
  if (!p) {
    p = load();
    cache.set(k, p);
    p.catch(() => cache.delete(k));
  }
  return p;
}
