// The bridge's use cases behind the Matrix event handlers: management rooms and their commands, permission checks
// (one polite refusal per user, not one per message), and DM routing in both directions.
import type { Store } from "../store/types.js";
import { NO_METRICS, type BridgeMetrics } from "./ports.js";
import type { BridgeLogger, EventInbox, MatrixEventHandlers, MatrixInvite, MatrixMembership, MatrixMessage, MatrixPowerLevels, MatrixPort, NetworkInfo, Permission, PuppetFactory } from "./ports.js";
import { ConnectionManager } from "./connections.js";
import { DmRouter } from "./dm-router.js";
import { PlaintextPipeline, type DmPipeline } from "./dm-pipeline.js";
import { HELP_TEXT, isValidNick, parseCommand, type Command } from "./commands.js";
import { KeyedQueue } from "./keyed-queue.js";
import { ChannelRouter, type ChannelSettings } from "./channels/router.js";
// Before a connection has reported its CASEMAPPING, rfc1459 (the IRC default) decides.
import { foldNick } from "../irc/casemap.js";

export const REFUSAL_TEXT =
  "Sorry, this bridge is not open to your account. If you think it should be, ask the bridge operator to add you to its permissions.";

export const ENCRYPTED_MGMT_TEXT =
  "This room is end-to-end encrypted and this bridge runs with Matrix encryption off, so I cannot read your commands here. I have invited you to an unencrypted room instead: talk to me there.";
export const ENCRYPTED_DM_TEXT =
  "This room is end-to-end encrypted and this bridge runs with Matrix encryption off, so it cannot read it. I have invited you to an unencrypted room for this conversation instead; on the IRC side, OTR is what keeps it private.";

export const STORE_UNAVAILABLE_TEXT =
  "The bridge cannot save anything right now (its database is unavailable), so it is not taking messages. Nothing is lost: your homeserver keeps what you send and hands it to the bridge once its database is back.";
export const STORE_UNAVAILABLE_CODE = "store-unavailable";

/** Rooms whose speaker is remembered for the store-outage notice (the store cannot be asked then). */
const MAX_SPEAKERS = 50_000;

export interface BridgeCoreOptions {
  store: Store;
  matrix: MatrixPort;
  createPuppet: PuppetFactory;
  networks: readonly NetworkInfo[];
  permission(userId: string): Permission;
  logger: BridgeLogger;
  pipeline?: DmPipeline;
  metrics?: BridgeMetrics;
  /** Channel portals (src/bridge/channels); without it the bridge does DMs only. */
  channels?: ChannelSettings;
  /** Told when each Matrix message is handled through to IRC (at-least-once delivery, src/bridge/inbox.ts). */
  inbox?: EventInbox;
}

export class BridgeCore implements MatrixEventHandlers {
  readonly connections: ConnectionManager;
  readonly dms: DmRouter;
  readonly channels: ChannelRouter | null = null;
  private readonly roomQueue = new KeyedQueue();
  private readonly refused = new Set<string>();
  /** Who of ours talks in a room the user wrote in: its DM ghost, or null (the bot) for a management room. */
  private readonly speakers = new Map<string, string | null>();

  constructor(private readonly o: BridgeCoreOptions) {
    const notify = (userId: string, text: string) => this.notify(userId, text);
    this.connections = new ConnectionManager({
      store: o.store,
      // Channel traffic and reconnects also go to the channel router (rejoining the user's channels).
      createPuppet: (req, events) => o.createPuppet(req, {
        ...events,
        onConnected: (info) => {
          events.onConnected(info);
          this.channels?.connected(req.userId, req.networkId);
        },
        onChannel: (e) => {
          // A contact's nick change also moves the user's DM room with them (issue 8).
          if (e.type === "nick") void this.dms.renamed(req.userId, req.networkId, e.oldNick, e.newNick);
          this.channels?.fromIrc(req.userId, req.networkId, e);
        },
      }),
      networks: o.networks,
      logger: o.logger,
      metrics: o.metrics ?? NO_METRICS,
      notify,
      onIrcMessage: (userId, networkId, msg) => void this.dms.fromIrc(userId, networkId, msg),
    });
    this.dms = new DmRouter({
      store: o.store,
      matrix: o.matrix,
      connections: this.connections,
      pipeline: o.pipeline ?? new PlaintextPipeline(),
      logger: o.logger,
      metrics: o.metrics ?? NO_METRICS,
      notify,
      roomSeen: (roomId, ghost) => this.rememberSpeaker(roomId, ghost),
    });
    if (o.channels) {
      this.channels = new ChannelRouter({
        store: o.store,
        matrix: o.matrix,
        connections: this.connections,
        logger: o.logger,
        metrics: o.metrics ?? NO_METRICS,
        settings: o.channels,
        allowed: (userId) => this.allowed(userId),
      });
    }
  }

  /** A room topic changed: in a channel portal, the user's puppet sets it on IRC. */
  onTopic(e: { roomId: string; sender: string; topic: string }): Promise<void> {
    return this.roomQueue.run(e.roomId, async () => {
      if (e.sender === this.o.matrix.botUserId || this.o.matrix.parseGhost(e.sender)) return;
      await this.channels?.topicFromMatrix(e);
    }).catch((err) => this.fail("topic", err));
  }

  /** Power levels changed: in a channel portal, the acting user's puppet sets the matching op/voice modes. */
  onPowerLevels(e: MatrixPowerLevels): Promise<void> {
    return this.roomQueue.run(e.roomId, async () => {
      if (e.sender === this.o.matrix.botUserId || this.o.matrix.parseGhost(e.sender)) return;
      await this.channels?.powerLevelsFromMatrix(e);
    }).catch((err) => this.fail("power levels", err));
  }

  /** An alias in the bridge's namespace was looked up (a user joining `#irc_<network>_<#channel>:domain`). */
  async onAliasQuery(alias: string): Promise<string | null> {
    try {
      return (await this.channels?.aliasQuery(alias)) ?? null;
    } catch (err) {
      this.fail("alias query", err);
      return null;
    }
  }

  private async redactSecret(origin: { roomId: string; eventId?: string }, what: string): Promise<void> {
    if (!origin.eventId) return;
    await this.o.matrix.redact(origin.roomId, null, origin.eventId, "contains a password").catch((err: unknown) =>
      this.o.logger.warn(`could not redact ${what}`, { code: (err as { code?: string })?.code ?? "unknown" }));
  }

  /** Sends a notice to the user's management room, if they have one. Never throws. */
  async notify(userId: string, text: string): Promise<void> {
    try {
      const roomId = await this.o.store.getManagementRoom(userId);
      if (roomId) await this.o.matrix.send(roomId, null, "notice", text);
    } catch (err) {
      this.o.logger.warn("could not notify user", { userId, code: codeOf(err) });
    }
  }

  /**
   * The store cannot record, so the homeserver keeps these rooms' messages and sends them again later (src/bridge/
   * inbox.ts): each room hears it once per outage, from the ghost of a DM, else from the bot (the one in channel
   * portals and management rooms). A DM nobody wrote in since the start is not known then and is told by the bot,
   * which is not in it: that notice fails and is only logged.
   */
  storeUnavailable(roomIds: readonly string[]): void {
    for (const roomId of roomIds) {
      const from = this.speakers.get(roomId) ?? null;
      this.o.matrix.send(roomId, from, "notice", STORE_UNAVAILABLE_TEXT, { "org.matrix_otr_irc.notice": STORE_UNAVAILABLE_CODE })
        .catch((err: unknown) => this.o.logger.warn("could not tell a room that the store is unavailable", { roomId, code: codeOf(err) }));
    }
  }

  private rememberSpeaker(roomId: string, speaker: string | null): void {
    if (this.speakers.get(roomId) === speaker) return;
    this.speakers.delete(roomId);
    if (this.speakers.size >= MAX_SPEAKERS) this.speakers.delete(this.speakers.keys().next().value!);
    this.speakers.set(roomId, speaker);
  }

  onInvite(e: MatrixInvite): Promise<void> {
    return this.roomQueue.run(e.roomId, () => this.handleInvite(e)).catch((err) => this.fail("invite", err));
  }

  onMessage(e: MatrixMessage): Promise<void> {
    return this.roomQueue.run(e.roomId, async () => {
      let held: Promise<void> | undefined;
      try {
        held = (await this.handleMessage(e))?.held;
      } finally {
        // Outside the room queue: the next message must not wait for the flood pacing of this one's lines.
        void this.markDone(e, held);
      }
    }).catch((err) => this.fail("message", err));
  }

  /**
   * The event is done once a held OTR message was sent or given back, and every line the sender's puppets had
   * queued by then (this event's among them) was taken by the socket. A failed handling is done too: handing it on
   * again after a restart would fail again.
   */
  private async markDone(e: MatrixMessage, held: Promise<void> | undefined): Promise<void> {
    const inbox = this.o.inbox;
    if (!inbox) return;
    try {
      await held;
      await this.connections.sent(e.sender);
    } finally {
      inbox.done(e.eventId);
    }
  }

  onMembership(e: MatrixMembership): Promise<void> {
    return this.roomQueue.run(e.roomId, () => this.handleMembership(e)).catch((err) => this.fail("membership", err));
  }

  /** Waits for queued work (tests and shutdown). */
  async idle(): Promise<void> {
    await this.roomQueue.idle();
    await this.dms.idle();
    await this.channels?.idle();
  }

  private async handleInvite(e: MatrixInvite): Promise<void> {
    const { matrix, store } = this.o;
    if (e.invitee === matrix.botUserId) {
      if (!this.allowed(e.inviter)) {
        // Join only to say no once; a second invite from the same user is declined silently.
        if (!(await this.firstRefusal(e.inviter))) return matrix.leave(e.roomId, null);
        await matrix.join(e.roomId, null);
        await matrix.send(e.roomId, null, "notice", REFUSAL_TEXT);
        await matrix.leave(e.roomId, null);
        return;
      }
      await matrix.join(e.roomId, null);
      if (await matrix.unreadable(e.roomId, null)) {
        // Element encrypts new DMs by default; the bot could not read a single command there.
        const roomId = await matrix.createDmRoom(matrix.botUserId, e.inviter, "IRC bridge");
        await store.putManagementRoom(e.inviter, roomId);
        await matrix.send(e.roomId, null, "notice", ENCRYPTED_MGMT_TEXT);
        await matrix.leave(e.roomId, null);
        await matrix.send(roomId, null, "notice", `This is your management room for the IRC bridge.\n${HELP_TEXT}`);
        return;
      }
      const members = await matrix.joinedMembers(e.roomId, null);
      if (members.some((m) => m !== e.inviter && m !== matrix.botUserId)) {
        await matrix.send(e.roomId, null, "notice", "I only take commands in a direct chat between you and me. Invite me into a room with just the two of us.");
        await matrix.leave(e.roomId, null);
        return;
      }
      await store.putManagementRoom(e.inviter, e.roomId);
      await matrix.send(e.roomId, null, "notice", `This is your management room for the IRC bridge.\n${HELP_TEXT}`);
      return;
    }
    const ghost = matrix.parseGhost(e.invitee);
    if (!ghost) return;
    // A ghost id can be typed by anyone; only ids that stand for a real IRC nick become DMs (the IRC adapter
    // would refuse such a target anyway, this keeps the room out of the store). rfc1459 folds `^` to `~`.
    if (!this.allowed(e.inviter) || !isValidNick(ghost.foldedNick.replace(/~/g, "^"))) {
      await matrix.leave(e.roomId, e.invitee).catch(() => undefined);
      return;
    }
    // The user started the DM from Matrix: this room becomes the DM with that contact, unless it is encrypted.
    await matrix.join(e.roomId, e.invitee);
    if (await matrix.unreadable(e.roomId, e.invitee)) {
      await matrix.send(e.roomId, e.invitee, "notice", ENCRYPTED_DM_TEXT);
      await matrix.leave(e.roomId, e.invitee);
      await this.dms.open(e.inviter, ghost.networkId, ghost.foldedNick, ghost.foldedNick);
      return;
    }
    await this.dms.adopt(e.roomId, { userId: e.inviter, networkId: ghost.networkId, foldedNick: ghost.foldedNick });
  }

  /**
   * Returns `held` when the message is held for an OTR AKE: it settles once the text was sent or given back
   * (wrapped: an async function returning the bare promise would wait for it).
   */
  private async handleMessage(e: MatrixMessage): Promise<{ held?: Promise<void> } | undefined> {
    const { matrix, store } = this.o;
    if (e.sender === matrix.botUserId || matrix.parseGhost(e.sender)) return;
    // Right after a restart, the events handed on again and the homeserver's retries wait (in their room's queue,
    // so order holds) for the sender's restored connections: a puppet seconds from ready must not refuse them.
    await this.connections.restored(e.sender);
    if (this.channels && (await this.channels.fromMatrix(e))) return;
    if (e.edit) return; // DMs and commands: an edit would repeat the message
    const owner = await store.findManagementRoomOwner(e.roomId);
    const dm = owner ? null : await store.findDmByRoom(e.roomId);
    if (owner !== e.sender && dm?.userId !== e.sender) return; // someone else's room, or a room we do not manage
    this.rememberSpeaker(e.roomId, dm ? matrix.ghostUserId(dm.networkId, dm.foldedNick) : null);
    if (!this.allowed(e.sender)) {
      if (await this.firstRefusal(e.sender)) {
        await matrix.send(e.roomId, dm ? matrix.ghostUserId(dm.networkId, dm.foldedNick) : null, "notice", REFUSAL_TEXT);
      }
      return;
    }
    if (dm) {
      const r = await this.dms.fromMatrix(dm, e.roomId, e.kind, e.body, { eventId: e.eventId });
      return r.settled ? { held: r.settled } : undefined;
    }
    if (e.kind === "notice") return; // bots talk in notices; answering them could loop
    const reply = await this.runCommand(e.sender, parseCommand(e.body), { roomId: e.roomId, eventId: e.eventId });
    await matrix.send(e.roomId, null, "notice", reply);
  }

  private async handleMembership(e: MatrixMembership): Promise<void> {
    if (this.channels && (await this.channels.membership(e))) return;
    if (e.membership !== "leave" && e.membership !== "ban") return;
    const dm = await this.o.store.findDmByRoom(e.roomId);
    if (dm && dm.userId === e.userId) await this.dms.userLeft(e.roomId, dm);
  }

  private async runCommand(userId: string, cmd: Command, origin: { roomId: string; eventId?: string }): Promise<string> {
    const c = this.connections;
    const unknownNet = (id: string) => `Unknown network \`${id}\`. Known: ${this.o.networks.map((n) => n.id).join(", ")}.`;
    switch (cmd.name) {
      case "help":
        return HELP_TEXT;
      case "invalid":
        return cmd.reply;
      case "networks":
        return this.o.networks.map((n) => `${n.id}: ${n.name}${c.get(userId, n.id) ? " (connected)" : ""}`).join("\n");
      case "connect": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        const nick = await c.connect(userId, cmd.network);
        return nick === null ? `You already have a connection to ${cmd.network} (nick ${c.get(userId, cmd.network)?.nick}).` : `Connecting to ${cmd.network} as ${nick}…`;
      }
      case "disconnect": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        return (await c.disconnect(userId, cmd.network)) ? `Disconnected from ${cmd.network}.` : `You are not connected to ${cmd.network}.`;
      }
      case "login": {
        // Redact first: the password must not stay in the room's history whatever happens next.
        await this.redactSecret(origin, "a login command");
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        await this.o.store.setIrcPassword(userId, cmd.network, cmd.password);
        const puppet = c.get(userId, cmd.network);
        if (puppet?.connected && puppet.identify?.(puppet.nick, cmd.password)) return `Password stored (sealed) for ${cmd.network}; identifying to NickServ now. Your message was redacted.`;
        return `Password stored (sealed) for ${cmd.network}; it is used when you next connect. Your message was redacted.`;
      }
      case "nick": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        if (!isValidNick(cmd.nick)) return `\`${cmd.nick}\` is not a valid IRC nick (letters, digits and [ ] \\ \` _ ^ { | } -, not starting with a digit or -, at most 30).`;
        const prev = await this.o.store.getUserNetwork(userId, cmd.network);
        await this.o.store.putUserNetwork({ userId, networkId: cmd.network, nick: cmd.nick, otrPolicy: prev?.otrPolicy ?? null, updatedAt: Date.now() });
        const puppet = c.get(userId, cmd.network);
        if (puppet?.connected) {
          puppet.changeNick(cmd.nick);
          return `Asked ${cmd.network} to change your nick to ${cmd.nick}.`;
        }
        return `Your nick on ${cmd.network} will be ${cmd.nick} when you connect.`;
      }
      case "msg": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        if (!isValidNick(cmd.nick)) return `\`${cmd.nick}\` is not a valid IRC nick.`;
        // A message to someone is activity: it wakes a puppet the idle policy disconnected (the text is then held).
        if (cmd.text !== null) await c.touch(userId, cmd.network);
        const puppet = c.get(userId, cmd.network);
        if (cmd.text !== null && !(puppet?.canSend ?? puppet?.connected)) return `You are not connected to ${cmd.network}; send \`connect ${cmd.network}\` first.`;
        const folded = puppet ? puppet.foldNick(cmd.nick) : foldNick(cmd.nick);
        const { roomId, created } = await this.dms.open(userId, cmd.network, folded, cmd.nick);
        if (cmd.text !== null) await this.dms.fromMatrix({ userId, networkId: cmd.network, foldedNick: folded }, roomId, "text", cmd.text);
        return `${created ? "Opened" : "Reusing"} your direct chat with ${cmd.nick} on ${cmd.network}: ${roomId}${created ? " (check your invites)" : ""}.`;
      }
      case "link":
      case "unlink": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        if (!this.channels) return "This bridge does not bridge channels.";
        if (this.o.permission(userId) !== "admin") return "Only bridge admins can link and unlink rooms.";
        if (cmd.name === "unlink") return this.channels.unlink(cmd.network, cmd.channel);
        return this.channels.link(cmd.network, cmd.channel, cmd.roomId);
      }
      case "join":
      case "part": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        if (!this.channels) return "This bridge does not bridge channels.";
        if (cmd.name === "part") return this.channels.partCommand(userId, cmd.network, cmd.channel);
        // A channel key is a shared password: out of the room's history like a login.
        if (cmd.key !== undefined) await this.redactSecret(origin, "a join command with a channel key");
        const reply = await this.channels.joinCommand(userId, cmd.network, cmd.channel, cmd.key);
        return cmd.key !== undefined ? `${reply} Your message was redacted (it held the channel key).` : reply;
      }
      case "otr": {
        if (!c.network(cmd.network)) return unknownNet(cmd.network);
        if (!isValidNick(cmd.nick)) return `\`${cmd.nick}\` is not a valid IRC nick.`;
        const puppet = c.get(userId, cmd.network);
        const folded = puppet ? puppet.foldNick(cmd.nick) : foldNick(cmd.nick);
        return this.dms.command(userId, cmd.network, folded, cmd.nick, cmd.args, origin);
      }
    }
  }

  /** True the first time a user is refused (remembered in the store, so a restart does not refuse them again). */
  private async firstRefusal(userId: string): Promise<boolean> {
    if (this.refused.has(userId)) return false;
    this.refused.add(userId);
    const k = `refused.${userId}`;
    if (await this.o.store.getState(k)) return false;
    await this.o.store.putState(k, String(Date.now()));
    return true;
  }

  private allowed(userId: string): boolean {
    return this.o.permission(userId) !== null;
  }

  private fail(where: string, err: unknown): void {
    this.o.logger.error(`handling a Matrix ${where} failed`, { code: codeOf(err), error: err instanceof Error ? err.message : String(err) });
  }
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
