// The long-term OTR identity of a (Matrix user, network): DSA key and instance tag, loaded from the store or
// made on first need and persisted *before* any use, so a key that signed an AKE is never lost to a crash.
// The store's first-writer-wins rule decides races (two bridges, or an import during generation): whatever it
// returns is the identity, even if it is not the key we just made.
import type { Store } from "../../store/types.js";
import { generateInstanceTag, type DsaPrivateKey, type OtrEnv } from "../../otr/index.js";
import { decodeStoredOtrKey, encodeStoredOtrKey } from "../keys-cli.js";
import type { KeyGenerator } from "./keygen.js";

export interface OtrIdentity {
  key: DsaPrivateKey;
  instanceTag: number;
}

export class IdentityError extends Error {
  constructor(readonly code: "bad-stored-key", message: string) {
    super(message);
    this.name = "IdentityError";
  }
}

export class IdentityBook {
  private readonly loading = new Map<string, Promise<OtrIdentity>>();

  constructor(private readonly o: { store: Store; generateKey: KeyGenerator; env: OtrEnv }) {}

  /** `onGenerate` runs once when no key is stored and one must be made (the caller tells the user). */
  get(userId: string, networkId: string, onGenerate?: () => void): Promise<OtrIdentity> {
    const k = `${userId}\u0000${networkId}`;
    let p = this.loading.get(k);
    if (!p) {
      p = this.load(userId, networkId, onGenerate);
      this.loading.set(k, p);
      // A failure (store down, worker died) is not cached: the next message tries again.
      p.catch(() => this.loading.delete(k));
    }
    return p;
  }

  /** Whether the identity is already in memory (no wait, no generation). */
  ready(userId: string, networkId: string): boolean {
    return this.loading.has(`${userId}\u0000${networkId}`);
  }

  private async load(userId: string, networkId: string, onGenerate?: () => void): Promise<OtrIdentity> {
    const { store } = this.o;
    let bytes = await store.getOtrPrivateKey(userId, networkId);
    if (!bytes) {
      onGenerate?.();
      const fresh = await this.o.generateKey();
      bytes = await store.putOtrPrivateKeyIfAbsent(userId, networkId, encodeStoredOtrKey(fresh));
    }
    const decoded = decodeStoredOtrKey(bytes);
    if (!decoded) throw new IdentityError("bad-stored-key", `the stored OTR key of this user on ${networkId} does not parse`);
    const tag = (await store.getInstanceTag(userId, networkId)) ?? (await store.putInstanceTagIfAbsent(userId, networkId, generateInstanceTag(this.o.env)));
    return { key: decoded.key, instanceTag: tag };
  }
}
