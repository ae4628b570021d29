// IRC channels as Matrix rooms ("portals"). One room per (network, folded channel), created by the bot and kept in
// the store. IRC users appear as ghosts (the same ids as in DMs, so a nick is one Matrix user everywhere); a
// Matrix user's own puppet joins the channel when they join the room and parts when they leave. OTR does not
// apply here: it is one-to-one.
//
// Several Matrix users' puppets can sit in one channel and each sees every line; one of them (the first in)
// is the portal's listener and only its events are bridged, so each IRC line appears once. Everything from IRC
// for one portal runs through one queue, so the room shows lines in the order the server sent them.
import type { Store } from "../../store/types.js";
import type { BridgeLogger, BridgeMetrics, IrcChannelEvent, MatrixMembership, MatrixMessage, MatrixPort, MatrixPowerLevels, MessageKind, PuppetPort } from "../ports.js";
import type { ConnectionManager } from "../connections.js";
import { KeyedQueue } from "../keyed-queue.js";
import { RateLimiter } from "./rate-limiter.js";
import { foldNick } from "../../irc/casemap.js";
import { candidateMask, maskMatches } from "../../irc/mask.js";
import { ircToMatrix } from "../../irc/format.js";
import { htmlToIrc } from "../../matrix/format.js";

export interface ChannelSettings {
  domain: string;
  aliasTemplate: string;
  quitDebounceMs: number;
  membershipPerSecond: number;
  maxMessageLines: number;
  replyTemplate: string;
  editTemplate: string;
  network(id: string): { dynamicChannels: boolean; membershipSync: "lazy" | "full"; opLevel: number; voiceLevel: number } | undefined;
}

export interface ChannelRouterOptions {
  store: Store;
  matrix: MatrixPort;
  connections: ConnectionManager;
  logger: BridgeLogger;
  metrics: BridgeMetrics;
  settings: ChannelSettings;
  allowed(userId: string): boolean;
}

interface Portal {
  networkId: string;
  /** Folded channel name (the key); `name` is the spelling last seen. */
  channel: string;
  name: string;
  roomId: string;
  /** Matrix users whose puppet is in the channel, in order of joining; the first is the listener. */
  users: string[];
  /** IRC nicks in the channel (folded -> spelling), as far as the listener has seen. */
  ircMembers: Map<string, string>;
  /** Ghosts (folded nicks) joined to the room. */
  ghosts: Set<string>;
  modes: Map<string, Set<string>>;
  /** Ghosts whose IRC user quit, leaving the room when the debounce window ends unless they rejoin first. */
  quitting: Set<string>;
  /** Linked by an admin to an existing room: the bot's own IRC connection relays users without a puppet there. */
  plumbed: boolean;
  /** nick!user@host per folded nick, as last shown by the server (ban masks are matched against these). */
  masks: Map<string, string>;
  /** Per IRC ban mask (folded): the Matrix users and ghosts the bridge banned in the room for it; kept in the store. */
  bans: Map<string, Set<string>>;
}

/** Store state key: JSON list of [userId, networkId, foldedChannel] whose puppet belongs in the channel. */
export const CHANNELS_WANTED_STATE_KEY = "channels.wanted";

const plumbedKey = (networkId: string, folded: string) => `channel.plumbed.${networkId}.${folded}`;
const bansKey = (networkId: string, folded: string) => `channel.bans.${networkId}.${folded}`;

const IRC_KIND: Record<"privmsg" | "notice" | "action", MessageKind> = { privmsg: "text", notice: "notice", action: "emote" };

export class ChannelRouter {
  private readonly queue = new KeyedQueue();
  private readonly portals = new Map<string, Portal>();
  private readonly byRoom = new Map<string, string>();
  /** Channels each (user, network) should be in, with their keys: rejoined after a reconnect. */
  private readonly wanted = new Map<string, Map<string, string | undefined>>();
  private readonly limiter: RateLimiter;
  /** Per network: a batch of QUITs is waiting out the debounce window. */
  private readonly quitTimers = new Map<string, NodeJS.Timeout>();
  private persistChain: Promise<void> = Promise.resolve();

  constructor(private readonly o: ChannelRouterOptions) {
    this.limiter = new RateLimiter(o.settings.membershipPerSecond);
  }

  /** Before puppets reconnect after a restart: which channels each should rejoin, with their keys. */
  async restore(): Promise<number> {
    const raw = await this.o.store.getState(CHANNELS_WANTED_STATE_KEY);
    let list: unknown = [];
    try {
      list = raw ? JSON.parse(raw) : [];
    } catch {
      this.o.logger.warn("channel membership list in the store is not JSON; starting with none");
    }
    let n = 0;
    for (const e of Array.isArray(list) ? list : []) {
      if (!Array.isArray(e) || e.length !== 3 || !e.every((x) => typeof x === "string")) continue;
      const [userId, networkId, folded] = e as [string, string, string];
      if (!this.o.settings.network(networkId)) continue;
      const k = this.userKey(userId, networkId);
      let m = this.wanted.get(k);
      if (!m) this.wanted.set(k, (m = new Map()));
      m.set(folded, await this.o.store.getChannelKey(userId, networkId, folded).catch((err: unknown) => {
        // The channel can still be rejoined if it has no key now; the user can give it again with `join`.
        this.o.logger.warn("could not read a stored channel key", { networkId, code: codeOf(err) });
        return null;
      }) ?? undefined);
      await this.portal(networkId, folded, false);
      n++;
    }
    return n;
  }

  // ---- Matrix side ------------------------------------------------------------------------------------------

  /** `join <network> <#channel> [key]`: the portal (created if needed) and an invite for the user. */
  async joinCommand(userId: string, networkId: string, channel: string, key?: string): Promise<string> {
    const portal = await this.portal(networkId, channel, true);
    if (!portal) return `Could not create a room for ${channel}.`;
    this.want(userId, networkId, portal.channel, key);
    const m = await this.o.matrix.membership(portal.roomId, null, userId);
    if (m === "join") {
      await this.ensurePuppetIn(userId, portal);
      return `You are already in ${portal.name} on ${networkId}: ${portal.roomId}.`;
    }
    if (m !== "invite") await this.o.matrix.invite(portal.roomId, null, userId);
    return `Invited you to ${portal.name} on ${networkId}: ${portal.roomId}. Your IRC connection joins the channel when you join the room.`;
  }

  /** `part <network> <#channel>`: the puppet parts and the user is removed from the room. */
  async partCommand(userId: string, networkId: string, channel: string): Promise<string> {
    const folded = this.fold(userId, networkId, channel);
    const roomId = await this.o.store.getChannelRoom(networkId, folded);
    this.unwant(userId, networkId, folded);
    this.o.connections.get(userId, networkId)?.partChannel?.(channel);
    if (!roomId) return `You are not in ${channel} on ${networkId}.`;
    const m = await this.o.matrix.membership(roomId, null, userId);
    if (m === "join" || m === "invite") await this.o.matrix.kick?.(roomId, null, userId, `parted ${channel}`);
    return `Parted ${channel} on ${networkId}.`;
  }

  /** Admin `link`: an existing room becomes the channel's portal, the bot joins it and relays through its own connection. */
  async link(networkId: string, channel: string, roomId: string): Promise<string> {
    const folded = foldNick(channel);
    const existing = await this.o.store.getChannelRoom(networkId, folded);
    if (existing) return `${channel} on ${networkId} already has a room: ${existing}. Unlink it first.`;
    if (await this.o.store.findChannelByRoom(roomId)) return `${roomId} is already linked to a channel.`;
    await this.o.matrix.join(roomId, null);
    await this.o.store.putChannelRoom(networkId, folded, roomId);
    await this.o.store.putState(plumbedKey(networkId, folded), "1");
    const portal = await this.portal(networkId, channel, false);
    if (!portal) return `Could not link ${roomId}.`;
    await this.startRelay(portal);
    return `Linked ${roomId} to ${channel} on ${networkId}; I relay messages of people without their own IRC connection.`;
  }

  /** Admin `unlink`: the room stops being a portal; the relay parts and the bot leaves. */
  async unlink(networkId: string, channel: string): Promise<string> {
    const folded = foldNick(channel);
    const roomId = await this.o.store.getChannelRoom(networkId, folded);
    if (!roomId) return `${channel} on ${networkId} has no room.`;
    const bot = this.o.matrix.botUserId;
    await this.o.store.deleteChannelRoom(networkId, folded);
    await this.o.store.putState(plumbedKey(networkId, folded), "");
    const k = this.key(networkId, folded);
    const portal = this.portals.get(k);
    this.portals.delete(k);
    this.byRoom.delete(roomId);
    this.unwant(bot, networkId, folded);
    this.o.connections.get(bot, networkId)?.partChannel?.(portal?.name ?? channel);
    for (const f of portal?.ghosts ?? []) await this.o.matrix.leave(roomId, this.o.matrix.ghostUserId(networkId, f)).catch(() => undefined);
    await this.o.matrix.leave(roomId, null).catch(() => undefined);
    return `Unlinked ${roomId} from ${channel} on ${networkId}.`;
  }

  private async startRelay(portal: Portal): Promise<void> {
    const bot = this.o.matrix.botUserId;
    this.want(bot, portal.networkId, portal.channel);
    const puppet = this.o.connections.get(bot, portal.networkId);
    if (puppet?.connected) puppet.joinChannel?.(portal.name);
    else if (!puppet) await this.o.connections.connect(bot, portal.networkId);
  }

  /** An alias in our namespace was looked up; a room id when it names a channel of a network that allows it. */
  async aliasQuery(alias: string): Promise<string | null> {
    const parsed = this.parseAlias(alias);
    if (!parsed || !this.o.settings.network(parsed.networkId)?.dynamicChannels) return null;
    const portal = await this.portal(parsed.networkId, parsed.channel, true);
    return portal?.roomId ?? null;
  }

  /** True when roomId is a portal (the event was handled, or deliberately dropped). */
  async fromMatrix(e: MatrixMessage): Promise<boolean> {
    const portal = await this.portalByRoom(e.roomId);
    if (!portal) return false;
    if (e.sender === this.o.matrix.botUserId || this.o.matrix.parseGhost(e.sender)) return true;
    let puppet = this.o.connections.get(e.sender, portal.networkId);
    let relayAs: string | null = null;
    if (portal.plumbed && !(puppet?.connected && portal.users.includes(e.sender))) {
      // Plumbed room: people without their own connection in the channel speak through the bot's, named.
      puppet = this.o.connections.get(this.o.matrix.botUserId, portal.networkId);
      relayAs = /^@([^:]+)/.exec(e.sender)?.[1] ?? e.sender;
      if (!puppet?.connected || !portal.users.includes(this.o.matrix.botUserId)) {
        this.o.metrics.messageFailed("matrix_to_irc", "relay-not-in-channel");
        return true;
      }
    } else if (!this.o.allowed(e.sender) || !puppet?.connected || !portal.users.includes(e.sender)) {
      this.o.metrics.messageFailed("matrix_to_irc", "not-in-channel");
      await this.o.matrix.send(e.roomId, null, "notice", `Not delivered to ${portal.name}: your IRC connection is not in the channel${puppet?.connected ? "" : ` (send \`connect ${portal.networkId}\` to the bridge bot)`}.`);
      return true;
    }
    let text = this.renderForIrc(e, portal);
    if (!text.trim()) return true;
    if (relayAs !== null) {
      text = text.split(/\r\n|\r|\n/).filter((l) => l.trim() !== "").map((l) => (e.kind === "emote" ? `* ${relayAs} ${l}` : `<${relayAs}> ${l}`)).join("\n");
    }
    const lines = text.split(/\r\n|\r|\n/).filter((l) => l.trim() !== "");
    const out = lines.length > this.o.settings.maxMessageLines
      ? `${lines[0]!.slice(0, 200)} … (${lines.length} lines: https://matrix.to/#/${encodeURIComponent(e.roomId)}/${encodeURIComponent(e.eventId)})`
      : text;
    const n = e.kind === "emote" && relayAs === null ? puppet.action(portal.name, out) : e.kind === "notice" ? puppet.notice(portal.name, out) : puppet.say(portal.name, out);
    if (n > 0) this.o.metrics.messageBridged("matrix_to_irc", portal.networkId, false, "channel");
    else this.o.metrics.messageFailed("matrix_to_irc", "nothing-sent");
    return true;
  }

  /** Joins and leaves of Matrix users in portal rooms drive their puppet's channel membership. */
  async membership(e: MatrixMembership): Promise<boolean> {
    const portal = await this.portalByRoom(e.roomId);
    if (!portal) return false;
    const { matrix } = this.o;
    const ghost = matrix.parseGhost(e.userId);
    if (ghost && (e.membership === "leave" || e.membership === "ban") && e.sender !== e.userId && e.sender !== matrix.botUserId && !matrix.parseGhost(e.sender)) {
      // A Matrix user kicked, banned or unbanned a ghost: their puppet does the same on IRC; the server decides if they may.
      const puppet = this.o.connections.get(e.sender, portal.networkId);
      if (puppet?.connected && portal.users.includes(e.sender) && ghost.networkId === portal.networkId) {
        const f = ghost.foldedNick;
        const nick = portal.ircMembers.get(f) ?? f;
        if (e.membership === "ban") {
          puppet.setModes?.(portal.name, [{ mode: "+b", param: `${nick}!*@*` }]);
          // Recorded like a mirrored IRC ban, so an op's -b on IRC lets the ghost back into the room as well.
          this.recordBan(portal, puppet.foldNick(`${nick}!*@*`), [e.userId]);
          portal.ghosts.delete(f);
          if (portal.ircMembers.has(f)) puppet.kick?.(portal.name, nick, `banned by ${e.sender}`);
        } else if (e.prevMembership === "ban") {
          // Lift every ban the bridge knows kept this nick out, not only the one a Matrix ban would have set.
          const masks = [...portal.bans].filter(([, users]) => users.has(e.userId)).map(([mask]) => mask);
          puppet.setModes?.(portal.name, (masks.length ? masks : [`${nick}!*@*`]).map((m) => ({ mode: "-b", param: m })));
          this.forgetBanned(portal, e.userId);
        } else {
          portal.ghosts.delete(f);
          puppet.kick?.(portal.name, nick, `by ${e.sender}`);
        }
      }
      return true;
    }
    if (e.userId === matrix.botUserId || ghost) return true;
    if (e.membership === "join") {
      if (!this.o.allowed(e.userId)) return true;
      if (portal.plumbed && !this.o.connections.get(e.userId, portal.networkId)) return true; // the relay speaks for them
      this.want(e.userId, portal.networkId, portal.channel);
      await this.ensurePuppetIn(e.userId, portal);
    } else if ((e.membership === "leave" && e.prevMembership !== "ban") || e.membership === "ban") {
      this.userOut(portal, e.userId);
    }
    return true;
  }

  /** The user is no longer in the room: their puppet leaves the channel and stops rejoining it. */
  private userOut(portal: Portal, userId: string): void {
    this.unwant(userId, portal.networkId, portal.channel);
    this.o.connections.get(userId, portal.networkId)?.partChannel?.(portal.name);
    this.dropUser(portal, userId);
  }

  /** Power levels changed by a Matrix user: their puppet gives or takes op/voice to match; the server decides if they may. */
  async powerLevelsFromMatrix(e: MatrixPowerLevels): Promise<void> {
    const portal = await this.portalByRoom(e.roomId);
    const net = portal && this.o.settings.network(portal.networkId);
    if (!portal || !net || !portal.users.includes(e.sender)) return;
    const puppet = this.o.connections.get(e.sender, portal.networkId);
    if (!puppet?.connected || !puppet.setModes) return;
    const changes: { mode: string; param: string }[] = [];
    // Only users whose level this event changed: anything else would re-assert Matrix over IRC on every edit.
    for (const userId of new Set([...Object.keys(e.users), ...Object.keys(e.prevUsers)])) {
      const now = e.users[userId] ?? e.usersDefault;
      if (now === (e.prevUsers[userId] ?? e.prevUsersDefault)) continue;
      const nick = this.nickInChannel(portal, userId);
      if (!nick) continue;
      const have = portal.modes.get(puppet.foldNick(nick)) ?? new Set<string>();
      const op = now >= net.opLevel;
      if (op !== have.has("o")) changes.push({ mode: op ? "+o" : "-o", param: nick });
      // An op keeps any voice; someone lowered to the voice level gets it.
      if (!op && now >= net.voiceLevel && !have.has("v")) changes.push({ mode: "+v", param: nick });
      if (now < net.voiceLevel && have.has("v")) changes.push({ mode: "-v", param: nick });
    }
    if (changes.length) puppet.setModes(portal.name, changes);
  }

  /** A Matrix user set the room topic: their puppet sets the channel topic (the server decides if they may). */
  async topicFromMatrix(e: { roomId: string; sender: string; topic: string }): Promise<void> {
    const portal = await this.portalByRoom(e.roomId);
    if (!portal || !portal.users.includes(e.sender)) return;
    const puppet = this.o.connections.get(e.sender, portal.networkId);
    if (puppet?.connected) puppet.setTopic?.(portal.name, e.topic.split(/\r\n|\r|\n/)[0] ?? "");
  }

  /** A puppet (re)connected: it rejoins every channel its user is in. */
  connected(userId: string, networkId: string): void {
    const puppet = this.o.connections.get(userId, networkId);
    for (const [channel, key] of this.wanted.get(this.userKey(userId, networkId)) ?? []) {
      const p = this.portals.get(this.key(networkId, channel));
      puppet?.joinChannel?.(p?.name ?? channel, key);
    }
  }

  // ---- IRC side ---------------------------------------------------------------------------------------------

  fromIrc(userId: string, networkId: string, e: IrcChannelEvent): void {
    const puppet = this.o.connections.get(userId, networkId);
    if (!puppet) return;
    if (e.type === "quit") return this.quit(userId, networkId, e.nick);
    if (e.type === "nick") {
      for (const p of this.portals.values()) {
        if (p.networkId === networkId && p.users[0] === userId) this.enqueue(p, () => this.nickChange(p, puppet, e.oldNick, e.newNick));
      }
      return;
    }
    const folded = puppet.foldNick(e.channel);
    const portal = this.portals.get(this.key(networkId, folded));
    if (!portal) return;
    // Each puppet reports its own refusals, listener or not: they are about what its user asked for.
    if (e.type === "refused") {
      this.enqueue(portal, () => this.tellRefused(userId, portal, e.reason));
      return;
    }
    // Our own puppet's JOIN/PART/KICK decides who listens, whoever reports it.
    if (e.type === "join" && puppet.foldNick(e.nick) === puppet.foldNick(puppet.nick)) {
      if (e.mask) portal.masks.set(puppet.foldNick(e.nick), e.mask);
      if (!portal.users.includes(userId)) portal.users.push(userId);
      portal.name = e.channel;
      return;
    }
    if ((e.type === "part" || e.type === "kick") && puppet.foldNick(e.nick) === puppet.foldNick(puppet.nick)) {
      this.dropUser(portal, userId);
      if (e.type === "kick") {
        this.unwant(userId, networkId, portal.channel);
        this.enqueue(portal, () => this.o.matrix.kick?.(portal.roomId, null, userId, `kicked from ${e.channel} by ${e.by}${e.reason ? `: ${e.reason}` : ""}`) ?? Promise.resolve());
      }
      return;
    }
    if (portal.users[0] !== userId) return;
    this.enqueue(portal, () => this.handle(portal, puppet, e));
  }

  async idle(): Promise<void> {
    await this.queue.idle();
    await this.persistChain;
  }

  /** Pending quit batches are flushed now (shutdown and tests). */
  flushQuits(): void {
    for (const networkId of [...this.quitTimers.keys()]) this.flushQuitBatch(networkId);
  }

  private async handle(portal: Portal, puppet: PuppetPort, e: IrcChannelEvent): Promise<void> {
    const { matrix } = this.o;
    switch (e.type) {
      case "message": {
        if (e.mask) portal.masks.set(puppet.foldNick(e.from), e.mask);
        if (this.isPuppetNick(portal.networkId, puppet, e.from)) return; // a Matrix user's own line, already in the room
        const ghost = await this.ghostIn(portal, puppet, e.from);
        if (!ghost) {
          // Banned from the room (a Matrix moderator's call, or an IRC ban the bridge mirrored): not shown there.
          this.o.metrics.messageFailed("irc_to_matrix", "ghost-banned");
          return;
        }
        const { body, html } = ircToMatrix(e.text);
        await matrix.send(portal.roomId, ghost, IRC_KIND[e.kind], body, html ? { format: "org.matrix.custom.html", formatted_body: html } : undefined);
        this.o.metrics.messageBridged("irc_to_matrix", portal.networkId, false, "channel");
        return;
      }
      case "join": {
        portal.ircMembers.set(puppet.foldNick(e.nick), e.nick);
        if (e.mask) portal.masks.set(puppet.foldNick(e.nick), e.mask);
        if (this.isPuppetNick(portal.networkId, puppet, e.nick)) return;
        portal.quitting.delete(puppet.foldNick(e.nick)); // back within the window: the ghost stays
        if (this.o.settings.network(portal.networkId)?.membershipSync === "full") await this.ghostIn(portal, puppet, e.nick);
        return;
      }
      case "part":
      case "kick": {
        const f = puppet.foldNick(e.nick);
        portal.ircMembers.delete(f);
        portal.modes.delete(f);
        const ghostUser = this.isPuppetNick(portal.networkId, puppet, e.nick) ? null : f;
        if (ghostUser !== null && portal.ghosts.has(f)) {
          portal.ghosts.delete(f);
          await this.limiter.take();
          const ghost = matrix.ghostUserId(portal.networkId, f);
          if (e.type === "kick") await matrix.kick?.(portal.roomId, null, ghost, `kicked by ${e.by}${e.reason ? `: ${e.reason}` : ""}`);
          else await matrix.leave(portal.roomId, ghost);
        } else if (ghostUser === null && e.type === "kick") {
          // Another Matrix user's puppet was kicked: their own puppet's event removes them (see fromIrc).
        }
        return;
      }
      case "topic": {
        await matrix.sendState(portal.roomId, null, "m.room.topic", "", { topic: e.topic });
        return;
      }
      case "names": {
        // NAMES is the whole channel: whoever is not in it left while we were not looking (a restart, a reconnect).
        portal.ircMembers.clear();
        portal.modes.clear();
        for (const u of e.users) {
          const f = puppet.foldNick(u.nick);
          portal.ircMembers.set(f, u.nick);
          portal.modes.set(f, new Set(u.modes));
          if (u.mask) portal.masks.set(f, u.mask);
        }
        for (const f of [...portal.ghosts]) {
          if (portal.ircMembers.has(f)) continue;
          portal.ghosts.delete(f);
          portal.quitting.delete(f);
          await this.limiter.take();
          await matrix.leave(portal.roomId, matrix.ghostUserId(portal.networkId, f)).catch((err) =>
            this.o.logger.warn("ghost could not leave a portal room", { networkId: portal.networkId, code: codeOf(err) }));
        }
        if (this.o.settings.network(portal.networkId)?.membershipSync === "full") {
          for (const u of e.users) if (!this.isPuppetNick(portal.networkId, puppet, u.nick)) await this.ghostIn(portal, puppet, u.nick);
        }
        return;
      }
      case "mode": {
        const f = puppet.foldNick(e.nick);
        const set = portal.modes.get(f) ?? new Set<string>();
        if (e.mode[0] === "+") set.add(e.mode[1]!);
        else set.delete(e.mode[1]!);
        portal.modes.set(f, set);
        const user = this.puppetUser(portal.networkId, puppet, e.nick);
        if (user) await this.applyPower(portal, f, user);
        else if (portal.ghosts.has(f)) await this.applyPower(portal, f);
        return;
      }
      case "ban":
        return e.set ? this.banFromIrc(portal, puppet, e.mask, e.by) : this.unbanFromIrc(portal, puppet, e.mask);
      case "key": {
        // Everyone whose puppet is meant to be here needs the current key to rejoin after a reconnect or restart.
        for (const [k, m] of this.wanted) {
          if (!k.startsWith(`${portal.networkId}\u0000`) || !m.has(portal.channel)) continue;
          this.want(k.slice(portal.networkId.length + 1), portal.networkId, portal.channel, e.key);
        }
        return;
      }
      default:
        return;
    }
  }

  private async nickChange(portal: Portal, puppet: PuppetPort, oldNick: string, newNick: string): Promise<void> {
    const oldF = puppet.foldNick(oldNick);
    if (!portal.ircMembers.has(oldF)) return;
    portal.ircMembers.delete(oldF);
    portal.ircMembers.set(puppet.foldNick(newNick), newNick);
    const modes = portal.modes.get(oldF);
    portal.modes.delete(oldF);
    if (modes) portal.modes.set(puppet.foldNick(newNick), modes);
    if (this.isPuppetNick(portal.networkId, puppet, newNick)) return;
    if (!portal.ghosts.has(oldF)) return;
    // Ghost ids follow the nick (as in DMs): the new nick's ghost takes over, the old one leaves.
    if (await this.ghostIn(portal, puppet, newNick)) await this.o.matrix.send(portal.roomId, this.o.matrix.ghostUserId(portal.networkId, puppet.foldNick(newNick)), "notice", `${oldNick} is now known as ${newNick}`);
    portal.ghosts.delete(oldF);
    await this.limiter.take();
    await this.o.matrix.leave(portal.roomId, this.o.matrix.ghostUserId(portal.networkId, oldF));
  }

  private quit(userId: string, networkId: string, nick: string): void {
    const puppet = this.o.connections.get(userId, networkId);
    if (!puppet) return;
    const f = puppet.foldNick(nick);
    // Recorded in each portal's queue, in server order after the NAMES/JOINs before it; only the portal's listener
    // counts, so a quit seen by five puppets is handled once.
    let any = false;
    for (const portal of this.portals.values()) {
      if (portal.networkId !== networkId || portal.users[0] !== userId) continue;
      any = true;
      this.enqueue(portal, async () => {
        if (!portal.ircMembers.delete(f)) return;
        portal.modes.delete(f);
        if (portal.ghosts.has(f)) portal.quitting.add(f);
      });
    }
    if (any && !this.quitTimers.has(networkId)) {
      const t = setTimeout(() => this.flushQuitBatch(networkId), this.o.settings.quitDebounceMs);
      t.unref?.();
      this.quitTimers.set(networkId, t);
    }
  }

  private flushQuitBatch(networkId: string): void {
    const t = this.quitTimers.get(networkId);
    if (t) clearTimeout(t);
    this.quitTimers.delete(networkId);
    for (const portal of this.portals.values()) {
      if (portal.networkId !== networkId) continue;
      this.enqueue(portal, async () => {
        const leaving = [...portal.quitting];
        portal.quitting.clear();
        for (const f of leaving) {
          if (!portal.ghosts.delete(f)) continue;
          await this.limiter.take();
          await this.o.matrix.leave(portal.roomId, this.o.matrix.ghostUserId(networkId, f)).catch((err) =>
            this.o.logger.warn("ghost could not leave a portal room", { networkId, code: codeOf(err) }));
        }
      });
    }
  }

  // ---- helpers ----------------------------------------------------------------------------------------------

  /** The nick's ghost, joined to the room; null when the room has banned it. */
  private async ghostIn(portal: Portal, puppet: PuppetPort, nick: string): Promise<string | null> {
    const f = puppet.foldNick(nick);
    const ghost = this.o.matrix.ghostUserId(portal.networkId, f);
    portal.ircMembers.set(f, nick);
    portal.quitting.delete(f);
    if (!portal.ghosts.has(f) && [...portal.bans.values()].some((u) => u.has(ghost))) return null;
    await this.o.matrix.setDisplayName(ghost, nick);
    if (!portal.ghosts.has(f)) {
      await this.limiter.take();
      try {
        await this.o.matrix.join(portal.roomId, ghost);
      } catch (err) {
        if ((await this.o.matrix.membership(portal.roomId, null, ghost).catch(() => null)) === "ban") return null;
        throw err;
      }
      portal.ghosts.add(f);
      if (portal.modes.get(f)?.size) await this.applyPower(portal, f);
    }
    return ghost;
  }

  /** Op/voice as power levels, for a ghost or (when the nick is a Matrix user's puppet) for that user. */
  private async applyPower(portal: Portal, f: string, userId?: string): Promise<void> {
    const net = this.o.settings.network(portal.networkId);
    if (!net || !this.o.matrix.setPowerLevel) return;
    const modes = portal.modes.get(f) ?? new Set();
    const level = modes.has("o") ? net.opLevel : modes.has("v") ? net.voiceLevel : 0;
    // In a plumbed room the bot may lack the power to change levels: the message matters more than the level.
    await this.o.matrix.setPowerLevel(portal.roomId, userId ?? this.o.matrix.ghostUserId(portal.networkId, f), level).catch((err) =>
      this.o.logger.warn("could not set a power level in a portal room", { networkId: portal.networkId, roomId: portal.roomId, code: codeOf(err) }));
  }

  /** The server said no to something the user asked for through their puppet: tell them where they manage the bridge. */
  private async tellRefused(userId: string, portal: Portal, reason: Extract<IrcChannelEvent, { type: "refused" }>["reason"]): Promise<void> {
    const where = `${portal.name} on ${portal.networkId}`;
    const text = {
      "not-operator": `Your IRC connection is not a channel operator in ${where}: the server refused the kick, ban, mode or topic change, so IRC did not follow the room.`,
      banned: `Your IRC connection could not join ${where}: you are banned from the channel.`,
      "bad-key": `Your IRC connection could not join ${where}: the channel needs a key. Send \`join ${portal.networkId} ${portal.name} <key>\`.`,
      full: `Your IRC connection could not join ${where}: the channel is full.`,
      "invite-only": `Your IRC connection could not join ${where}: the channel is invite-only; ask an operator to invite your nick.`,
    }[reason];
    const room = (await this.o.store.getManagementRoom(userId)) ?? portal.roomId;
    await this.o.matrix.send(room, null, "notice", text, { "org.matrix_otr_irc.channel_refused": reason });
  }

  /** IRC +b: Matrix users whose puppet, and ghosts in the room, that the mask matches are banned from the room too. */
  private async banFromIrc(portal: Portal, puppet: PuppetPort, mask: string, by: string): Promise<void> {
    const { matrix } = this.o;
    const fold = (x: string) => puppet.foldNick(x);
    const hits: { userId: string; ghostOf?: string }[] = [];
    for (const f of portal.ghosts) {
      if (maskMatches(mask, candidateMask(portal.ircMembers.get(f) ?? f, portal.masks.get(f)), fold)) hits.push({ userId: matrix.ghostUserId(portal.networkId, f), ghostOf: f });
    }
    for (const userId of this.usersIn(portal)) {
      const p = this.o.connections.get(userId, portal.networkId);
      // The bot's relay is how a plumbed room talks at all: an IRC ban keeps it out of the channel, not the room.
      if (userId === matrix.botUserId || !p) continue;
      if (maskMatches(mask, candidateMask(p.nick, portal.masks.get(fold(p.nick))), fold)) hits.push({ userId });
    }
    if (hits.length === 0) return;
    this.recordBan(portal, fold(mask), hits.map((h) => h.userId));
    for (const h of hits) {
      if (h.ghostOf !== undefined) portal.ghosts.delete(h.ghostOf);
      // The homeserver does not echo the bot's own ban back to the bridge: the banned user's puppet leaves here.
      else this.userOut(portal, h.userId);
      if ((await matrix.membership(portal.roomId, null, h.userId)) === "ban" || !matrix.ban) continue;
      await this.limiter.take();
      await matrix.ban(portal.roomId, null, h.userId, `banned on IRC by ${by} (${mask})`).catch((err) =>
        this.o.logger.warn("could not mirror an IRC ban into a portal room", { networkId: portal.networkId, roomId: portal.roomId, code: codeOf(err) }));
    }
  }

  private recordBan(portal: Portal, foldedMask: string, userIds: string[]): void {
    const set = portal.bans.get(foldedMask) ?? new Set<string>();
    portal.bans.set(foldedMask, set);
    for (const u of userIds) set.add(u);
    this.persistBans(portal);
  }

  /** IRC -b: whoever the bridge banned in the room for exactly this mask may come back. */
  private async unbanFromIrc(portal: Portal, puppet: PuppetPort, mask: string): Promise<void> {
    const key = puppet.foldNick(mask);
    const users = portal.bans.get(key);
    if (!users) return;
    portal.bans.delete(key);
    this.persistBans(portal);
    for (const userId of users) {
      // Still kept out by another ban the bridge mirrored: stays banned until that one goes too.
      if ([...portal.bans.values()].some((u) => u.has(userId))) continue;
      if ((await this.o.matrix.membership(portal.roomId, null, userId)) !== "ban" || !this.o.matrix.unban) continue;
      await this.limiter.take();
      await this.o.matrix.unban(portal.roomId, null, userId).catch((err) =>
        this.o.logger.warn("could not mirror an IRC unban into a portal room", { networkId: portal.networkId, roomId: portal.roomId, code: codeOf(err) }));
    }
  }

  /** Matrix users who want this portal's channel (each has, or is getting, a puppet in it). */
  private usersIn(portal: Portal): string[] {
    const prefix = `${portal.networkId}\u0000`;
    return [...this.wanted].filter(([k, m]) => k.startsWith(prefix) && m.has(portal.channel)).map(([k]) => k.slice(prefix.length));
  }

  private renderForIrc(e: MatrixMessage, portal: Portal): string {
    const mention = (userId: string): string | null => {
      const g = this.o.matrix.parseGhost(userId);
      if (g && g.networkId === portal.networkId) return portal.ircMembers.get(g.foldedNick) ?? g.foldedNick;
      const p = this.o.connections.get(userId, portal.networkId);
      return p?.connected ? p.nick : null;
    };
    let text = e.html ? htmlToIrc(e.html, { mention }) : e.body;
    if (e.edit) text = this.o.settings.editTemplate.replace("{text}", text.split(/\r\n|\r|\n/)[0] ?? "");
    else if (e.replyTo && e.html) {
      // The reply fallback names the original sender first; a ghost's becomes its nick.
      const m = /<mx-reply>[\s\S]*?href="https:\/\/matrix\.to\/#\/(@[^"/?]+)"/.exec(e.html);
      const nick = m ? mention(decodeURIComponent(m[1]!)) : null;
      if (nick) text = this.o.settings.replyTemplate.replace("{nick}", nick).replace("{text}", text);
    }
    return text;
  }

  /** The IRC nick a Matrix user or ghost has in the portal's channel, or null when they are not in it. */
  private nickInChannel(portal: Portal, userId: string): string | null {
    const g = this.o.matrix.parseGhost(userId);
    if (g) return g.networkId === portal.networkId ? portal.ircMembers.get(g.foldedNick) ?? null : null;
    const p = this.o.connections.get(userId, portal.networkId);
    return p?.connected && portal.users.includes(userId) ? p.nick : null;
  }

  private forgetBanned(portal: Portal, userId: string): void {
    let changed = false;
    for (const [mask, users] of portal.bans) {
      if (users.delete(userId)) changed = true;
      if (users.size === 0) portal.bans.delete(mask);
    }
    if (changed) this.persistBans(portal);
  }

  private persistBans(portal: Portal): void {
    const text = JSON.stringify([...portal.bans].map(([mask, users]) => [mask, [...users]]));
    const run = () => this.o.store.putState(bansKey(portal.networkId, portal.channel), text);
    this.persistChain = this.persistChain.then(run, run).catch((err) =>
      this.o.logger.warn("could not save channel bans", { code: codeOf(err) }));
  }

  private isPuppetNick(networkId: string, puppet: PuppetPort, nick: string): boolean {
    return this.puppetUser(networkId, puppet, nick) !== null;
  }

  /** The Matrix user whose puppet has this nick, if any. */
  private puppetUser(networkId: string, puppet: PuppetPort, nick: string): string | null {
    // Every user who wants a channel on this network has a puppet here (even one whose JOIN is not yet seen).
    const f = puppet.foldNick(nick);
    const suffix = `${networkId}\u0000`;
    for (const k of this.wanted.keys()) {
      if (!k.startsWith(suffix)) continue;
      const pp = this.o.connections.get(k.slice(suffix.length), networkId);
      if (pp && pp.foldNick(pp.nick) === f) return k.slice(suffix.length);
    }
    return null;
  }

  private async ensurePuppetIn(userId: string, portal: Portal): Promise<void> {
    const puppet = this.o.connections.get(userId, portal.networkId);
    const key = this.wanted.get(this.userKey(userId, portal.networkId))?.get(portal.channel);
    if (puppet?.connected) puppet.joinChannel?.(portal.name, key);
    else if (!puppet) await this.o.connections.connect(userId, portal.networkId); // joins on connect (see connected())
  }

  private dropUser(portal: Portal, userId: string): void {
    portal.users = portal.users.filter((u) => u !== userId);
  }

  private async portal(networkId: string, channel: string, create: boolean): Promise<Portal | null> {
    const folded = foldNick(channel);
    const k = this.key(networkId, folded);
    const known = this.portals.get(k);
    if (known) return known;
    return this.queue.run(`create\u0000${k}`, async () => {
      const again = this.portals.get(k);
      if (again) return again;
      let roomId = await this.o.store.getChannelRoom(networkId, folded);
      if (!roomId) {
        if (!create || !this.o.matrix.createChannelRoom) return null;
        roomId = await this.o.matrix.createChannelRoom({ name: `${channel} (${networkId})`, aliasLocalpart: this.aliasLocalpart(networkId, folded) });
        await this.o.store.putChannelRoom(networkId, folded, roomId);
        this.o.logger.info("channel portal created", { networkId, roomId });
      }
      const plumbed = (await this.o.store.getState(plumbedKey(networkId, folded))) === "1";
      const p: Portal = {
        networkId, channel: folded, name: channel, roomId, users: [], ircMembers: new Map(), ghosts: new Set(), modes: new Map(),
        quitting: new Set(), plumbed, masks: new Map(), bans: parseBans(await this.o.store.getState(bansKey(networkId, folded))),
      };
      // Ghosts already in the room (from before a restart) are known, so their QUITs and PARTs remove them.
      for (const m of await this.o.matrix.joinedMembers(roomId, null).catch(() => [] as string[])) {
        const g = this.o.matrix.parseGhost(m);
        if (g?.networkId === networkId) p.ghosts.add(g.foldedNick);
      }
      this.portals.set(k, p);
      this.byRoom.set(roomId, k);
      return p;
    });
  }

  private async portalByRoom(roomId: string): Promise<Portal | null> {
    const k = this.byRoom.get(roomId);
    if (k) return this.portals.get(k) ?? null;
    const found = await this.o.store.findChannelByRoom(roomId);
    return found ? this.portal(found.networkId, found.foldedChannel, false) : null;
  }

  private aliasLocalpart(networkId: string, folded: string): string {
    return this.o.settings.aliasTemplate.replace("{network}", networkId).replace("{channel}", folded).slice(1);
  }

  private parseAlias(alias: string): { networkId: string; channel: string } | null {
    const m = /^(#[^:]+):(.+)$/.exec(alias);
    if (!m || m[2] !== this.o.settings.domain) return null;
    const [before, rest] = this.o.settings.aliasTemplate.split("{network}") as [string, string | undefined];
    if (rest === undefined) return null;
    const [middle, after] = rest.split("{channel}") as [string, string | undefined];
    if (after === undefined || !m[1]!.startsWith(before) || !m[1]!.endsWith(after)) return null;
    const inner = m[1]!.slice(before.length, m[1]!.length - after.length);
    const at = inner.indexOf(middle);
    if (at <= 0) return null;
    const networkId = inner.slice(0, at);
    const channel = inner.slice(at + middle.length);
    if (!this.o.settings.network(networkId) || !/^[#&][^\s,\x07:]{1,199}$/.test(channel)) return null;
    return { networkId, channel };
  }

  private fold(userId: string, networkId: string, channel: string): string {
    const p = this.o.connections.get(userId, networkId);
    return p ? p.foldNick(channel) : foldNick(channel);
  }

  /** `key` undefined keeps the key already known; null forgets it (the channel's -k). */
  private want(userId: string, networkId: string, folded: string, key?: string | null): void {
    const k = this.userKey(userId, networkId);
    let m = this.wanted.get(k);
    if (!m) this.wanted.set(k, (m = new Map()));
    const had = m.has(folded);
    const before = m.get(folded);
    const after = key === undefined ? before : key ?? undefined;
    m.set(folded, after);
    if (!had) this.persistWanted();
    if (after !== before) this.persistKey(userId, networkId, folded, after ?? null);
  }

  private unwant(userId: string, networkId: string, folded: string): void {
    const m = this.wanted.get(this.userKey(userId, networkId));
    const key = m?.get(folded);
    if (!m?.delete(folded)) return;
    this.persistWanted();
    if (key !== undefined) this.persistKey(userId, networkId, folded, null);
  }

  /** Channel keys are passwords: they go to the store's sealed table, never into the plain membership list. */
  private persistKey(userId: string, networkId: string, folded: string, key: string | null): void {
    const run = () => this.o.store.setChannelKey(userId, networkId, folded, key);
    this.persistChain = this.persistChain.then(run, run).catch((err) =>
      this.o.logger.warn("could not save a channel key", { networkId, code: codeOf(err) }));
  }

  private persistWanted(): void {
    const list: [string, string, string][] = [];
    for (const [k, m] of this.wanted) {
      const at = k.indexOf("\u0000");
      for (const folded of m.keys()) list.push([k.slice(at + 1), k.slice(0, at), folded]);
    }
    const text = JSON.stringify(list);
    const run = () => this.o.store.putState(CHANNELS_WANTED_STATE_KEY, text);
    this.persistChain = this.persistChain.then(run, run).catch((err) =>
      this.o.logger.warn("could not save channel memberships", { code: codeOf(err) }));
  }

  private enqueue(portal: Portal, job: () => Promise<unknown>): void {
    void this.queue.run(this.key(portal.networkId, portal.channel), job).catch((err) => {
      this.o.metrics.messageFailed("irc_to_matrix", codeOf(err));
      this.o.logger.error("channel event could not be mirrored to Matrix", { networkId: portal.networkId, roomId: portal.roomId, code: codeOf(err) });
    });
  }

  private key(networkId: string, folded: string): string {
    return `${networkId}\u0000${folded}`;
  }

  private userKey(userId: string, networkId: string): string {
    return `${networkId}\u0000${userId}`;
  }
}

/** The stored ban list of a portal; anything unreadable counts as no bans (they stay set in the room itself). */
function parseBans(raw: string | null): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  try {
    const list: unknown = raw ? JSON.parse(raw) : [];
    for (const e of Array.isArray(list) ? list : []) {
      if (Array.isArray(e) && typeof e[0] === "string" && Array.isArray(e[1])) {
        const users = (e[1] as unknown[]).filter((u): u is string => typeof u === "string");
        if (users.length) out.set(e[0], new Set(users));
      }
    }
  } catch {
    // fall through with what was read
  }
  return out;
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
