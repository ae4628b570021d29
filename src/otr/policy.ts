// OTR policies (spec v3 "Policies"), with libotr's presets (proto.h OTRL_POLICY_*). Version 1 is not supported.

export type Policy = {
  allowV2: boolean;
  allowV3: boolean;
  /** Refuse to send unencrypted messages: send() queues or refuses instead. */
  requireEncryption: boolean;
  /** Advertise OTR with the whitespace tag on the first plaintext message. */
  sendWhitespaceTag: boolean;
  /** Start the AKE when a whitespace tag arrives. */
  whitespaceStartAke: boolean;
  /** Answer a received "?OTR Error:" with a query message. */
  errorStartAke: boolean;
};

const freeze = (p: Policy): Policy => Object.freeze({ ...p });

const NEVER = freeze({
  allowV2: false,
  allowV3: false,
  requireEncryption: false,
  sendWhitespaceTag: false,
  whitespaceStartAke: false,
  errorStartAke: false,
});
const MANUAL = freeze({ ...NEVER, allowV2: true, allowV3: true });
const OPPORTUNISTIC = freeze({ ...MANUAL, sendWhitespaceTag: true, whitespaceStartAke: true, errorStartAke: true });
// As libotr's OTRL_POLICY_ALWAYS: no whitespace tag, since nothing is ever sent in plaintext to carry it.
const ALWAYS = freeze({ ...MANUAL, requireEncryption: true, whitespaceStartAke: true, errorStartAke: true });

export const POLICY: { readonly NEVER: Policy; readonly MANUAL: Policy; readonly OPPORTUNISTIC: Policy; readonly ALWAYS: Policy } =
  Object.freeze({ NEVER, MANUAL, OPPORTUNISTIC, ALWAYS });

/** True when the policy enables OTR at all (spec: with no version allowed, no special handling is done). */
export function otrEnabled(p: Policy): boolean {
  return p.allowV2 || p.allowV3;
}

/** The highest version both sides allow, or null. */
export function bestVersion(p: Policy, offered: readonly number[]): 2 | 3 | null {
  if (p.allowV3 && offered.includes(3)) return 3;
  if (p.allowV2 && offered.includes(2)) return 2;
  return null;
}

export function versionAllowed(p: Policy, version: number): boolean {
  return (version === 3 && p.allowV3) || (version === 2 && p.allowV2);
}
