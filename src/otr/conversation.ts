// OtrConversation: everything between one account and one peer name (spec v3 "The protocol state machine",
// "Instance Tags", "Fragmentation", "Policies"). Routes received lines to the master session or to the child
// session of the sending instance, runs the AKE and data-message handling, and decides for outgoing messages
// (libotr's OTRL_INSTAG_BEST: the most secure session, most recently heard from).
//
// Peer input never throws and a rejected message changes nothing: the AKE is a pure function of its state,
// data messages are verified before `commit`, and the catch-all below only exists so a bug cannot take the
// caller down (it reports code "unexpected").
import { handleAke, startAke, AUTH_NONE, type AkeMessage, type AkeStep } from "./ake.js";
import { formatFingerprint } from "./crypto/dsa.js";
import { smpSecret } from "./smp.js";
import { checkFragmentSize, type OtrAccount } from "./account.js";
import { CODE, type OtrEvent, type OtrResult, type OtrSendResult } from "./events.js";
import { bestVersion, otrEnabled, versionAllowed, type Policy } from "./policy.js";
import { Session, decrypt, encryptToLine, HEARTBEAT_INTERVAL_MS } from "./session.js";
import { decodeSnapshot, encodeSnapshot, sessionFromSnapshot, type SnapshotErrorCode } from "./snapshot.js";
import {
  FLAG_IGNORE_UNREADABLE,
  TLV_DISCONNECTED,
  TLV_EXTRA_SYMKEY,
  TLV_SMP1,
  TLV_SMP1Q,
  type Tlv,
} from "./wire/messages.js";
import {
  encodeAkeLine,
  fragmentLine,
  newReassembler,
  parseIncoming,
  queryMessage,
  whitespaceTag,
  type Incoming,
  type IncomingData,
  type ReassemblerLike,
} from "./wireio.js";

/** Plaintext held back under REQUIRE_ENCRYPTION until the session is secure; beyond this the oldest is refused. */
export const MAX_QUEUED_MESSAGES = 16;
/** How long queued plaintext waits for the AKE (libotr's RESEND_INTERVAL is 60 s too). */
export const QUEUE_TIMEOUT_MS = 60_000;
/** Peer instances we keep sessions for; a peer inventing tags cannot grow memory past this. */
export const MAX_PEER_INSTANCES = 8;

const ERROR_UNREADABLE = "?OTR Error: You transmitted an unreadable encrypted message.";
const ERROR_MALFORMED = "?OTR Error: You transmitted a malformed data message.";
const ERROR_NOT_IN_PRIVATE = "?OTR Error: You sent encrypted data to a peer who wasn't expecting it.";

const utf8 = new TextEncoder();
const RANK = { plaintext: 0, finished: 1, encrypted: 2 } as const;

class Out {
  events: OtrEvent[] = [];
  toSend: string[] = [];
  ev(e: OtrEvent): void {
    this.events.push(e);
  }
  result(): OtrResult {
    return { events: this.events, toSend: this.toSend };
  }
}

type Offer = "not" | "sent" | "accepted" | "rejected";

/** A fixed line limit, or one read each time a line is built (it may depend on the peer's and our current names). */
export type FragmentSize = number | (() => number);

export interface OtrConversationOptions {
  policy?: Policy;
  /** Overrides the account's maxFragmentSize for this peer: 0 or >= MIN_FRAGMENT_SIZE (else RangeError). */
  maxFragmentSize?: FragmentSize;
}

export class OtrConversation {
  private master = new Session(0);
  /** A session began, ended or was forgotten since the state was last saved (key changes: DataKeyState.dirty). */
  private sessionsChanged = false;
  private readonly children = new Map<number, Session>();
  private readonly reassembler: ReassemblerLike;
  private queue: Array<{ text: string; at: number }> = [];
  private offer: Offer = "not";
  private policyOverride: Policy | null;
  private recvSeq = 0;
  private fragmentSize: FragmentSize | null = null;

  constructor(
    readonly account: OtrAccount,
    readonly peer: string,
    opts?: OtrConversationOptions,
  ) {
    this.policyOverride = opts?.policy ?? null;
    if (opts?.maxFragmentSize !== undefined) this.setMaxFragmentSize(opts.maxFragmentSize);
    this.reassembler = newReassembler(account.instanceTag);
  }

  /**
   * This peer's line limit (null: the account's). A function is called each time a line is built and its result
   * is checked like a number; an unusable one throws RangeError from the call that builds the line.
   */
  setMaxFragmentSize(size: FragmentSize | null): void {
    if (typeof size === "number") checkFragmentSize(size);
    else if (size !== null && typeof size !== "function") throw new RangeError("maxFragmentSize must be a number or a function");
    this.fragmentSize = size;
  }

  /** The line limit in force now (0 = none). */
  get maxFragmentSize(): number {
    const f = this.fragmentSize;
    if (f === null) return this.account.maxFragmentSize;
    return typeof f === "number" ? f : checkFragmentSize(f());
  }

  /**
   * Takes back the plaintext held for the AKE (oldest first) and forgets it, so the caller can return it to its
   * user at once (the AKE failed, or the caller is shutting down) instead of waiting for QUEUE_TIMEOUT_MS.
   */
  takeQueued(): string[] {
    const q = this.queue.map((m) => m.text);
    this.queue = [];
    return q;
  }

  /** The policy in force: the per-peer override, else the account's. */
  get policy(): Policy {
    return this.policyOverride ?? this.account.policy;
  }

  setPolicy(p: Policy | null): void {
    this.policyOverride = p;
  }

  // ---------------------------------------------------------------- receiving

  receive(text: string): OtrResult {
    const out = new Out();
    try {
      if (typeof text !== "string") {
        out.ev({ type: "malformed", code: CODE.MALFORMED });
      } else if (!otrEnabled(this.policy)) {
        out.ev({ type: "received", text, encrypted: false, tlvs: [] });
      } else {
        this.receiveLine(text, out, false);
      }
    } catch (err) {
      // A fragment-size function that returns nonsense is the caller's bug, not the peer's: let it surface.
      if (err instanceof RangeError && /maxFragmentSize/.test(err.message)) throw err;
      out.ev({ type: "malformed", code: CODE.UNEXPECTED });
    }
    return out.result();
  }

  private receiveLine(text: string, out: Out, assembled: boolean): void {
    const msg = parseIncoming(text);
    switch (msg.kind) {
      case "fragment":
        if (assembled) return out.ev({ type: "malformed", code: CODE.MALFORMED });
        return this.onFragment(msg, out);
      case "malformed":
        return out.ev({ type: "malformed", code: msg.code });
      case "plaintext":
        return this.onPlaintext(msg.text, msg.whitespaceVersions, out);
      case "query":
        this.offerAnswered();
        return this.onQuery(msg.versions, out);
      case "error":
        this.offerAnswered();
        out.ev({ type: "error-received", text: msg.text });
        // Never resend anything automatically; at most ask for a new AKE.
        if (this.policy.errorStartAke) out.toSend.push(this.query());
        return;
      case "ake":
      case "data":
        this.offerAnswered();
        return this.onEncoded(msg, out);
    }
  }

  private offerAnswered(): void {
    if (this.offer !== "rejected") this.offer = "accepted";
  }

  private onFragment(msg: Extract<Incoming, { kind: "fragment" }>, out: Out): void {
    if (msg.version === 3) {
      if (msg.senderInstance < 0x100) return out.ev({ type: "malformed", code: CODE.BAD_INSTANCE });
      if (msg.senderInstance === this.account.instanceTag) return out.ev({ type: "reflected" });
      if (msg.receiverInstance !== 0 && msg.receiverInstance !== this.account.instanceTag) {
        return out.ev({ type: "for-other-instance" });
      }
    }
    const r = this.reassembler.add(msg.fragment, this.account.env.now());
    for (const reason of r.dropped) out.ev({ type: "fragment-dropped", reason });
    if (r.complete !== null) this.receiveLine(r.complete, out, true);
  }

  private onPlaintext(text: string, wsVersions: number[], out: Out): void {
    if (wsVersions.length === 0 && this.offer === "sent") this.offer = "rejected";
    if (text.length > 0 || wsVersions.length === 0) {
      out.ev({ type: "received", text, encrypted: false, tlvs: [] });
      if (this.policy.requireEncryption || this.best().msgstate !== "plaintext") out.ev({ type: "unencrypted-received" });
    }
    if (wsVersions.length > 0 && this.policy.whitespaceStartAke) {
      const v = bestVersion(this.policy, wsVersions);
      if (v !== null) this.startAkeIn(this.master, v, out);
    }
  }

  private onQuery(versions: number[], out: Out): void {
    const v = bestVersion(this.policy, versions);
    // A query offering nothing we allow (e.g. "?OTR?", version 1 only) is ignored, as libotr does.
    if (v === null) return;
    this.startAkeIn(this.master, v, out);
  }

  private startAkeIn(s: Session, version: 2 | 3, out: Out): void {
    const step = startAke(version, this.account.env);
    s.auth = step.next;
    if (step.send) this.sendAke(s, step.send, version, out);
  }

  private onEncoded(msg: Extract<Incoming, { kind: "ake" | "data" }>, out: Out): void {
    const policy = this.policy;
    if (!versionAllowed(policy, msg.version)) return out.ev({ type: "malformed", code: CODE.VERSION_NOT_ALLOWED });
    let s: Session | null;
    if (msg.version === 3) {
      const ours = this.account.instanceTag;
      if (msg.senderInstance < 0x100) return out.ev({ type: "malformed", code: CODE.BAD_INSTANCE });
      if (msg.senderInstance === ours) return out.ev({ type: "reflected" });
      const isCommit = msg.kind === "ake" && msg.msg.type === "dh-commit";
      if (msg.receiverInstance !== ours && !(isCommit && msg.receiverInstance === 0)) {
        return out.ev({ type: "for-other-instance" });
      }
      const c = this.childFor(msg, out);
      if (c === null) return;
      s = c.s;
      if (c.isNew) {
        // Only an AKE message gets here for a new instance; keep the session if it was accepted.
        if (msg.kind === "ake" && this.onAke(s, msg.msg, msg.version, out)) this.adopt(s);
        return;
      }
    } else {
      s = this.master;
    }
    if (msg.kind === "ake") this.onAke(s, msg.msg, msg.version, out);
    else this.onData(s, msg, out);
  }

  /**
   * The child session of the sending instance. A new one is made only for messages that can start an AKE with
   * it, and is kept (see `adopt`) only if that message is accepted, so rejected input leaves no trace.
   */
  private childFor(msg: Extract<Incoming, { kind: "ake" | "data" }>, out: Out): { s: Session; isNew: boolean } | null {
    const tag = msg.senderInstance;
    const existing = this.children.get(tag);
    if (existing) return { s: existing, isNew: false };
    const type = msg.kind === "ake" ? msg.msg.type : "data";
    const canStart = type === "dh-commit" || (type === "dh-key" && this.master.auth.state === "awaiting-dhkey");
    if (!canStart) {
      if (msg.kind === "data") this.notInPrivate(msg, out);
      return null;
    }
    if (this.children.size >= MAX_PEER_INSTANCES && this.evictable() === null) {
      out.ev({ type: "malformed", code: CODE.INSTANCE_LIMIT });
      return null;
    }
    return { s: new Session(tag), isNew: true };
  }

  private adopt(s: Session): void {
    if (this.children.size >= MAX_PEER_INSTANCES) {
      const victim = this.evictable();
      if (victim !== null) {
        this.children.delete(victim.theirInstance);
        if (victim.msgstate !== "plaintext") this.sessionsChanged = true;
      }
    }
    this.children.set(s.theirInstance, s);
  }

  /**
   * The child to forget when a new instance needs room: the least recently heard plaintext one (idle before
   * mid-AKE), else the least recently heard encrypted one that is not the current best (a peer that restarted
   * its client many times under new tags must still be able to talk). Finished children are never evicted:
   * they keep us from falling back to plaintext after the peer ended. Null if nothing may go.
   */
  private evictable(): Session | null {
    const rank = (c: Session): number => (c.msgstate === "plaintext" ? (c.auth.state === "none" ? 0 : 1) : 2);
    const best = this.best();
    let victim: Session | null = null;
    for (const c of this.children.values()) {
      if (c.msgstate === "finished" || c === best) continue;
      if (victim === null || rank(c) < rank(victim) || (rank(c) === rank(victim) && c.recvSeq < victim.recvSeq)) victim = c;
    }
    return victim;
  }

  /** Returns false when the message was rejected or ignored (and nothing changed). */
  private onAke(s: Session, msg: AkeMessage, version: 2 | 3, out: Out): boolean {
    let from = s.auth;
    // Our commit went out from the master (receiver tag 0) before we knew the peer's instance. Its answer, or a
    // crossing commit, lands in the child: give the child the master's pending commit (libotr's
    // otrl_auth_copy_on_key), so the spec's AWAITING_DHKEY rules apply there.
    if (!s.isMaster && s.auth.state === "none" && this.master.auth.state === "awaiting-dhkey" && this.master.auth.version === version) {
      if (msg.type === "dh-key" || msg.type === "dh-commit") from = this.master.auth;
    }
    // The caller gives a keyless account its key before lines that may need it (mayNeedPrivateKey); one that
    // did not gets an event, not a throw, and the AKE stays where it was.
    if (!this.account.hasPrivateKey) {
      out.ev({ type: "ake-failed", code: CODE.NO_PRIVATE_KEY });
      return false;
    }
    const step: AkeStep = handleAke(from, msg, version, this.account.identity, this.account.env);
    if (step.error !== null) {
      const parseLike = step.error === CODE.MALFORMED || step.error === CODE.BAD_DH_RANGE;
      out.ev(parseLike ? { type: "malformed", code: step.error } : { type: "ake-failed", code: step.error });
      return false;
    }
    // The spec's "ignore the message" cases (e.g. a stale Reveal Signature) leave everything as it was.
    if (step.next === from && step.send === null && step.done === null) return false;
    s.auth = step.next;
    this.heard(s);
    if (step.send) this.sendAke(s, step.send, version, out);
    if (step.done) {
      const still = s.goSecure(step.done, this.account.env);
      this.sessionsChanged = true;
      // The master's commit has been answered and the AKE it started is done: drop it, so a stale D-H Key
      // replayed later cannot drag a finished child back into the AKE. (Another login of the peer answering
      // the same commit has, in practice, answered before the Signature message came back.)
      const m = this.master.auth;
      if (!s.isMaster && m.state === "awaiting-dhkey" && m.our === step.done.our) this.master.auth = AUTH_NONE;
      out.ev(
        still
          ? { type: "still-secure" }
          : {
              type: "gone-secure",
              version: step.done.version,
              fingerprint: formatFingerprint(step.done.theirFingerprint),
              ssid: step.done.ssid,
              theirInstance: s.theirInstance,
            },
      );
      this.flushQueue(s, out);
    }
    return true;
  }

  private onData(s: Session, msg: IncomingData, out: Out): void {
    const ignoreUnreadable = (msg.fields.flags & FLAG_IGNORE_UNREADABLE) !== 0;
    if (s.msgstate !== "encrypted") return this.notInPrivate(msg, out);
    const r = decrypt(s, msg);
    if (!r.ok) {
      if (ignoreUnreadable) return;
      out.ev({ type: "unreadable", code: r.code });
      out.toSend.push(r.code === CODE.MALFORMED || r.code === CODE.BAD_DH_RANGE ? ERROR_MALFORMED : ERROR_UNREADABLE);
      return;
    }
    const env = this.account.env;
    r.commit(env);
    this.heard(s);
    if (r.text.length > 0) out.ev({ type: "received", text: r.text, encrypted: true, tlvs: r.tlvs });
    const disconnected = r.tlvs.some((t) => t.type === TLV_DISCONNECTED);
    const smpReplies: Tlv[] = [];
    for (const t of r.tlvs) {
      if (t.type === TLV_EXTRA_SYMKEY && t.value.length >= 4) {
        const use = ((t.value[0]! << 24) | (t.value[1]! << 16) | (t.value[2]! << 8) | t.value[3]!) >>> 0;
        out.ev({ type: "extra-symmetric-key", use, useData: t.value.slice(4), key: r.extraKey });
      } else if (t.type >= TLV_SMP1 && t.type <= TLV_SMP1Q && s.smp !== null && !disconnected) {
        const step = s.smp.handleTlv(t);
        smpReplies.push(...step.reply);
        if (step.event) out.ev(step.event);
      }
    }
    if (disconnected) {
      s.dropKeys("finished");
      this.sessionsChanged = true;
      out.ev({ type: "gone-insecure", reason: "peer-ended" });
      return;
    }
    if (smpReplies.length > 0) this.sendData(s, "", smpReplies, FLAG_IGNORE_UNREADABLE, out);
    else if (env.now() - s.lastSent >= HEARTBEAT_INTERVAL_MS) this.sendData(s, "", [], FLAG_IGNORE_UNREADABLE, out);
  }

  /**
   * A data message we have no session for (libotr's RCVDMSG_NOT_IN_PRIVATE). libotr stays silent because a v2
   * message may be meant for another login of ours; a v3 one carried our own instance tag, so it was for us
   * (typically we restarted and lost the session): tell the peer, whose ERROR_START_AKE then restarts the AKE.
   */
  private notInPrivate(msg: IncomingData, out: Out): void {
    if ((msg.fields.flags & FLAG_IGNORE_UNREADABLE) !== 0) return;
    out.ev({ type: "unreadable", code: CODE.NOT_ENCRYPTED });
    if (msg.version === 3) out.toSend.push(ERROR_NOT_IN_PRIVATE);
  }

  // ---------------------------------------------------------------- sending

  send(plaintext: string, opts?: { tlvs?: Tlv[] }): OtrSendResult {
    const out = new Out();
    const policy = this.policy;
    if (!otrEnabled(policy)) {
      // Requiring encryption with no version allowed can only mean "never send".
      if (policy.requireEncryption) {
        out.ev({ type: "refused", code: CODE.POLICY_NEVER });
        return { ...out.result(), outcome: "refused" };
      }
      out.toSend.push(plaintext);
      return { ...out.result(), outcome: "plaintext" };
    }
    const s = this.best();
    if (s.msgstate === "encrypted") {
      this.sendData(s, plaintext, opts?.tlvs ?? [], 0, out);
      return { ...out.result(), outcome: "encrypted" };
    }
    if (s.msgstate === "finished") {
      // The peer ended its side: sending now would leak plaintext it no longer expects (spec MSGSTATE_FINISHED).
      out.ev({ type: "refused", code: CODE.FINISHED });
      return { ...out.result(), outcome: "refused" };
    }
    if (policy.requireEncryption) {
      this.expireQueue(out);
      const wasEmpty = this.queue.length === 0;
      this.queue.push({ text: plaintext, at: this.account.env.now() });
      if (this.queue.length > MAX_QUEUED_MESSAGES) {
        this.queue.shift();
        out.ev({ type: "refused", code: CODE.QUEUE_FULL });
      }
      out.ev({ type: "queued", count: this.queue.length });
      if (wasEmpty) out.toSend.push(this.query());
      return { ...out.result(), outcome: "queued" };
    }
    let line = plaintext;
    if (policy.sendWhitespaceTag && this.offer === "not") {
      line = plaintext + whitespaceTag(policy);
      this.offer = "sent";
    }
    out.toSend.push(line);
    return { ...out.result(), outcome: "plaintext" };
  }

  /** User asks for OTR: a query message (spec "User requests to start an OTR conversation"). */
  startAke(): OtrResult {
    const out = new Out();
    if (!otrEnabled(this.policy)) out.ev({ type: "refused", code: CODE.POLICY_NEVER });
    else out.toSend.push(this.query());
    return out.result();
  }

  /** TLV 1 to every encrypted instance, then plaintext (spec "User requests to end an OTR conversation"). */
  end(): OtrResult {
    const out = new Out();
    this.endInto(out);
    return out.result();
  }

  private endInto(out: Out): void {
    let ended = false;
    for (const s of this.sessions()) {
      if (s.msgstate === "encrypted") {
        this.sendData(s, "", [{ type: TLV_DISCONNECTED, value: new Uint8Array(0) }], FLAG_IGNORE_UNREADABLE, out);
        ended = true;
      }
      if (s.msgstate !== "plaintext") {
        s.dropKeys("plaintext");
        this.sessionsChanged = true;
      }
      s.auth = AUTH_NONE;
    }
    this.offer = "not";
    if (ended) out.ev({ type: "gone-insecure", reason: "we-ended" });
  }

  /** End, then ask for a new AKE. */
  refresh(): OtrResult {
    const out = new Out();
    this.endInto(out);
    if (otrEnabled(this.policy)) out.toSend.push(this.query());
    return out.result();
  }

  smpStart(secret: Uint8Array, question?: string): OtrResult {
    const out = new Out();
    const s = this.best();
    if (s.msgstate !== "encrypted" || s.smp === null || s.theirFingerprint === null || s.ssid === null) {
      out.ev({ type: "refused", code: CODE.SMP_NOT_READY });
      return out.result();
    }
    if (!this.account.hasPrivateKey) {
      out.ev({ type: "refused", code: CODE.NO_PRIVATE_KEY });
      return out.result();
    }
    const x = smpSecret(this.account.fingerprint, s.theirFingerprint, s.ssid, secret);
    const tlvs = s.smp.start(x, question ?? null);
    this.sendData(s, "", tlvs, FLAG_IGNORE_UNREADABLE, out);
    return out.result();
  }

  smpRespond(secret: Uint8Array): OtrResult {
    const out = new Out();
    const s = this.sessions().find((c) => c.msgstate === "encrypted" && c.smp !== null && c.smp.canRespond());
    if (!s || s.smp === null || s.theirFingerprint === null || s.ssid === null) {
      out.ev({ type: "refused", code: CODE.SMP_NOT_READY });
      return out.result();
    }
    if (!this.account.hasPrivateKey) {
      out.ev({ type: "refused", code: CODE.NO_PRIVATE_KEY });
      return out.result();
    }
    // The peer initiated: its fingerprint comes first.
    const x = smpSecret(s.theirFingerprint, this.account.fingerprint, s.ssid, secret);
    this.sendData(s, "", s.smp.respond(x), FLAG_IGNORE_UNREADABLE, out);
    return out.result();
  }

  smpAbort(): OtrResult {
    const out = new Out();
    for (const s of this.sessions()) {
      if (s.msgstate !== "encrypted" || s.smp === null || s.smp.state === "idle") continue;
      this.sendData(s, "", s.smp.abort(), FLAG_IGNORE_UNREADABLE, out);
      out.ev({ type: "smp-abort", by: "us" });
    }
    return out.result();
  }

  /**
   * Derive the extra symmetric key of the current sending key pair and tell the peer (TLV 8: 4-byte use, then
   * useData). The peer derives the same key when it reads the message.
   */
  extraSymmetricKey(use: number, useData: Uint8Array): { key: Uint8Array } & OtrResult {
    const out = new Out();
    const s = this.best();
    if (s.msgstate !== "encrypted" || s.keys === null || s.version !== 3) {
      out.ev({ type: "refused", code: CODE.NOT_ENCRYPTED });
      return { key: new Uint8Array(0), ...out.result() };
    }
    if (!Number.isInteger(use) || use < 0 || use > 0xffffffff) throw new RangeError("use must be a 32-bit unsigned integer");
    const value = new Uint8Array(4 + useData.length);
    new DataView(value.buffer).setUint32(0, use);
    value.set(useData, 4);
    // The key of the pair this very message is sealed with, so both sides derive the same one.
    const key = this.sendData(s, "", [{ type: TLV_EXTRA_SYMKEY, value }], FLAG_IGNORE_UNREADABLE, out);
    return { key, ...out.result() };
  }

  /** Expire stale fragment reassembly and queued plaintext that waited too long for the AKE. */
  poll(): OtrResult {
    const out = new Out();
    this.expireQueue(out);
    for (const reason of this.reassembler.expire(this.account.env.now())) out.ev({ type: "fragment-dropped", reason });
    return out.result();
  }

  status(): {
    state: "plaintext" | "encrypted" | "finished";
    version: 2 | 3 | null;
    theirFingerprint: string | null;
    ssid: Uint8Array | null;
    theirInstance: number | null;
  } {
    const s = this.best();
    return {
      state: s.msgstate,
      version: s.msgstate === "plaintext" ? null : s.version,
      theirFingerprint: s.theirFingerprint ? formatFingerprint(s.theirFingerprint) : null,
      ssid: s.ssid ? s.ssid.slice() : null,
      theirInstance: s.isMaster ? null : s.theirInstance,
    };
  }

  // ---------------------------------------------------------------- saved state (snapshot.ts)

  /**
   * True when the conversation changed in a way later traffic depends on since the last markSaved(): save
   * exportState() durably before sending the toSend of the call that set it (write before send). Sends that
   * stay inside a saved counter reservation do not set it.
   */
  get stateDirty(): boolean {
    return this.sessionsChanged || this.sessions().some((s) => s.keys?.dirty === true);
  }

  /**
   * The established sessions (encrypted and finished) as bytes to keep, or null when there is none (delete any
   * saved copy). Holds private DH keys: store it sealed. Does not clear stateDirty; markSaved() does.
   */
  exportState(): Uint8Array | null {
    return encodeSnapshot(this.account.instanceTag, this.sessions());
  }

  /** The bytes of the last exportState() are durable. */
  markSaved(): void {
    this.sessionsChanged = false;
    for (const s of this.sessions()) if (s.keys) s.keys.dirty = false;
  }

  /**
   * Resumes the sessions of a saved state, on a conversation that has none yet (caller misuse throws). The peer
   * can go on reading and writing with the same keys; sending resumes above every saved counter reservation.
   * SMP exchanges are not kept (smpDropped says one was under way). Damaged or foreign bytes change nothing
   * and give a code.
   */
  importState(bytes: Uint8Array): { ok: true; smpDropped: boolean } | { ok: false; code: SnapshotErrorCode } {
    if (this.sessions().some((s) => s.msgstate !== "plaintext" || s.auth.state !== "none")) {
      throw new Error("importState: the conversation already has a session");
    }
    const d = decodeSnapshot(bytes);
    if (!d.ok) return d;
    if (d.snapshot.ourInstance !== this.account.instanceTag) return { ok: false, code: "snapshot-other-account" };
    if (d.snapshot.sessions.filter((x) => x.theirInstance !== 0).length > MAX_PEER_INSTANCES) return { ok: false, code: "snapshot-malformed" };
    let smpDropped = false;
    for (const snap of d.snapshot.sessions) {
      const s = sessionFromSnapshot(snap, this.account.env);
      s.recvSeq = ++this.recvSeq;
      smpDropped ||= snap.smpActive;
      if (s.isMaster) this.master = s;
      else this.children.set(s.theirInstance, s);
    }
    // A session that was just spoken in: no whitespace tag offer or query is needed.
    this.offer = "accepted";
    this.sessionsChanged = false;
    return { ok: true, smpDropped };
  }

  // ---------------------------------------------------------------- helpers

  /** Our query message; without the explanation when that would not fit in one line of maxFragmentSize. */
  private query(): string {
    const q = queryMessage(this.policy);
    const max = this.maxFragmentSize;
    return max > 0 && q.length > max ? queryMessage(this.policy, false) : q;
  }

  private heard(s: Session): void {
    s.lastRecv = this.account.env.now();
    s.recvSeq = ++this.recvSeq;
  }

  private sessions(): Session[] {
    return [this.master, ...this.children.values()];
  }

  /** OTRL_INSTAG_BEST: highest msgstate (encrypted > finished > plaintext), then most recently heard from. */
  private best(): Session {
    let best = this.master;
    for (const c of this.children.values()) {
      const d = RANK[c.msgstate] - RANK[best.msgstate];
      if (d > 0 || (d === 0 && c.recvSeq > best.recvSeq)) best = c;
    }
    return best;
  }

  private flushQueue(s: Session, out: Out): void {
    this.expireQueue(out);
    const q = this.queue;
    this.queue = [];
    for (const m of q) this.sendData(s, m.text, [], 0, out);
  }

  /** Queued plaintext older than QUEUE_TIMEOUT_MS is refused rather than sent long after it was written. */
  private expireQueue(out: Out): void {
    const now = this.account.env.now();
    while (this.queue.length > 0 && now - this.queue[0]!.at > QUEUE_TIMEOUT_MS) {
      this.queue.shift();
      out.ev({ type: "refused", code: CODE.QUEUE_EXPIRED });
    }
  }


  /** Returns the extra symmetric key of the key pair used. */
  private sendData(s: Session, text: string, tlvs: Tlv[], flags: number, out: Out): Uint8Array {
    const { line, extraKey } = encryptToLine(s, utf8.encode(text), tlvs, flags, this.account.instanceTag, this.account.env);
    this.emitLine(line, s.version ?? 3, s.theirInstance, out);
    return extraKey;
  }

  private sendAke(s: Session, msg: AkeMessage, version: 2 | 3, out: Out): void {
    const line = encodeAkeLine(msg, version, this.account.instanceTag, s.theirInstance);
    this.emitLine(line, version, s.theirInstance, out);
  }

  private emitLine(line: string, version: 2 | 3, theirInstance: number, out: Out): void {
    const max = this.maxFragmentSize;
    if (max > 0 && line.length > max) {
      out.toSend.push(...fragmentLine(line, max, version, this.account.instanceTag, theirInstance, this.account.env));
    } else {
      out.toSend.push(line);
    }
  }
}
