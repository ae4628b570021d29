// The Matrix side of the bridge, on matrix-appservice-bridge 11: the appservice listener, the bot, ghost
// intents, and the translation of raw events into the few event shapes the bridge acts on (invites, messages,
// membership). It knows nothing of IRC: ghost names come from GhostNaming and the bridge hands it folded nicks.
// With encryption on, transactions pass through src/matrix/crypto first and messages into encrypted rooms leave
// through it, so the handlers only ever see clear events and send plain content.
import { randomBytes } from "node:crypto";
import { Bridge, AppServiceRegistration } from "matrix-appservice-bridge";
import type { Intent } from "matrix-appservice-bridge";
import type { Registry } from "prom-client";
import { GhostNaming } from "./localpart.js";
import { HookedAppService } from "./crypto/appservice.js";
import { addPingRoute, pingFromHomeserver, type PingResult } from "./as-ping.js";
import { MatrixCrypto, type CryptoObserver, type CryptoStore, type Undecryptable } from "./crypto/matrix-crypto.js";

export type MessageKind = "text" | "notice" | "emote";

export interface AdapterHandlers {
  onInvite(e: { roomId: string; inviter: string; invitee: string; isDirect: boolean }): Promise<void>;
  /** `html` is the formatted_body when the event has one; `edit` marks an m.replace (body = the new text). */
  onMessage(e: { roomId: string; sender: string; eventId: string; kind: MessageKind; body: string; html?: string; edit?: boolean; replyTo?: string }): Promise<void>;
  onMembership(e: { roomId: string; userId: string; sender: string; membership: "join" | "leave" | "ban" | "invite" | "knock"; prevMembership?: string }): Promise<void>;
  /** m.room.power_levels changed: user levels before and after (channel portals carry them to IRC as modes). */
  onPowerLevels?(e: { roomId: string; sender: string; users: Record<string, number>; usersDefault: number; prevUsers: Record<string, number>; prevUsersDefault: number }): Promise<void>;
  /** A user asked for a room alias in our namespace: the room id to provision it with, or null to refuse. */
  onAliasQuery?(alias: string): Promise<string | null>;
  /** The room topic was set (channel portals carry it to IRC). */
  onTopic?(e: { roomId: string; sender: string; topic: string }): Promise<void>;
}

export interface MatrixAdapterOptions {
  homeserverUrl: string;
  domain: string;
  /** The parsed registration file (id, as_token, hs_token, sender_localpart, namespaces, url). */
  registration: Record<string, unknown>;
  ghostTemplate: string;
  networkIds: readonly string[];
  /** Reports errors raised while handling an event (handlers must not throw into the library's queue). */
  onError(err: unknown, where: string): void;
  /** Library log lines; errors only by default. */
  onLog?: (text: string, isError: boolean) => void;
  /** End-to-bridge encryption; absent = encrypted rooms are unreadable to the bridge (the pre-encryption behaviour). */
  encryption?: AdapterEncryption;
  /** Where message events are recorded before their transaction is answered (at-least-once towards IRC). */
  inbox?: TransactionInbox;
}

/** The durable record of message events (the bridge's inbox, src/bridge/inbox.ts). */
export interface TransactionInbox {
  /** Durable when it resolves; per event, whether it is new (false: delivered before, drop it). */
  record(events: ReadonlyArray<{ eventId: string; roomId: string; event: Record<string, unknown> }>): Promise<boolean[]>;
}

export interface AdapterEncryption {
  store: CryptoStore;
  /** Refuse to start (code encryption-unavailable) when the homeserver cannot do it; otherwise run without. */
  require: boolean;
  probeTimeoutMs: number;
  /** Rooms the bridge creates (DM rooms) get m.room.encryption. */
  encryptNewRooms: boolean;
  deviceDisplayName: string;
  /** Devices kept open at once, and how long an unused one stays open (see MatrixCryptoOptions). */
  maxLoadedDevices?: number;
  deviceIdleMs?: number;
  /** m.room.retention max_lifetime for DM rooms the bridge creates, in ms; null = none. */
  dmRetentionMs: number | null;
  observer?: CryptoObserver;
  log(level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>): void;
}

/** Who can read a DM room's history: members from their invite on, so the first IRC line reaches the invitee. */
const DM_HISTORY_VISIBILITY = "invited";

/** The notice a sender gets when their message could not be decrypted (one per event). */
export const UNDECRYPTABLE_CODE = "undecryptable";
const UNDECRYPTABLE_TEXT: Record<Undecryptable["reason"], string> = {
  "missing-key": "I could not decrypt your message yet: its key has not reached me. I have asked for it and will pass the message on when it arrives.",
  "unknown-index": "I could not decrypt your message: I only hold a later part of its key. I have asked for it.",
  replayed: "A message in this room repeats an earlier encrypted message (a replay): it was not passed on.",
  tampered: "A message in this room failed its integrity check and was not passed on.",
  malformed: "A message in this room is not a well-formed encrypted message and was not passed on.",
  other: "I could not decrypt your message, so it was not passed on.",
};

const MSGTYPE: Record<MessageKind, string> = { text: "m.text", notice: "m.notice", emote: "m.emote" };

interface RawEvent {
  type?: string;
  room_id?: string;
  sender?: string;
  state_key?: string;
  event_id?: string;
  content?: Record<string, unknown>;
  /** Synapse puts the replaced state's content here (prev_content), which tells an unban from a kick. */
  unsigned?: { prev_content?: Record<string, unknown> };
}

/** The users map of a power-levels content, keeping only integer levels (anything else is the room's problem). */
function levels(content: Record<string, unknown> | undefined): { users: Record<string, number>; usersDefault: number } {
  const users: Record<string, number> = {};
  const raw = content?.["users"];
  if (raw && typeof raw === "object") {
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) if (Number.isInteger(v)) users[k] = v as number;
  }
  const d = content?.["users_default"];
  return { users, usersDefault: Number.isInteger(d) ? (d as number) : 0 };
}

export class MatrixAdapter {
  private bridge: Bridge | null = null;
  private handlers: AdapterHandlers | null = null;
  private readonly naming: GhostNaming;
  private readonly displayNames = new Map<string, string>();
  private crypto: MatrixCrypto | null = null;
  readonly botUserId: string;

  constructor(private readonly opts: MatrixAdapterOptions) {
    this.naming = new GhostNaming(opts.ghostTemplate, opts.domain);
    const localpart = String(opts.registration["sender_localpart"] ?? "");
    if (!localpart) throw Object.assign(new Error("registration has no sender_localpart"), { code: "bad-registration" });
    this.botUserId = `@${localpart}:${opts.domain}`;
  }

  setHandlers(h: AdapterHandlers): void {
    this.handlers = h;
  }

  async start(port: number, bindAddress: string): Promise<void> {
    const reg = AppServiceRegistration.fromObject(this.opts.registration as never);
    if (!reg) throw Object.assign(new Error("registration file is invalid"), { code: "bad-registration" });
    const bridge = new Bridge({
      homeserverUrl: this.opts.homeserverUrl,
      domain: this.opts.domain,
      registration: reg,
      disableStores: true,
      disableContext: true,
      controller: {
        onEvent: (request) => {
          const ev = request.getData() as RawEvent;
          this.dispatch(ev).catch((err) => this.opts.onError(err, `event ${ev.type ?? "?"}`));
        },
        // The bridge creates the room itself (with the alias) so `join` and alias joins share one code path.
        onAliasQuery: async (alias) => {
          const roomId = await this.handlers?.onAliasQuery?.(alias);
          return roomId ? { roomId } : null;
        },
        onLog: this.opts.onLog ?? ((text, isError) => {
          if (isError) this.opts.onError(new Error(text), "matrix-appservice-bridge");
        }),
      },
    });
    this.bridge = bridge;
    await bridge.initialise();
    const enc = this.opts.encryption;
    // With encryption, listen before creating any device: creating the bot's device makes Synapse push a
    // transaction at once, and one it cannot deliver puts the appservice into its retry backoff. Transactions
    // wait (unanswered) until crypto is up.
    let cryptoUp: (c: MatrixCrypto | null) => void = () => undefined;
    const ready = new Promise<MatrixCrypto | null>((r) => (cryptoUp = r));
    if (!enc) cryptoUp(null);
    // Every transaction goes through the hook, with or without encryption: matrix-appservice alone answers it
    // before anything is handled, and a crash then would lose messages the homeserver considers delivered.
    const hooked = new HookedAppService(String(this.opts.registration["hs_token"]), async (body) => {
      const c = (await ready) && this.crypto;
      const events = c ? await c.transaction(body) : (Array.isArray(body["events"]) ? (body["events"] as RawEvent[]) : []);
      return this.recorded(events);
    });
    await bridge.listen(port, bindAddress, 10, hooked);
    addPingRoute(bridge.appService.expressApp, String(this.opts.registration["hs_token"]));
    const pinged = await this.pingFromHomeserver();
    if (enc) {
      try {
        this.crypto = await this.startCrypto(enc);
      } catch (err) {
        cryptoUp(null);
        // Typically a homeserver without MSC4190: creating the bot's device is refused.
        this.encryptionUnavailable(enc, `the bridge's devices cannot be created (${(err as { code?: string })?.code ?? "error"}): does the registration have io.element.msc4190: true?`);
      }
      cryptoUp(this.crypto);
      const crypto = this.crypto;
      if (crypto && !(await crypto.probeToDevice(enc.probeTimeoutMs))) {
        const check = "Synapse experimental_features msc2409_to_device_messages_enabled and msc3202_transaction_extensions; registration receive_ephemeral and org.matrix.msc3202";
        if (pinged) {
          // The homeserver reached us and had no backoff left to wait out, yet the to-device message never came:
          // it does not deliver them to appservices, so no room key would ever reach a ghost.
          this.crypto = null;
          await crypto.stop();
          this.encryptionUnavailable(enc, `the homeserver does not deliver to-device messages to the appservice (check ${check})`);
        } else {
          // Without the ping a late probe may only mean Synapse's retry backoff from our last run: not proof.
          enc.log("warn", "the start-up check saw no to-device message come back in time: if encrypted messages stay undecryptable, check the homeserver's appservice encryption flags", { check });
        }
      } else if (crypto) {
        enc.log("info", "end-to-bridge encryption is on", { device: crypto.deviceIdOf(this.botUserId) });
      }
    }
    // Shutdown closes the listener first (stopListening) and the rest later (stop), and Bridge.close() closes it
    // again: make the appservice's close idempotent, tolerating a listener that is already closed.
    const as = bridge.appService;
    const closeListener = as.close.bind(as);
    let closing: Promise<void> | null = null;
    as.close = () =>
      (closing ??= closeListener().catch((err: unknown) => {
        if ((err as { code?: string })?.code !== "ERR_SERVER_NOT_RUNNING") throw err;
      }));
  }

  /**
   * Records the message events of a transaction (in their clear form: a replay after a restart then needs no
   * Megolm session) and drops the ones recorded before — a retry of a transaction we answered, or a replay.
   */
  private async recorded(events: RawEvent[]): Promise<RawEvent[]> {
    const inbox = this.opts.inbox;
    if (!inbox) return events;
    const kept = events.filter((ev) => this.isBridgeable(ev));
    if (kept.length === 0) return events;
    const fresh = await inbox.record(kept.map((ev) => ({ eventId: ev.event_id!, roomId: ev.room_id!, event: ev as Record<string, unknown> })));
    const old = new Set(kept.filter((_, i) => !fresh[i]));
    return events.filter((ev) => !old.has(ev));
  }

  /** A message from a Matrix user (not ours) that reaches the handlers: what can become IRC lines. */
  private isBridgeable(ev: RawEvent): boolean {
    if (!ev.event_id || !ev.room_id || !ev.sender) return false;
    if (ev.sender === this.botUserId || this.naming.parse(ev.sender, this.opts.networkIds)) return false;
    return messageOf(ev) !== null;
  }

  /** Hands on an event recorded before a restart, through the same path as a live one (in call order per room). */
  replay(event: Record<string, unknown>): void {
    const ev = event as RawEvent;
    this.dispatch(ev).catch((err) => this.opts.onError(err, `replayed event ${ev.type ?? "?"}`));
  }

  /**
   * Asks the homeserver to send the transactions it kept back now, instead of at the end of its retry backoff (after
   * a restart, or after refusing transactions while the store was down). Never throws.
   */
  retryNow(): Promise<PingResult> {
    return pingFromHomeserver(this.opts.homeserverUrl, String(this.opts.registration["as_token"]), String(this.opts.registration["id"]), 10_000);
  }

  /** Ends the homeserver's retry backoff from our last run at once; a homeserver without the ping only loses time. */
  private async pingFromHomeserver(): Promise<boolean> {
    const r = await this.retryNow();
    if (r.ok) this.opts.encryption?.log("info", "the homeserver reached the appservice", { ping_ms: r.ms });
    else this.opts.encryption?.log("warn", "the homeserver could not ping the appservice: after a restart, events may arrive late", { status: r.status, errcode: r.errcode });
    return r.ok;
  }

  /**
   * Stops taking appservice transactions (the homeserver keeps them and retries later) while the bot and ghosts
   * can still talk to the homeserver; safe to call more than once, or before stop().
   */
  async stopListening(): Promise<void> {
    const b = this.bridge;
    if (!b) return;
    await b.appService.close();
  }

  /** The library's own metrics go into the bridge's registry, served on the metrics listener, never on the AS port. */
  registerMetrics(registry: Registry): void {
    this.bridge?.getPrometheusMetrics(false, registry);
  }

  async stop(): Promise<void> {
    const b = this.bridge;
    this.bridge = null;
    if (b) await b.close();
    const c = this.crypto;
    this.crypto = null;
    await c?.stop();
  }

  /** Whether the bridge reads and writes encrypted rooms (encryption configured and started). */
  get encrypts(): boolean {
    return this.crypto !== null;
  }

  private startCrypto(enc: AdapterEncryption): Promise<MatrixCrypto> {
    return MatrixCrypto.start({
      homeserverUrl: this.opts.homeserverUrl,
      asToken: String(this.opts.registration["as_token"]),
      botUserId: this.botUserId,
      isOurUser: (u) => this.naming.parse(u, this.opts.networkIds) !== null,
      store: enc.store,
      deviceDisplayName: enc.deviceDisplayName,
      ...(enc.maxLoadedDevices ? { maxLoadedDevices: enc.maxLoadedDevices } : {}),
      ...(enc.deviceIdleMs ? { deviceIdleMs: enc.deviceIdleMs } : {}),
      ...(enc.observer ? { observer: enc.observer } : {}),
      onUndecryptable: (u) => this.tellUndecryptable(u),
      log: enc.log,
    });
  }

  /** Said once at start; fatal under encryption.require, otherwise the bridge runs as if encryption were off. */
  private encryptionUnavailable(enc: AdapterEncryption, why: string): void {
    if (enc.require) throw Object.assign(new Error(`encryption.require is on, but ${why}`), { code: "encryption-unavailable" });
    enc.log("warn", "end-to-bridge encryption is off: encrypted rooms will be refused", { reason: why });
  }

  private tellUndecryptable(u: Undecryptable): void {
    const content = { msgtype: "m.notice", body: UNDECRYPTABLE_TEXT[u.reason], "org.matrix_otr_irc.notice": UNDECRYPTABLE_CODE,
      "org.matrix_otr_irc.undecryptable": { reason: u.reason, event_id: u.eventId } };
    this.sendContent(u.roomId, u.ourUser === this.botUserId ? null : u.ourUser, content)
      .catch((err) => this.opts.onError(err, "undecryptable notice"));
  }

  /** A message with a transaction id of its own (sends not queued by the bridge's outbox). */
  private sendContent(roomId: string, from: string | null, content: Record<string, unknown>): Promise<string> {
    return this.deliver(roomId, from, content, `motr.${Date.now().toString(36)}.${randomBytes(6).toString("hex")}`);
  }

  /**
   * Sends a message with the caller's transaction id (an outbox retry makes no second event: the homeserver answers
   * a repeated id with the first event). Rejects with `transient: false` when the homeserver refused for good.
   */
  async deliver(roomId: string, from: string | null, content: Record<string, unknown>, txnId: string): Promise<string> {
    try {
      const c = this.crypto;
      const sender = from ?? this.botUserId;
      if (c && (await c.isEncrypted(roomId, sender))) {
        await this.ensureJoinedForCrypto(roomId, from);
        return await c.send(roomId, sender, "m.room.message", content, "joined", txnId);
      }
      const intent = this.intent(from);
      await intent.join(roomId);
      const r = (await intent.matrixClient.doRequest("PUT",
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${encodeURIComponent(txnId)}`, null, content)) as { event_id?: unknown };
      return String(r.event_id ?? "");
    } catch (err) {
      throw deliveryError(err);
    }
  }

  /** Our user must be joined (and have its device) before it encrypts into a room. */
  private async ensureJoinedForCrypto(roomId: string, as: string | null): Promise<void> {
    const c = this.crypto!;
    const user = as ?? this.botUserId;
    await c.device(user);
    await this.intent(as).join(roomId);
    await c.noteMembership(roomId, user, true);
  }

  ghostUserId(networkId: string, foldedNick: string): string {
    return this.naming.userId(networkId, foldedNick);
  }

  parseGhost(userId: string): { networkId: string; foldedNick: string } | null {
    return this.naming.parse(userId, this.opts.networkIds);
  }

  async send(roomId: string, from: string | null, kind: MessageKind, body: string, extraContent?: Record<string, unknown>): Promise<string> {
    return this.sendContent(roomId, from, { ...extraContent, msgtype: MSGTYPE[kind], body });
  }

  async sendState(roomId: string, from: string | null, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    const r = await this.intent(from).sendStateEvent(roomId, type, stateKey, content);
    return r.event_id;
  }

  async redact(roomId: string, as: string | null, eventId: string, reason?: string): Promise<void> {
    await this.intent(as).matrixClient.redactEvent(roomId, eventId, reason ?? null);
  }

  async setDisplayName(userId: string, name: string): Promise<void> {
    if (this.displayNames.get(userId) === name) return;
    await this.intent(userId).ensureProfile(name);
    this.displayNames.set(userId, name);
  }

  async createDmRoom(creator: string, invitee: string, name: string): Promise<string> {
    // Created by the ghost itself, as a client, so the bot is not a member: the room is a 1:1 between the user and
    // the IRC contact. Encrypted when the bridge encrypts: the creator's device exists before the invitee's client
    // looks for it, or the user's first message would be encrypted to nobody on our side.
    const enc = this.opts.encryption;
    const encrypt = this.crypto !== null && enc?.encryptNewRooms === true;
    if (encrypt) await this.crypto!.device(creator);
    const initial_state: Array<{ type: string; state_key: string; content: Record<string, unknown> }> = [];
    if (encrypt) {
      initial_state.push({ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } });
      initial_state.push({ type: "m.room.history_visibility", state_key: "", content: { history_visibility: DM_HISTORY_VISIBILITY } });
      if (enc?.dmRetentionMs) initial_state.push({ type: "m.room.retention", state_key: "", content: { max_lifetime: enc.dmRetentionMs } });
    }
    const r = await this.intent(creator).createRoom({
      createAsClient: true,
      options: { is_direct: true, invite: [invitee], preset: "trusted_private_chat", visibility: "private", name, ...(initial_state.length ? { initial_state } : {}) },
    });
    if (this.crypto) {
      this.crypto.markEncrypted(r.room_id, encrypt);
      await this.crypto.noteMembership(r.room_id, creator, true);
    }
    return r.room_id;
  }

  /** A channel portal: created by the bot (which stays in it to invite ghosts), public join rule, no encryption. */
  async createChannelRoom(o: { name: string; aliasLocalpart?: string; topic?: string; invite?: string[] }): Promise<string> {
    const r = await this.intent(null).createRoom({
      createAsClient: true,
      options: {
        preset: "public_chat",
        visibility: "private",
        name: o.name,
        ...(o.aliasLocalpart ? { room_alias_name: o.aliasLocalpart } : {}),
        ...(o.topic ? { topic: o.topic } : {}),
        ...(o.invite?.length ? { invite: o.invite } : {}),
      },
    });
    return r.room_id;
  }

  async kick(roomId: string, as: string | null, userId: string, reason?: string): Promise<void> {
    await this.intent(as).kick(roomId, userId, reason);
  }

  async ban(roomId: string, as: string | null, userId: string, reason?: string): Promise<void> {
    await this.intent(as).ban(roomId, userId, reason);
  }

  async unban(roomId: string, as: string | null, userId: string): Promise<void> {
    await this.intent(as).unban(roomId, userId);
  }

  /** Sets one user's power level in a room (read-modify-write of m.room.power_levels, as the bot). */
  async setPowerLevel(roomId: string, userId: string, level: number, as: string | null = null): Promise<void> {
    await this.intent(as).setPowerLevel(roomId, userId, level);
  }

  async invite(roomId: string, as: string | null, userId: string): Promise<void> {
    await this.intent(as).invite(roomId, userId);
  }

  async join(roomId: string, as: string | null): Promise<void> {
    // The device first: the inviter's client encrypts to the devices it finds once we are joined.
    if (this.crypto) await this.crypto.device(as ?? this.botUserId);
    await this.intent(as).join(roomId);
    await this.crypto?.noteMembership(roomId, as ?? this.botUserId, true);
  }

  async leave(roomId: string, as: string | null): Promise<void> {
    await this.intent(as).leave(roomId);
    await this.crypto?.noteMembership(roomId, as ?? this.botUserId, false);
  }

  async membership(roomId: string, as: string | null, userId: string): Promise<string | null> {
    try {
      const ev = await this.intent(as).getStateEvent(roomId, "m.room.member", userId, true);
      return ev && typeof ev.membership === "string" ? ev.membership : null;
    } catch {
      return null;
    }
  }

  async joinedMembers(roomId: string, as: string | null): Promise<string[]> {
    return this.intent(as).matrixClient.getJoinedRoomMembers(roomId);
  }

  async unreadable(roomId: string, as: string | null): Promise<boolean> {
    if (this.crypto) return false;
    const ev = await this.intent(as).getStateEvent(roomId, "m.room.encryption", "", true);
    return Boolean(ev && typeof ev === "object" && Object.keys(ev).length > 0);
  }

  private intent(userId: string | null): Intent {
    if (!this.bridge) throw Object.assign(new Error("Matrix adapter not started"), { code: "not-started" });
    return (userId ? this.bridge.getIntent(userId) : this.bridge.getIntent()) as Intent;
  }

  private async dispatch(ev: RawEvent): Promise<void> {
    const h = this.handlers;
    if (!h || !ev.room_id || !ev.sender) return;
    const content = ev.content ?? {};
    if (ev.type === "m.room.member" && typeof ev.state_key === "string") {
      const membership = content["membership"];
      if (membership === "invite") {
        await h.onInvite({ roomId: ev.room_id, inviter: ev.sender, invitee: ev.state_key, isDirect: content["is_direct"] === true });
      }
      if (membership === "join" || membership === "leave" || membership === "ban" || membership === "invite" || membership === "knock") {
        const prev = ev.unsigned?.prev_content?.["membership"];
        await h.onMembership({ roomId: ev.room_id, userId: ev.state_key, sender: ev.sender, membership, ...(typeof prev === "string" ? { prevMembership: prev } : {}) });
      }
      return;
    }
    if (ev.type === "m.room.power_levels" && ev.state_key === "") {
      if (!h.onPowerLevels) return;
      const now = levels(content);
      const before = levels(ev.unsigned?.prev_content);
      await h.onPowerLevels({ roomId: ev.room_id, sender: ev.sender, ...now, prevUsers: before.users, prevUsersDefault: before.usersDefault });
      return;
    }
    if (ev.type === "m.room.topic" && ev.state_key === "") {
      const topic = content["topic"];
      if (typeof topic === "string" && h.onTopic) await h.onTopic({ roomId: ev.room_id, sender: ev.sender, topic });
      return;
    }
    const msg = messageOf(ev);
    if (msg) await h.onMessage(msg);
  }
}

/** The message an m.room.message event carries, or null when the bridge has nothing to do with it. */
function messageOf(ev: RawEvent): Parameters<AdapterHandlers["onMessage"]>[0] | null {
  if (ev.type !== "m.room.message" || !ev.event_id || !ev.room_id || !ev.sender) return null;
  const content = ev.content ?? {};
  const body = content["body"];
  if (typeof body !== "string") return null;
  // Edits arrive as new m.room.message events; bridging them would repeat the message on IRC.
  const rel = content["m.relates_to"] as { rel_type?: string } | undefined;
  const edit = rel?.rel_type === "m.replace";
  const newContent = content["m.new_content"] as Record<string, unknown> | undefined;
  if (edit && typeof newContent?.["body"] !== "string") return null;
  const msgtype = content["msgtype"];
  const kind: MessageKind | null = msgtype === "m.text" ? "text" : msgtype === "m.notice" ? "notice" : msgtype === "m.emote" ? "emote" : null;
  if (!kind) return null;
  const inReplyTo = (content["m.relates_to"] as { "m.in_reply_to"?: unknown } | undefined)?.["m.in_reply_to"];
  const src = edit ? newContent! : content;
  const html = src["format"] === "org.matrix.custom.html" && typeof src["formatted_body"] === "string" ? (src["formatted_body"] as string) : undefined;
  const replyTo = (inReplyTo as { event_id?: unknown } | undefined)?.event_id;
  return {
    roomId: ev.room_id, sender: ev.sender, eventId: ev.event_id, kind,
    body: edit ? String(src["body"]) : inReplyTo ? stripReplyFallback(body) : body,
    ...(html !== undefined ? { html } : {}),
    ...(edit ? { edit: true } : {}),
    ...(typeof replyTo === "string" ? { replyTo } : {}),
  };
}

/**
 * Replies carry a quote of the original as "> " lines and a blank line before the answer (spec: "Fallbacks for
 * rich replies"); the IRC contact already saw the original, so only the answer is bridged.
 */
export function stripReplyFallback(body: string): string {
  const lines = body.split("\n");
  let i = 0;
  while (i < lines.length && lines[i]!.startsWith(">")) i++;
  if (i === 0 || i >= lines.length || lines[i] !== "") return body;
  const rest = lines.slice(i + 1).join("\n");
  return rest.trim() === "" ? body : rest;
}

/**
 * The homeserver's answer as the outbox needs it: `transient: false` for a refusal that a retry would get again
 * (4xx but 408 and 429: forbidden, unknown room), otherwise a retry may work (unreachable, timeout, 5xx, 429, or
 * an error this code cannot read, which waits rather than loses the message).
 */
function deliveryError(err: unknown): Error {
  const e = err as { statusCode?: unknown; status?: unknown; httpStatus?: unknown; errcode?: unknown; code?: unknown; body?: { errcode?: unknown } } | null;
  const status = [e?.statusCode, e?.status, e?.httpStatus].find((x): x is number => typeof x === "number" && x > 0);
  const errcode = typeof e?.errcode === "string" ? e.errcode : typeof e?.body?.errcode === "string" ? e.body.errcode : "";
  const refused = status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
  const code = refused ? `homeserver-refused${errcode ? `-${errcode}` : ""}` : status !== undefined ? `homeserver-${status}` : typeof e?.code === "string" ? e.code : "homeserver-unreachable";
  return Object.assign(new Error(`the homeserver did not take the message (${code})`), { code, transient: !refused, cause: err });
}
