// An OTR account: our long-term DSA key (possibly given later), our instance tag, the default policy and the
// environment. Shared by all conversations of one (Matrix user, network); holds no per-peer state.
import { dsaPublicKey, fingerprint, formatFingerprint, serializeDsaPublic, type DsaPrivateKey, type DsaPublicKey } from "./crypto/dsa.js";
import { WS_TAG_BASE } from "./wire/messages.js";
import { bytesToBigInt } from "./crypto/bigint.js";
import type { AkeIdentity } from "./ake.js";
import { defaultEnv, type OtrEnv } from "./env.js";
import type { Policy } from "./policy.js";

/** The smallest valid instance tag (spec v3 "Instance Tags"); 1..0xff are reserved. */
export const MIN_INSTANCE_TAG = 0x100;

/** Smallest usable maxFragmentSize: a v3 fragment header and trailer take 36 characters. */
export const MIN_FRAGMENT_SIZE = 40;

export interface OtrAccountOptions {
  /**
   * Omitted: the key is given later with setPrivateKey, before the first AKE. Making a DSA key costs about half
   * a second of CPU, and most conversations never go private: the caller can wait until mayNeedPrivateKey says
   * a received line could start an AKE.
   */
  privateKey?: DsaPrivateKey;
  instanceTag: number;
  policy: Policy;
  env?: OtrEnv;
  /** Largest line we may send; longer encoded messages are fragmented. 0 = no limit. */
  maxFragmentSize?: number;
}

interface KeyParts {
  privateKey: DsaPrivateKey;
  publicKey: DsaPublicKey;
  fingerprint: Uint8Array;
  fingerprintHuman: string;
  identity: AkeIdentity;
}

export class OtrAccount {
  readonly instanceTag: number;
  policy: Policy;
  readonly env: OtrEnv;
  readonly maxFragmentSize: number;
  private key: KeyParts | null = null;

  constructor(o: OtrAccountOptions) {
    if (!Number.isInteger(o.instanceTag) || o.instanceTag < MIN_INSTANCE_TAG || o.instanceTag > 0xffffffff) {
      throw new RangeError(`instance tag must be an integer in [0x100, 0xffffffff], got ${o.instanceTag}`);
    }
    this.maxFragmentSize = checkFragmentSize(o.maxFragmentSize ?? 0);
    this.instanceTag = o.instanceTag;
    this.policy = o.policy;
    this.env = o.env ?? defaultEnv;
    if (o.privateKey) this.setPrivateKey(o.privateKey);
  }

  get hasPrivateKey(): boolean {
    return this.key !== null;
  }

  /** Gives a keyless account its key; once (another key later is caller misuse: the fingerprint would change). */
  setPrivateKey(privateKey: DsaPrivateKey): void {
    if (this.key) {
      if (this.key.privateKey.x === privateKey.x && this.key.privateKey.p === privateKey.p) return;
      throw new RangeError("this account already has a different private key");
    }
    const publicKey = dsaPublicKey(privateKey);
    const fp = fingerprint(publicKey);
    this.key = { privateKey, publicKey, fingerprint: fp, fingerprintHuman: formatFingerprint(fp),
      identity: { privateKey, pubBytes: serializeDsaPublic(publicKey), fingerprint: fp } };
  }

  get privateKey(): DsaPrivateKey {
    return this.keyParts().privateKey;
  }

  get publicKey(): DsaPublicKey {
    return this.keyParts().publicKey;
  }

  /** Our 20-byte fingerprint. */
  get fingerprint(): Uint8Array {
    return this.keyParts().fingerprint;
  }

  /** libotr's human form of the fingerprint. */
  get fingerprintHuman(): string {
    return this.keyParts().fingerprintHuman;
  }

  /** @internal what the AKE signs with. */
  get identity(): AkeIdentity {
    return this.keyParts().identity;
  }

  private keyParts(): KeyParts {
    if (!this.key) throw new Error("this OTR account has no private key yet (setPrivateKey first)");
    return this.key;
  }
}

/**
 * Whether handing this received line to a conversation could need our private key: it is an OTR message of any
 * kind (a query, an AKE message, a fragment, data, an error) or carries the whitespace tag. A plain line never
 * does, so a caller holding no key can pass it through without making one.
 */
export function mayNeedPrivateKey(line: string): boolean {
  return line.includes("?OTR") || line.includes(WS_TAG_BASE);
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
