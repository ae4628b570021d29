// The store's fingerprint records seen through src/otr/trust.ts: every decision is the pure module's, this
// file only loads the records of (user, network) and persists what it returns.
import type { Store } from "../../store/types.js";
import { assessFingerprint, distrustFingerprint, normalizeFingerprint, verifyFingerprint, type TrustAssessment, type VerifiedBy } from "../../otr/trust.js";

export class TrustBook {
  constructor(private readonly o: { store: Store; trustOnFirstUse: boolean; now: () => number }) {}

  /** After an AKE: the key's trust state, the events to show (key-changed, ...), records already saved. */
  async sighted(userId: string, networkId: string, foldedNick: string, fingerprint: string): Promise<TrustAssessment> {
    const records = await this.o.store.listFingerprints(userId, networkId);
    const a = assessFingerprint(records, { userId, networkId, peerNick: foldedNick, fingerprint, now: this.o.now() }, { trustOnFirstUse: this.o.trustOnFirstUse });
    for (const r of a.put) await this.o.store.putFingerprint(r);
    return a;
  }

  async verify(userId: string, networkId: string, foldedNick: string, fingerprint: string, by: VerifiedBy): Promise<void> {
    const records = await this.o.store.listFingerprints(userId, networkId);
    for (const r of verifyFingerprint(records, { userId, networkId, peerNick: foldedNick, fingerprint, now: this.o.now() }, by)) {
      await this.o.store.putFingerprint(r);
    }
  }

  async distrust(userId: string, networkId: string, fingerprint: string): Promise<void> {
    const records = await this.o.store.listFingerprints(userId, networkId);
    for (const r of distrustFingerprint(records, { userId, networkId, fingerprint })) await this.o.store.putFingerprint(r);
  }

  /** The record's verification of this key, if any (by smp or manual). */
  async verifiedBy(userId: string, networkId: string, fingerprint: string): Promise<VerifiedBy | null> {
    const fp = normalizeFingerprint(fingerprint);
    const records = await this.o.store.listFingerprints(userId, networkId);
    return records.find((r) => r.fingerprint === fp && r.trust === "verified")?.verifiedBy ?? null;
  }
}
