// The OTR session manager: the DmPipeline that stands between a Matrix user's DM room and the IRC contact.
// Every IRC line from the contact goes through the peer's OtrConversation, every Matrix message out through it;
// what the library says (events) becomes notices, the room's OTR status state event and message flags, and what
// it wants on the wire (toSend) goes to the contact through the puppet, in order. The library never sees the
// network and this file never sees a key byte or logs a word of plaintext.
//
// Saved sessions (otr.persist_sessions): an established conversation is written to the store (sealed) whenever
// the library says later traffic depends on the change, before any line the change produced goes to IRC (write
// before send), and is resumed from the store when the peer's conversation is next needed after a restart. A line
// whose state could not be saved is never sent. A planned shutdown then keeps sessions instead of ending them.
//
// Work for one peer runs in one queue (IRC lines, Matrix messages, commands, the poll timer, shutdown), so the
// conversation sees its inputs in order and the events reach Matrix in order.
import { defaultEnv, mayNeedPrivateKey, OtrAccount, OtrConversation, POLICY, type OtrEnv, type OtrEvent, type OtrResult } from "../../otr/index.js";
import type { OtrPolicyName, Store } from "../../store/types.js";
import type { BridgeLogger, BridgeMetrics, MatrixPort, MessageKind } from "../ports.js";
import type { DmContext, DmPipeline, DmSendResult, MatrixOrigin } from "../dm-pipeline.js";
import { KeyedQueue } from "../keyed-queue.js";
import { generateKey, type KeyGenerator } from "./keygen.js";
import { IdentityBook } from "./identity.js";
import { TrustBook } from "./trust-book.js";
import { effectivePolicy, presetFor } from "./policy.js";
import { newHoldTicket, Peer, type HoldTicket } from "./peer.js";
import { NOTICE_KEY, STATUS_EVENT, quote, type NoticeCode, type OtrStatusContent } from "./notices.js";
import { deliver, presentEvents, returnHeld } from "./event-presenter.js";
import { otrCommandArgs } from "./command.js";
import { runOtrCommand } from "./command-runner.js";

/** How often active conversations are polled (fragment reassembly and held messages expire). */
export const POLL_INTERVAL_MS = 30_000;
/** A peer with no private conversation, nothing held and no traffic for this long is forgotten (memory bound). */
export const IDLE_PEER_MS = 60 * 60_000;
/** IRC messages per (user, network) that may wait for the key to be generated; beyond this they are dropped. */
export const MAX_WAITING_FOR_KEY = 64;

export interface OtrPipelineOptions {
  store: Store;
  matrix: MatrixPort;
  logger: BridgeLogger;
  /** Config otr.default_policy. */
  defaultPolicy: OtrPolicyName;
  /** Config otr.trust_on_first_use. */
  trustOnFirstUse: boolean;
  /** Config networks[].otr_fragment_size, an upper bound on the derived size. */
  fragmentSize?(networkId: string): number | undefined;
  /** Defaults to a worker thread (never the event loop). */
  generateKey?: KeyGenerator;
  /** Randomness and clock of the OTR library (tests drive time through it). */
  env?: OtrEnv;
  metrics?: BridgeMetrics;
  /** Library events, for the OTR metrics (AKE and SMP outcomes, failures); never carries who. */
  otrEvents?(events: readonly OtrEvent[]): void;
  /** 0 disables the timer (tests call pollAll themselves). */
  pollIntervalMs?: number;
  /** Config otr.persist_sessions (default true): keep established conversations across restarts. */
  persistSessions?: boolean;
}

export class OtrPipeline implements DmPipeline {
  private readonly queue = new KeyedQueue();
  private readonly peers = new Map<string, Peer>();
  private readonly accounts = new Map<string, Promise<OtrAccount>>();
  private readonly waiting = new Map<string, number>();
  readonly identities: IdentityBook;
  readonly trust: TrustBook;
  readonly env: OtrEnv;
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly o: OtrPipelineOptions) {
    this.env = o.env ?? defaultEnv;
    this.identities = new IdentityBook({ store: o.store, generateKey: o.generateKey ?? generateKey, env: this.env });
    this.trust = new TrustBook({ store: o.store, trustOnFirstUse: o.trustOnFirstUse, now: () => this.env.now() });
    const every = o.pollIntervalMs ?? POLL_INTERVAL_MS;
    if (every > 0) {
      this.timer = setInterval(() => void this.pollAll(), every);
      this.timer.unref();
    }
  }

  /** The state of every conversation held, for the otr_sessions gauge (no names: state, trust, version only). */
  sessionSummary(): Array<{ state: "plaintext" | "encrypted" | "finished"; verified: boolean; version: 2 | 3 | null }> {
    const out: Array<{ state: "plaintext" | "encrypted" | "finished"; verified: boolean; version: 2 | 3 | null }> = [];
    for (const peer of this.peers.values()) {
      if (!peer.conv) continue;
      const s = peer.conv.status();
      out.push({ state: s.state, verified: s.state === "encrypted" && peer.verified, version: s.version });
    }
    return out;
  }

  isCommand(text: string): boolean {
    return otrCommandArgs(text) !== null;
  }

  fromIrc(ctx: DmContext, kind: MessageKind, text: string): Promise<void> {
    const acct = this.accountKey(ctx);
    // Only a line that may need the key waits for it (a plain line passes by a generation under way).
    const mustWait = kind === "text" && mayNeedPrivateKey(text) && !this.identities.keyRequested(ctx.userId, ctx.networkId);
    const waiting = this.waiting.get(acct) ?? 0;
    if (mustWait && waiting >= MAX_WAITING_FOR_KEY) {
      this.o.logger.warn("IRC message dropped while the OTR key is generated", { networkId: ctx.networkId, code: "key-wait-full" });
      return this.notice(ctx, "key-generating", "A message from your contact was dropped: too many arrived while your OTR key was being generated.");
    }
    if (mustWait) this.waiting.set(acct, waiting + 1);
    return this.queue.run(this.peerKey(ctx), async () => {
      try {
        const peer = this.peerFor(ctx);
        if (kind !== "text") return await this.plainFromIrc(peer, kind, text);
        const unreadable = async (err: unknown) => {
          await this.notice(ctx, "unreadable", `A message from ${ctx.peerNick} could not be read: your OTR key could not be loaded (${codeOf(err)}).`);
          throw err;
        };
        const conv = await this.conversation(peer).catch(unreadable);
        if (!conv) {
          await this.deliver(peer, "text", text, false);
          return await this.updateStatus(peer);
        }
        for (const line of peer.joiner.push(text, this.env.now())) {
          if (!conv.account.hasPrivateKey && mayNeedPrivateKey(line)) await this.keyedAccount(peer).catch(unreadable);
          await this.apply(peer, conv.receive(line));
        }
      } finally {
        if (mustWait) this.waiting.set(acct, (this.waiting.get(acct) ?? 1) - 1);
      }
    });
  }

  fromMatrix(ctx: DmContext, kind: MessageKind, text: string, origin?: MatrixOrigin): Promise<DmSendResult> {
    return this.queue.run(this.peerKey(ctx), async (): Promise<DmSendResult> => {
      const peer = this.peerFor(ctx);
      const args = otrCommandArgs(text);
      if (args !== null) {
        const reply = await runOtrCommand(this, peer, args, { roomId: ctx.roomId, as: this.ghost(ctx), eventId: origin?.eventId });
        await this.notice(ctx, "command", reply);
        return { sent: false, encrypted: false, handled: true };
      }
      return this.send(peer, kind, text);
    });
  }

  command(ctx: DmContext, args: string, origin: { roomId: string; eventId?: string }): Promise<string> {
    return this.queue.run(this.peerKey(ctx), () => runOtrCommand(this, this.peerFor(ctx), args, { roomId: origin.roomId, as: null, eventId: origin.eventId }));
  }

  /**
   * The contact changed nick (the DM router moved the room). The conversation is about the person and their key, not
   * the nick: an established private session, held messages and trust carry over to the new nick instead of a new AKE.
   */
  renamed(oldFoldedNick: string, ctx: DmContext): Promise<void> {
    const oldKey = `${ctx.userId}\u0000${ctx.networkId}\u0000${oldFoldedNick}`;
    const newKey = this.peerKey(ctx);
    if (oldKey === newKey) return Promise.resolve();
    return this.queue.run(oldKey, () => this.queue.run(newKey, async () => {
      const peer = this.peers.get(oldKey);
      if (this.persistSessions && !this.peers.has(newKey)) await this.moveSaved(oldFoldedNick, ctx, peer);
      if (!peer || this.peers.has(newKey)) return;
      this.peers.delete(oldKey);
      peer.ctx = ctx;
      this.peers.set(newKey, peer);
    }));
  }

  /** The saved session follows the contact to the new nick (as the live one does); failures only cost a new AKE. */
  private async moveSaved(oldFoldedNick: string, ctx: DmContext, peer: Peer | undefined): Promise<void> {
    const store = this.o.store;
    try {
      const bytes = peer?.conv ? peer.conv.exportState() : await store.getOtrSession(ctx.userId, ctx.networkId, oldFoldedNick);
      if (bytes !== null && (await store.getOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick)) === null) {
        await store.putOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick, bytes);
      }
      await store.deleteOtrSession(ctx.userId, ctx.networkId, oldFoldedNick);
    } catch (err) {
      this.o.logger.warn("could not move a saved OTR session to the new nick", { networkId: ctx.networkId, code: codeOf(err) });
    }
  }

  /** Expires held messages and stale fragments of every conversation (the timer calls this). */
  async pollAll(): Promise<void> {
    await Promise.all([...this.peers.values()].map((peer) =>
      this.queue.run(peer.key, async () => {
        if (peer.conv) await this.apply(peer, peer.conv.poll());
        const idle = this.env.now() - peer.lastActive > IDLE_PEER_MS;
        if (idle && peer.held.length === 0 && (peer.conv?.status().state ?? "plaintext") === "plaintext") this.peers.delete(peer.key);
      }).catch((err) => this.o.logger.warn("OTR poll failed", { code: codeOf(err) }))));
  }

  /**
   * Bridge shutdown, before the QUIT: every message still held for an AKE is given back to its user (quoted in a
   * `returned` notice, never lost silently), and every peer we are private with is told the session ends (TLV 1).
   */
  async shutdown(): Promise<void> {
    this.stopTimer();
    await Promise.all([...this.peers.values()].map((peer) =>
      this.queue.run(peer.key, async () => {
        if (peer.held.length > 0) await returnHeld(this, peer, "shutdown", "the bridge is shutting down before the private conversation was set up");
        if (peer.conv?.status().state !== "encrypted") return;
        // Saved sessions outlive the process: the contact's client stays private and the next start resumes.
        if (this.persistSessions && (await this.save(peer))) return;
        await this.apply(peer, peer.conv.end());
      }).catch((err) => this.o.logger.warn("ending an OTR session at shutdown failed", { code: codeOf(err) }))));
  }

  stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  // ------------------------------------------------------------ used by the command runner too

  /** The peer's conversation, made on first need; null while the policy is `never` (no key is ever needed). */
  async conversation(peer: Peer): Promise<OtrConversation | null> {
    if (peer.conv) return peer.conv;
    const { ctx } = peer;
    const name = await effectivePolicy(this.o.store, ctx.userId, ctx.networkId, ctx.foldedNick, this.o.defaultPolicy);
    peer.policyName = name;
    if (name === "never") return null;
    const account = await this.account(peer);
    const conv = new OtrConversation(account, ctx.foldedNick, {
      policy: presetFor(name),
      // The account is one per (user, network) but the line budget depends on the target's nick and on our own
      // current nick and host: the conversation reads it each time it builds a line.
      maxFragmentSize: () => peer.fragmentSize(),
    });
    await this.resume(peer, conv);
    peer.conv = conv;
    return conv;
  }

  /** Resumes the conversation saved before a restart, if any (a store failure propagates: nothing is guessed). */
  private async resume(peer: Peer, conv: OtrConversation): Promise<void> {
    const { ctx } = peer;
    if (!this.persistSessions) {
      // Saved by an earlier run with persistence on: keys at rest are what the operator turned off.
      await this.o.store.deleteOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick);
      return;
    }
    const bytes = await this.o.store.getOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick);
    if (bytes === null) return;
    const r = conv.importState(bytes);
    if (!r.ok) {
      this.o.logger.warn("a saved OTR session could not be resumed", { networkId: ctx.networkId, code: r.code });
      await this.o.store.deleteOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick);
      await this.notice(ctx, "resume-failed", `The private conversation with ${ctx.peerNick} could not be resumed after the restart (${r.code}); a new one starts when either of you asks.`);
      return;
    }
    const s = conv.status();
    peer.fingerprint = s.theirFingerprint;
    if (s.state === "encrypted" && s.theirFingerprint) {
      peer.verifiedBy = await this.trust.verifiedBy(ctx.userId, ctx.networkId, s.theirFingerprint);
      peer.verified = peer.verifiedBy !== null;
    }
    this.o.logger.debug("OTR session resumed", { networkId: ctx.networkId, state: s.state });
    if (r.smpDropped) await this.notice(ctx, "smp-abort", `The verification with ${ctx.peerNick} that was under way was interrupted by a bridge restart; start it again with \`!otr smp <secret>\`.`);
  }

  /**
   * Writes the conversation's state when it changed in a way later traffic depends on; true when nothing needs
   * saving or it is durable now. False (logged, stays dirty, retried with the next operation): send nothing.
   */
  async save(peer: Peer): Promise<boolean> {
    const conv = peer.conv;
    if (!this.persistSessions || !conv || !conv.stateDirty) return true;
    const { ctx } = peer;
    try {
      const bytes = conv.exportState();
      if (bytes === null) await this.o.store.deleteOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick);
      else await this.o.store.putOtrSession(ctx.userId, ctx.networkId, ctx.foldedNick, bytes);
      conv.markSaved();
      return true;
    } catch (err) {
      this.o.logger.error("could not save an OTR session; nothing it produced is sent", { networkId: ctx.networkId, code: codeOf(err) });
      return false;
    }
  }

  get persistSessions(): boolean {
    return this.o.persistSessions ?? true;
  }

  async policyOf(peer: Peer): Promise<OtrPolicyName> {
    if (peer.policyName) return peer.policyName;
    const { ctx } = peer;
    peer.policyName = await effectivePolicy(this.o.store, ctx.userId, ctx.networkId, ctx.foldedNick, this.o.defaultPolicy);
    return peer.policyName;
  }

  /** The account of the peer's (user, network), keyless until keyedAccount is first asked for. */
  account(peer: Peer): Promise<OtrAccount> {
    const { ctx } = peer;
    const k = this.accountKey(ctx);
    let p = this.accounts.get(k);
    if (!p) {
      p = this.identities
        .instanceTag(ctx.userId, ctx.networkId)
        .then((instanceTag) => new OtrAccount({ instanceTag, policy: POLICY.OPPORTUNISTIC, env: this.env, maxFragmentSize: 0 }));
      this.accounts.set(k, p);
      p.catch(() => this.accounts.delete(k));
    }
    return p;
  }

  /** The account with its private key: loaded, or generated (the user is told) and stored before any use. */
  async keyedAccount(peer: Peer): Promise<OtrAccount> {
    const account = await this.account(peer);
    if (account.hasPrivateKey) return account;
    const { ctx } = peer;
    const key = await this.identities.key(ctx.userId, ctx.networkId, () => {
      this.o.logger.info("generating an OTR key", { userId: ctx.userId, networkId: ctx.networkId });
      void this.notice(ctx, "key-generating", `Generating your OTR key for ${ctx.networkId}; this takes a moment. Messages wait meanwhile.`);
    });
    account.setPrivateKey(key);
    return account;
  }

  /** Sends the result's lines to the peer in order, then shows its events; returns the IRC lines written. */
  async apply(peer: Peer, r: OtrResult, sending?: string, ticket?: HoldTicket): Promise<number> {
    let lines = 0;
    // Write before send: a data message leaves only once the state that produced it (its counter, the key it
    // announces) is durable, so a crash at any point can never make the resumed session repeat a counter.
    if (!(await this.save(peer))) {
      if (r.toSend.length > 0) {
        await this.notice(peer.ctx, "not-saved", `Not sent: the private conversation's state could not be saved (the bridge's store failed), and nothing is sent that a restart could not continue.${sending === undefined ? "" : `\n${quote(sending)}`}`);
      }
      await this.handleEvents(peer, r.events, sending, ticket);
      return 0;
    }
    for (const line of r.toSend) lines += peer.ctx.toIrc("text", line);
    await this.handleEvents(peer, r.events, sending, ticket);
    return lines;
  }

  notice(ctx: DmContext, code: NoticeCode, body: string): Promise<void> {
    return this.o.matrix
      .send(ctx.roomId, this.ghost(ctx), "notice", body, { [NOTICE_KEY]: code })
      .then(() => undefined, (err) => this.o.logger.warn("could not post an OTR notice", { code: codeOf(err), notice: code }));
  }

  /** Posts the room's OTR status state event when it differs from the last one posted. */
  async updateStatus(peer: Peer): Promise<void> {
    const s = peer.conv?.status() ?? null;
    const state = s?.state ?? "plaintext";
    const content: OtrStatusContent = {
      state,
      verified: state === "encrypted" && peer.verified,
      fingerprint: s?.theirFingerprint ?? null,
      protocol_version: state === "plaintext" ? null : (s?.version ?? null),
    };
    const json = JSON.stringify(content);
    if (json === peer.lastStatus) return;
    peer.lastStatus = json;
    try {
      await this.o.matrix.sendState(peer.ctx.roomId, this.ghost(peer.ctx), STATUS_EVENT, "", content as unknown as Record<string, unknown>);
    } catch (err) {
      peer.lastStatus = null; // try again with the next change
      this.o.logger.warn("could not update the OTR status of a DM room", { code: codeOf(err) });
    }
  }

  // ------------------------------------------------------------ internals

  private async send(peer: Peer, kind: MessageKind, text: string): Promise<DmSendResult> {
    let conv: OtrConversation | null;
    try {
      conv = await this.conversation(peer);
    } catch (err) {
      this.o.logger.warn("no OTR conversation for a Matrix message", { code: codeOf(err) });
      this.o.metrics?.messageFailed("matrix_to_irc", codeOf(err));
      await this.notice(peer.ctx, "refused", `Not sent: your OTR key could not be loaded (${codeOf(err)}).\n${quote(text)}`);
      return { sent: false, encrypted: false, handled: true };
    }
    if (!conv) {
      await this.updateStatus(peer);
      return { sent: peer.ctx.toIrc(kind, text) > 0, encrypted: false };
    }
    // Inside OTR an emote travels as "/me text", the convention of libotr clients (pidgin, irssi-otr).
    const plaintext = kind === "emote" ? `/me ${text}` : text;
    const r = conv.send(plaintext);
    if (r.outcome === "plaintext") {
      // The library added at most a whitespace tag; outside OTR the kind travels as IRC knows it.
      let lines = 0;
      for (const line of r.toSend.map((l) => tagFirstIfSplit(l, plaintext, peer.ctx.ircTextBudget()))) {
        lines += kind === "emote" && line.startsWith("/me ") ? peer.ctx.toIrc("emote", line.slice(4)) : peer.ctx.toIrc(kind === "notice" ? "notice" : "text", line);
      }
      await this.handleEvents(peer, r.events, text);
      return { sent: lines > 0, encrypted: false };
    }
    const ticket = newHoldTicket();
    const lines = await this.apply(peer, r, text, ticket);
    if (r.outcome === "encrypted") return { sent: lines > 0, encrypted: true };
    return { sent: false, encrypted: false, handled: true, ...(ticket.used ? { settled: ticket.settled } : {}) };
  }

  private async plainFromIrc(peer: Peer, kind: MessageKind, text: string): Promise<void> {
    await this.deliver(peer, kind, text, false);
    if (kind === "emote" && peer.conv?.status().state === "encrypted") {
      await this.notice(peer.ctx, "plaintext-in-private", "The action above was sent without encryption, although your conversation is private.");
    }
  }

  /** Shows a message from the contact in the DM room (emote, HTML and the OTR flag handled). */
  deliver(peer: Peer, kind: MessageKind, text: string, encrypted: boolean): Promise<void> {
    return deliver(this, peer, kind, text, encrypted);
  }

  /** Turns library events into notices, messages and the status event (in order). */
  handleEvents(peer: Peer, events: OtrEvent[], sending?: string, ticket?: HoldTicket): Promise<void> {
    return presentEvents(this, peer, events, sending, ticket);
  }

  private peerFor(ctx: DmContext): Peer {
    const k = this.peerKey(ctx);
    let p = this.peers.get(k);
    if (!p) {
      p = new Peer(ctx, this.o.fragmentSize?.(ctx.networkId));
      this.peers.set(k, p);
    } else {
      if (p.ctx.roomId !== ctx.roomId) p.lastStatus = null; // a new room has no status yet
      p.ctx = ctx; // the latest spelling and room
    }
    p.lastActive = this.env.now();
    return p;
  }

  ghost(ctx: DmContext): string {
    return this.o.matrix.ghostUserId(ctx.networkId, ctx.foldedNick);
  }

  private peerKey(ctx: DmContext): string {
    return `${ctx.userId}\u0000${ctx.networkId}\u0000${ctx.foldedNick}`;
  }

  private accountKey(ctx: DmContext): string {
    return `${ctx.userId}\u0000${ctx.networkId}`;
  }
}

/**
 * The whitespace tag the library appends to advertise OTR is spaces and tabs; when the puppet splits a long text
 * at spaces it could cut the tag apart. Receivers look for the tag anywhere in the message, so a text that will
 * be split carries it in front, inside the first line.
 */
export function tagFirstIfSplit(line: string, plaintext: string, budget: number): string {
  if (budget <= 0 || Buffer.byteLength(line) <= budget || line.length === plaintext.length || !line.startsWith(plaintext)) return line;
  return line.slice(plaintext.length) + plaintext;
}

export function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
