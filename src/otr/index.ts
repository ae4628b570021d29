// Public API of the OTR library (team contract "OTR public API"). Sans-IO: callers feed received lines to
// OtrConversation.receive and put OtrResult.toSend on the wire themselves, in order.
//
// Usage, per (Matrix user, network):
//   const account = new OtrAccount({ privateKey, instanceTag, policy: POLICY.OPPORTUNISTIC, maxFragmentSize: 400 });
//   const conv = new OtrConversation(account, foldedNick);        // one per peer nick; keep it for the session
//   on an IRC line from the peer:  const r = conv.receive(line);   // never throws
//   on a Matrix message:           const r = conv.send(text);      // r.outcome says what happened to it
//   then send every r.toSend line to the peer and handle r.events (in order).
//   call conv.poll() now and then (e.g. every 30 s) to expire fragments and queued plaintext.
//   per-peer line limit: new OtrConversation(account, nick, { maxFragmentSize: 400 | () => budget }) or
//   conv.setMaxFragmentSize(n); it overrides the account's. conv.takeQueued() hands back (and forgets) the
//   plaintext held for the AKE, e.g. when the AKE failed or the caller shuts down.
// Semantics worth knowing:
//   - send(): "encrypted" | "plaintext" | "queued" (REQUIRE_ENCRYPTION: toSend holds only a query; the text goes
//     out encrypted in the toSend of the receive() that completes the AKE, or is refused after
//     QUEUE_TIMEOUT_MS / beyond MAX_QUEUED_MESSAGES) | "refused" (peer ended the session: the user must end()
//     or refresh() first; plaintext is never sent then).
//   - gone-secure carries the peer's fingerprint (libotr's human form); trust decisions are the caller's.
//   - unreadable events carry a code (bad-mac, counter-replay, unknown-keyid, bad-dh-range, not-encrypted, ...).
//   - Saved state: after each call, if conv.stateDirty, store conv.exportState() (null: delete) durably, then
//     conv.markSaved(), and only then send that call's toSend; a new conversation resumes with importState(bytes).
//   - The account's key may come later (new OtrAccount without privateKey, then setPrivateKey): before handing a
//     line to receive(), a caller holding no key checks mayNeedPrivateKey(line) and sets the key first if so.
//   - Caller misuse throws (bad instance tag, maxFragmentSize < MIN_FRAGMENT_SIZE); peer input never does.
export { defaultEnv, type OtrEnv } from "./env.js";
export { POLICY, type Policy } from "./policy.js";
export { OtrAccount, mayNeedPrivateKey, generateInstanceTag, MIN_INSTANCE_TAG, MIN_FRAGMENT_SIZE, type OtrAccountOptions } from "./account.js";
export {
  OtrConversation,
  type OtrConversationOptions,
  type FragmentSize,
  MAX_QUEUED_MESSAGES, MAX_PEER_INSTANCES, QUEUE_TIMEOUT_MS } from "./conversation.js";
export { CODE, type Code, type OtrEvent, type OtrResult, type OtrSendResult } from "./events.js";
export { HEARTBEAT_INTERVAL_MS } from "./session.js";
export { decodeSnapshot, SNAPSHOT_VERSION, type Snapshot, type SnapshotSession, type SnapshotErrorCode } from "./snapshot.js";
export { SEND_COUNTER_RESERVE } from "./data.js";
export {
  TLV_PADDING,
  TLV_DISCONNECTED,
  TLV_SMP1,
  TLV_SMP2,
  TLV_SMP3,
  TLV_SMP4,
  TLV_SMP_ABORT,
  TLV_SMP1Q,
  TLV_EXTRA_SYMKEY,
  type Tlv,
} from "./wire/messages.js";
export {
  generateDsaKey,
  dsaPublicKey,
  fingerprint,
  formatFingerprint,
  type DsaPrivateKey,
  type DsaPublicKey,
} from "./crypto/dsa.js";
