// An OTR account: our long-term DSA key, our instance tag, the default policy and the environment. Shared by
// all conversations of one (Matrix user, network); holds no per-peer state.
import { dsaPublicKey, fingerprint, formatFingerprint, serializeDsaPublic, type DsaPrivateKey, type DsaPublicKey } from "./crypto/dsa.js";
import { registerModulus } from "./crypto/modexp.js";
import { bytesToBigInt } from "./crypto/bigint.js";
import type { AkeIdentity } from "./ake.js";
import { defaultEnv, type OtrEnv } from "./env.js";
import type { Policy } from "./policy.js";

/** The smallest valid instance tag (spec v3 "Instance Tags"); 1..0xff are reserved. */
export const MIN_INSTANCE_TAG = 0x100;

/** Smallest usable maxFragmentSize: a v3 fragment header and trailer take 36 characters. */
export const MIN_FRAGMENT_SIZE = 40;

export interface OtrAccountOptions {
  privateKey: DsaPrivateKey;
  instanceTag: number;
  policy: Policy;
  env?: OtrEnv;
  /** Largest line we may send; longer encoded messages are fragmented. 0 = no limit. */
  maxFragmentSize?: number;
}

export class OtrAccount {
  readonly privateKey: DsaPrivateKey;
  readonly publicKey: DsaPublicKey;
  readonly instanceTag: number;
  policy: Policy;
  readonly env: OtrEnv;
  readonly maxFragmentSize: number;
  /** Our 20-byte fingerprint, and libotr's human form of it. */
  readonly fingerprint: Uint8Array;
  readonly fingerprintHuman: string;
  /** @internal what the AKE signs with. */
  readonly identity: AkeIdentity;

  constructor(o: OtrAccountOptions) {
    if (!Number.isInteger(o.instanceTag) || o.instanceTag < MIN_INSTANCE_TAG || o.instanceTag > 0xffffffff) {
      throw new RangeError(`instance tag must be an integer in [0x100, 0xffffffff], got ${o.instanceTag}`);
    }
    const max = checkFragmentSize(o.maxFragmentSize ?? 0);
    this.privateKey = o.privateKey;
    this.publicKey = dsaPublicKey(o.privateKey);
    this.instanceTag = o.instanceTag;
    this.policy = o.policy;
    this.env = o.env ?? defaultEnv;
    this.maxFragmentSize = max;
    this.fingerprint = fingerprint(this.publicKey);
    this.fingerprintHuman = formatFingerprint(this.fingerprint);
    this.identity = { privateKey: o.privateKey, pubBytes: serializeDsaPublic(this.publicKey), fingerprint: this.fingerprint };
    // Signing uses a secret exponent mod our p: let OpenSSL serve it (its DH object is built once).
    registerModulus(o.privateKey.p);
  }
}

/** Caller misuse (RangeError) unless n is 0 (no limit) or an integer >= MIN_FRAGMENT_SIZE; returns n. */
export function checkFragmentSize(n: number): number {
  if (!Number.isInteger(n) || n < 0 || (n > 0 && n < MIN_FRAGMENT_SIZE)) {
    throw new RangeError(`maxFragmentSize must be 0 (no limit) or an integer >= ${MIN_FRAGMENT_SIZE}, got ${n}`);
  }
  return n;
}

/** A fresh random instance tag (>= 0x100), for accounts that have none stored yet. */
export function generateInstanceTag(env: OtrEnv = defaultEnv): number {
  for (;;) {
    const t = Number(bytesToBigInt(env.random(4)));
    if (t >= MIN_INSTANCE_TAG) return t;
  }
}
