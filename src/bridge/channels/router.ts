// IRC channels as Matrix rooms ("portals"). One room per (network, folded channel), created by the bot and kept in
// the store. IRC users appear as ghosts (the same ids as in DMs, so a nick is one Matrix user everywhere); a
// Matrix user's own puppet joins the channel when they join the room and parts when they leave. OTR does not
// apply here: it is one-to-one.
//
// Several Matrix users' puppets can sit in one channel and each sees every line; one of them (the first in)
// is the portal's listener and only its events are bridged, so each IRC line appears once. Everything from IRC
// for one portal runs through one queue, so the room shows lines in the order the server sent them.
import type { Store } from "../../store/types.js";
import type { BridgeLogger, BridgeMetrics, IrcChannelEvent, MatrixMessage, MatrixPort, MessageKind, PuppetPort } from "../ports.js";
import type { ConnectionManager } from "../connections.js";
import { KeyedQueue } from "../keyed-queue.js";
import { RateLimiter } from "./rate-limiter.js";
import { foldNick } from "../../irc/casemap.js";
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
}

/** Store state key: JSON list of [userId, networkId, foldedChannel] whose puppet belongs in the channel. */
export const CHANNELS_WANTED_STATE_KEY = "channels.wanted";

const plumbedKey = (networkId: string, folded: string) => `channel.plumbed.${networkId}.${folded}`;

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

  /** Before puppets reconnect after a restart: which channels each should rejoin (keys are not kept). */
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
      m.set(folded, undefined);
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
  async membership(e: { roomId: string; userId: string; sender: string; membership: string }): Promise<boolean> {
    const portal = await this.portalByRoom(e.roomId);
    if (!portal) return false;
    const { matrix } = this.o;
    const ghost = matrix.parseGhost(e.userId);
    if (ghost && (e.membership === "leave" || e.membership === "ban") && e.sender !== e.userId && e.sender !== matrix.botUserId && !matrix.parseGhost(e.sender)) {
      // A Matrix user kicked (or banned) a ghost: their puppet kicks the nick; the server decides if they may.
      const puppet = this.o.connections.get(e.sender, portal.networkId);
      if (puppet?.connected && portal.users.includes(e.sender) && ghost.networkId === portal.networkId) {
        portal.ghosts.delete(ghost.foldedNick);
        puppet.kick?.(portal.name, portal.ircMembers.get(ghost.foldedNick) ?? ghost.foldedNick, `by ${e.sender}`);
      }
      return true;
    }
    if (e.userId === matrix.botUserId || ghost) return true;
    if (e.membership === "join") {
      if (!this.o.allowed(e.userId)) return true;
      if (portal.plumbed && !this.o.connections.get(e.userId, portal.networkId)) return true; // the relay speaks for them
      this.want(e.userId, portal.networkId, portal.channel, this.wanted.get(this.userKey(e.userId, portal.networkId))?.get(portal.channel));
      await this.ensurePuppetIn(e.userId, portal);
    } else if (e.membership === "leave" || e.membership === "ban") {
      this.unwant(e.userId, portal.networkId, portal.channel);
      this.o.connections.get(e.userId, portal.networkId)?.partChannel?.(portal.name);
      this.dropUser(portal, e.userId);
    }
    return true;
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
    // Our own puppet's JOIN/PART/KICK decides who listens, whoever reports it.
    if (e.type === "join" && puppet.foldNick(e.nick) === puppet.foldNick(puppet.nick)) {
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
        if (this.isPuppetNick(portal.networkId, puppet, e.from)) return; // a Matrix user's own line, already in the room
        const ghost = await this.ghostIn(portal, puppet, e.from);
        const { body, html } = ircToMatrix(e.text);
        await matrix.send(portal.roomId, ghost, IRC_KIND[e.kind], body, html ? { format: "org.matrix.custom.html", formatted_body: html } : undefined);
        this.o.metrics.messageBridged("irc_to_matrix", portal.networkId, false, "channel");
        return;
      }
      case "join": {
        portal.ircMembers.set(puppet.foldNick(e.nick), e.nick);
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
        for (const u of e.users) {
          const f = puppet.foldNick(u.nick);
          portal.ircMembers.set(f, u.nick);
          portal.modes.set(f, new Set(u.modes));
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
    await this.ghostIn(portal, puppet, newNick);
    await this.o.matrix.send(portal.roomId, this.o.matrix.ghostUserId(portal.networkId, puppet.foldNick(newNick)), "notice", `${oldNick} is now known as ${newNick}`);
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

  private async ghostIn(portal: Portal, puppet: PuppetPort, nick: string): Promise<string> {
    const f = puppet.foldNick(nick);
    const ghost = this.o.matrix.ghostUserId(portal.networkId, f);
    portal.ircMembers.set(f, nick);
    portal.quitting.delete(f);
    await this.o.matrix.setDisplayName(ghost, nick);
    if (!portal.ghosts.has(f)) {
      await this.limiter.take();
      await this.o.matrix.join(portal.roomId, ghost);
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
      const p: Portal = { networkId, channel: folded, name: channel, roomId, users: [], ircMembers: new Map(), ghosts: new Set(), modes: new Map(), quitting: new Set(), plumbed };
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

  private want(userId: string, networkId: string, folded: string, key?: string): void {
    const k = this.userKey(userId, networkId);
    let m = this.wanted.get(k);
    if (!m) this.wanted.set(k, (m = new Map()));
    const had = m.has(folded);
    m.set(folded, key);
    if (!had) this.persistWanted();
  }

  private unwant(userId: string, networkId: string, folded: string): void {
    if (this.wanted.get(this.userKey(userId, networkId))?.delete(folded)) this.persistWanted();
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

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
