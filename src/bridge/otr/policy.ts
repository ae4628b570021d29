// Which OTR policy applies to a conversation: the peer's override (`!otr policy`), else the user's choice for
// the network, else the configured default; and how each name maps onto the library's presets.
import { POLICY, type Policy } from "../../otr/index.js";
import { OTR_POLICY_NAMES, type OtrPolicyName, type Store } from "../../store/types.js";

const PRESET: Record<OtrPolicyName, Policy> = {
  never: POLICY.NEVER,
  manual: POLICY.MANUAL,
  opportunistic: POLICY.OPPORTUNISTIC,
  always: POLICY.ALWAYS,
};

export function presetFor(name: OtrPolicyName): Policy {
  return PRESET[name];
}

export function isPolicyName(s: string): s is OtrPolicyName {
  return (OTR_POLICY_NAMES as readonly string[]).includes(s);
}

export async function effectivePolicy(store: Store, userId: string, networkId: string, foldedNick: string, fallback: OtrPolicyName): Promise<OtrPolicyName> {
  const peer = await store.getPeerPolicy(userId, networkId, foldedNick);
  if (peer) return peer;
  const un = await store.getUserNetwork(userId, networkId);
  return un?.otrPolicy ?? fallback;
}
