// Trust model: what the bridge should believe about the key a peer just presented. Pure: the caller
// loads the known records for (user, network), passes them in with what was seen, and persists the
// records this returns.
//
// Trust belongs to a public-key fingerprint, never to a nick: a verified key stays verified under any
// nick the peer uses, and a known contact (same network, same case-folded nick) presenting a key other
// than the one(s) verified for that nick is a loud `key-changed`, whatever else happens.
//
// The record shape mirrors the store's FingerprintRecord (src/otr/ may not import the store). With
// trust on first use, the first key of a brand-new contact is recorded as verified; the store only knows
// "smp" and "manual" as ways of verifying, so such records carry TOFU_VERIFIED_BY.

export type TrustState = "unknown" | "unverified" | "verified";
export type VerifiedBy = "smp" | "manual";

export interface TrustRecord {
  userId: string;
  networkId: string;
  /** Case-folded nick. */
  peerNick: string;
  /** 40 lowercase hex digits. */
  fingerprint: string;
  trust: "unverified" | "verified";
  verifiedBy: VerifiedBy | null;
  firstSeen: number;
  lastSeen: number;
}

export type TrustEvent =
  | { type: "first-seen"; peerNick: string; fingerprint: string; trustedOnFirstUse: boolean }
  /** Loud: a contact with verified key(s) presents another key; the session is unverified. */
  | { type: "key-changed"; peerNick: string; fingerprint: string; verifiedFingerprints: string[] }
  /** The key is known under other nick(s); its trust (whatever it is) carries over. */
  | { type: "nick-changed-same-key"; peerNick: string; fingerprint: string; previousNicks: string[]; state: TrustState };

export interface TrustAssessment {
  state: TrustState;
  /** Records to insert or replace, keyed by (user, network, peerNick, fingerprint). */
  put: TrustRecord[];
  events: TrustEvent[];
}

export interface Sighting {
  userId: string;
  networkId: string;
  /** Case-folded by the caller (IRC casemapping is the IRC adapter's business). */
  peerNick: string;
  /** Any common spelling: 40 hex digits, upper or lower case, with or without spaces. */
  fingerprint: string;
  now: number;
}

/** How a trust-on-first-use record is marked; the store has no separate value for it. */
export const TOFU_VERIFIED_BY: VerifiedBy = "manual";

export class TrustUsageError extends Error {
  constructor(readonly code: "bad-fingerprint" | "bad-nick", message: string) {
    super(message);
    this.name = "TrustUsageError";
  }
}

/** "AAAAAAAA BBBBBBBB ..." or any case/spacing of 40 hex digits -> 40 lowercase hex digits. */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replace(/\s+/g, "").toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(hex)) throw new TrustUsageError("bad-fingerprint", "a fingerprint is 40 hex digits");
  return hex;
}

function checkSighting(s: Sighting): { nick: string; fp: string } {
  if (s.peerNick.length === 0) throw new TrustUsageError("bad-nick", "the peer nick must not be empty");
  return { nick: s.peerNick, fp: normalizeFingerprint(s.fingerprint) };
}

function mine(records: readonly TrustRecord[], s: Sighting): TrustRecord[] {
  return records.filter((r) => r.userId === s.userId && r.networkId === s.networkId);
}

/**
 * A peer presented `fingerprint` (after a successful AKE). Returns the trust state of that key, the
 * records to persist (always at least the sighting itself, with lastSeen = now) and the events to show.
 */
export function assessFingerprint(records: readonly TrustRecord[], seen: Sighting, opts: { trustOnFirstUse: boolean }): TrustAssessment {
  const { nick, fp } = checkSighting(seen);
  const known = mine(records, seen);
  const byKey = known.filter((r) => r.fingerprint === fp);
  const byNick = known.filter((r) => r.peerNick === nick);
  const verifiedKey = byKey.find((r) => r.trust === "verified") ?? null;
  const nickVerified = [...new Set(byNick.filter((r) => r.trust === "verified").map((r) => r.fingerprint))];
  const existing = byKey.find((r) => r.peerNick === nick) ?? null;
  const events: TrustEvent[] = [];

  let state: TrustState;
  let trust: TrustRecord["trust"];
  let verifiedBy: VerifiedBy | null;
  if (verifiedKey) {
    state = "verified";
    trust = "verified";
    verifiedBy = verifiedKey.verifiedBy ?? TOFU_VERIFIED_BY;
  } else if (byKey.length > 0) {
    state = "unverified";
    trust = "unverified";
    verifiedBy = null;
  } else {
    // Never seen under any nick. Trust on first use only for a contact we know nothing about: a nick
    // that already has keys on record is not on its first use.
    const tofu = opts.trustOnFirstUse && byNick.length === 0;
    state = tofu ? "verified" : "unknown";
    trust = tofu ? "verified" : "unverified";
    verifiedBy = tofu ? TOFU_VERIFIED_BY : null;
    events.push({ type: "first-seen", peerNick: nick, fingerprint: fp, trustedOnFirstUse: tofu });
  }

  if (trust !== "verified" && nickVerified.length > 0) {
    events.unshift({ type: "key-changed", peerNick: nick, fingerprint: fp, verifiedFingerprints: nickVerified });
  }
  if (byKey.length > 0 && !existing) {
    const previousNicks = [...new Set(byKey.map((r) => r.peerNick))];
    events.push({ type: "nick-changed-same-key", peerNick: nick, fingerprint: fp, previousNicks, state });
  }

  const put: TrustRecord[] = [{
    userId: seen.userId, networkId: seen.networkId, peerNick: nick, fingerprint: fp, trust, verifiedBy,
    firstSeen: existing ? existing.firstSeen : seen.now, lastSeen: seen.now,
  }];
  return { state, put, events };
}

/**
 * The user verified `fingerprint` (by SMP or by comparing it). Trust is the key's: every record of that
 * key for (user, network) becomes verified, and the record for this nick is created if missing.
 */
export function verifyFingerprint(records: readonly TrustRecord[], seen: Sighting, by: VerifiedBy): TrustRecord[] {
  const { nick, fp } = checkSighting(seen);
  const byKey = mine(records, seen).filter((r) => r.fingerprint === fp);
  const out = byKey.map((r) => ({ ...r, trust: "verified" as const, verifiedBy: by }));
  if (!byKey.some((r) => r.peerNick === nick)) {
    out.push({
      userId: seen.userId, networkId: seen.networkId, peerNick: nick, fingerprint: fp, trust: "verified",
      verifiedBy: by, firstSeen: seen.now, lastSeen: seen.now,
    });
  }
  return out;
}

/** The user withdraws trust from `fingerprint`: every record of that key becomes unverified. */
export function distrustFingerprint(records: readonly TrustRecord[], who: { userId: string; networkId: string; fingerprint: string }): TrustRecord[] {
  const fp = normalizeFingerprint(who.fingerprint);
  return records
    .filter((r) => r.userId === who.userId && r.networkId === who.networkId && r.fingerprint === fp && r.trust !== "unverified")
    .map((r) => ({ ...r, trust: "unverified" as const, verifiedBy: null }));
}
