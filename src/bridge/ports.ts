// The interfaces the bridge's use cases need from the outside world. The IRC and Matrix adapters satisfy them
// structurally (they never import this file); src/main.ts wires the concrete classes, unit tests wire fakes.
import type { ChannelEvent } from "../irc/channel-events.js";

/** How a message is presented: m.text / PRIVMSG, m.notice / NOTICE, m.emote / CTCP ACTION. */
export type MessageKind = "text" | "notice" | "emote";

export interface MatrixInvite {
  roomId: string;
  inviter: string;
  invitee: string;
  isDirect: boolean;
}

export interface MatrixMessage {
  roomId: string;
  sender: string;
  eventId: string;
  kind: MessageKind;
  body: string;
  /** formatted_body (org.matrix.custom.html) when present. */
  html?: string;
  /** An edit (m.replace): body/html are the new content. DMs ignore edits; channels render them short. */
  edit?: boolean;
  /** The event this one replies to. */
  replyTo?: string;
}

export interface MatrixMembership {
  roomId: string;
  userId: string;
  sender: string;
  membership: "join" | "leave" | "ban" | "invite" | "knock";
  /** The membership this event replaced, when the homeserver says (leave after ban = an unban). */
  prevMembership?: string;
}

/** A change of m.room.power_levels: user levels before and after (absent users are at the default). */
export interface MatrixPowerLevels {
  roomId: string;
  sender: string;
  users: Record<string, number>;
  usersDefault: number;
  prevUsers: Record<string, number>;
  prevUsersDefault: number;
}

export interface MatrixEventHandlers {
  onInvite(e: MatrixInvite): Promise<void>;
  onMessage(e: MatrixMessage): Promise<void>;
  onMembership(e: MatrixMembership): Promise<void>;
  onPowerLevels?(e: MatrixPowerLevels): Promise<void>;
  /** A room alias in the bridge's namespace was looked up: the room id to answer with, or null. */
  onAliasQuery?(alias: string): Promise<string | null>;
}

export interface MatrixPort {
  readonly botUserId: string;
  ghostUserId(networkId: string, foldedNick: string): string;
  /** null when userId is not one of our ghosts. */
  parseGhost(userId: string): { networkId: string; foldedNick: string } | null;
  /** `from` null = the bot. Returns the event id. */
  send(roomId: string, from: string | null, kind: MessageKind, body: string, extraContent?: Record<string, unknown>): Promise<string>;
  /**
   * True when sends to one room keep their call order whether or not each is awaited (the outbox queues a message
   * in its room the moment send is called). The DM path then hands an IRC message over without holding its DM's
   * queue until the homeserver answers, so the user's next line to IRC does not wait for the homeserver.
   */
  readonly sendsInOrder?: boolean;
  /** State event (e.g. the OTR status of a DM room); returns the event id. */
  sendState(roomId: string, from: string | null, type: string, stateKey: string, content: Record<string, unknown>): Promise<string>;
  /** Removes an event's content (secrets typed into Matrix are redacted once read). */
  redact(roomId: string, as: string | null, eventId: string, reason?: string): Promise<void>;
  setDisplayName(userId: string, name: string): Promise<void>;
  /** A private room created by `creator` (a ghost or the bot), with `invitee` invited as a direct chat (encrypted when the bridge encrypts new rooms). */
  createDmRoom(creator: string, invitee: string, name: string): Promise<string>;
  invite(roomId: string, as: string | null, userId: string): Promise<void>;
  join(roomId: string, as: string | null): Promise<void>;
  leave(roomId: string, as: string | null): Promise<void>;
  /** The membership of userId in roomId as seen by `as` (a member), or null when unknown. */
  membership(roomId: string, as: string | null, userId: string): Promise<string | null>;
  joinedMembers(roomId: string, as: string | null): Promise<string[]>;
  /**
   * Whether the room is end-to-end encrypted in a way this bridge cannot read (encryption is off in the config or
   * the homeserver lacks what it needs); false for encrypted rooms the bridge decrypts itself. `as` must be a member.
   */
  unreadable(roomId: string, as: string | null): Promise<boolean>;
  /** Channel portals: a public-join room created by the bot, optionally with an alias localpart. */
  createChannelRoom?(o: { name: string; aliasLocalpart?: string; topic?: string; invite?: string[] }): Promise<string>;
  kick?(roomId: string, as: string | null, userId: string, reason?: string): Promise<void>;
  ban?(roomId: string, as: string | null, userId: string, reason?: string): Promise<void>;
  unban?(roomId: string, as: string | null, userId: string): Promise<void>;
  /** As the bot, or as `as` (a member with power, e.g. the ghost that created a DM room) when given. */
  setPowerLevel?(roomId: string, userId: string, level: number, as?: string | null): Promise<void>;
}

/**
 * Sends a message event with the caller's transaction id, so a retry after a lost answer makes no second event.
 * A rejection carries `transient: false` when the homeserver refused for good (4xx other than 429), else it may be
 * tried again.
 */
export interface MatrixDelivery {
  deliver(roomId: string, from: string | null, content: Record<string, unknown>, txnId: string): Promise<string>;
}

export interface IrcIncoming {
  kind: "privmsg" | "notice" | "action";
  from: string;
  text: string;
}

export interface PuppetEvents {
  onMessage(msg: IrcIncoming): void;
  onConnected(info: { nick: string }): void;
  /** Reported once per outage; `wasConnected` false when the connection never came up. */
  /** `failed`: refused for good (credentials, ban, no usable nick); no retry until the user connects again. */
  onDisconnected(info: { reason: string; willRetry: boolean; retryInMs?: number; wasConnected?: boolean; failed?: boolean }): void;
  onNickChange(info: { oldNick: string; newNick: string }): void;
  onNickRejected(info: { nick: string; reason: string }): void;
  /** A queued line was written after waiting this long for the flood budget (metrics only). */
  onQueueWait?(waitedMs: number): void;
  /** Services logged the user in, or refused their stored password. */
  onLogin?(info: { ok: boolean; account: string | null; reason?: string }): void;
  /** Channel traffic seen by this puppet (channel portals, src/bridge/channels). */
  onChannel?(e: IrcChannelEvent): void;
}

/** What a puppet sees in the channels it is in: the IRC adapter's own union, so the two cannot drift apart. */
export type IrcChannelEvent = ChannelEvent;

export interface PuppetPort {
  readonly nick: string;
  readonly connected: boolean;
  /** Connected, or reconnecting with room to hold the message until it is back (absent: same as connected). */
  readonly canSend?: boolean;
  foldNick(nick: string): string;
  connect(): void;
  disconnect(reason?: string): Promise<void>;
  /** Each returns the number of IRC lines written (0 when not connected). */
  say(target: string, text: string): number;
  notice(target: string, text: string): number;
  action(target: string, text: string): number;
  changeNick(nick: string): void;
  /** NickServ IDENTIFY now (after `login`); false when not connected. */
  identify?(account: string, password: string): boolean;
  /** Bytes of text one PRIVMSG to target can carry once the server prepends its prefix (OTR fragment sizing). */
  textBudget(target: string): number;
  /**
   * Calls `done` once every line say/notice/action queued so far has been taken by the socket, or dropped
   * (disconnect). Absent: lines count as sent when queued.
   */
  whenSent?(done: () => void): void;
  /** Channel membership and moderation (channel portals); no-ops while not connected. */
  joinChannel?(channel: string, key?: string): void;
  partChannel?(channel: string, reason?: string): void;
  setTopic?(channel: string, topic: string): void;
  kick?(channel: string, nick: string, reason?: string): void;
  /** Mode changes such as { mode: "+b", param: "nick!*@*" } or { mode: "-o", param: "nick" }. */
  setModes?(channel: string, changes: readonly { mode: string; param?: string }[]): void;
}

export interface PuppetRequest {
  userId: string;
  networkId: string;
  nick: string;
  /** The user's services account, from `login` (stored sealed). */
  account?: { name: string; password: string };
}

export type PuppetFactory = (req: PuppetRequest, events: PuppetEvents) => PuppetPort;

export type Permission = "user" | "admin" | null;

/** Structured logger; fields named body/text/secret/... are dropped by the logging layer, but never pass them. */
export interface BridgeLogger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface NetworkInfo {
  id: string;
  name: string;
  /** Default puppet nick, `{localpart}` replaced by the Matrix user's localpart. */
  nickTemplate: string;
  /** Disconnect a user's puppet after this long without Matrix activity (0 or absent: never). */
  idleTimeoutMs?: number;
}

/**
 * The Matrix events the bridge recorded before answering their transaction (src/bridge/inbox.ts): the use cases
 * say when one is handled, so it is not handed on again after a restart.
 */
export interface EventInbox {
  /** Everything the event caused has left (IRC lines taken by the socket, held OTR messages sent or returned). */
  done(eventId: string): void;
}

export type Direction = "irc_to_matrix" | "matrix_to_irc";
export type ConnectionState = "connecting" | "connected" | "backoff" | "disconnected";

/** What the use cases count; main.ts maps it onto the Prometheus metrics. Labels never identify a conversation. */
export interface BridgeMetrics {
  /** `kind` defaults to "dm"; channel portals say "channel". */
  messageBridged(direction: Direction, networkId: string, encrypted: boolean, kind?: "dm" | "channel"): void;
  messageFailed(direction: Direction, reason: string): void;
  /**
   * A DM message is about to be sent to the homeserver: the bridge's own share of the IRC->Matrix latency ends here,
   * before the homeserver's round trip (towards IRC, messageBridged already marks the line written locally).
   */
  messageHandedOff?(direction: Direction): void;
  /** A connection moved between states (`from` null when it is new, `to` null when it is gone). */
  connectionState(networkId: string, from: ConnectionState | null, to: ConnectionState | null): void;
}

export const NO_METRICS: BridgeMetrics = { messageBridged() {}, messageFailed() {}, connectionState() {} };
