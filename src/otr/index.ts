// Public API of the OTR library (team contract "OTR public API"). Sans-IO: callers feed received lines to
// OtrConversation.receive and put OtrResult.toSend on the wire themselves.
export { defaultEnv, type OtrEnv } from "./env.js";
export { POLICY, type Policy } from "./policy.js";
export { OtrAccount, generateInstanceTag, MIN_INSTANCE_TAG, MIN_FRAGMENT_SIZE, type OtrAccountOptions } from "./account.js";
export { OtrConversation, MAX_QUEUED_MESSAGES, MAX_PEER_INSTANCES, QUEUE_TIMEOUT_MS } from "./conversation.js";
export { CODE, type Code, type OtrEvent, type OtrResult, type OtrSendResult } from "./events.js";
export { HEARTBEAT_INTERVAL_MS } from "./session.js";
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
