// Direct messages between a Matrix user and an IRC contact. One Matrix room per (user, network, folded nick),
// created by the contact's ghost the first time it is needed and kept in the store. Creation and delivery run in a
// queue per key, so two messages arriving together create one room and arrive in order. Both directions go through
// the DmPipeline (plaintext today, OTR in issue 6).
import type { Store } from "../store/types.js";
import type { BridgeLogger, BridgeMetrics, IrcIncoming, MatrixPort, MessageKind } from "./ports.js";
import type { ConnectionManager } from "./connections.js";
import type { DmContext, DmPipeline, MatrixOrigin } from "./dm-pipeline.js";
import { KeyedQueue } from "./keyed-queue.js";
import { foldNick } from "../irc/casemap.js";

const IRC_KIND: Record<IrcIncoming["kind"], MessageKind> = { privmsg: "text", notice: "notice", action: "emote" };

export interface DmRouterOptions {
  store: Store;
  matrix: MatrixPort;
  connections: ConnectionManager;
  pipeline: DmPipeline;
  logger: BridgeLogger;
  metrics: BridgeMetrics;
  notify(userId: string, text: string): Promise<void>;
  /** A DM room is in use, with the ghost that speaks in it. */
  roomSeen?(roomId: string, ghost: string): void;
}

export class DmRouter {
  private readonly queue = new KeyedQueue();
  /** Last spelling seen for a folded nick, so ghosts show "Bob" rather than "bob". */
  private readonly spelling = new Map<string, string>();

  constructor(private readonly o: DmRouterOptions) {}

  /** A message from an IRC contact to the user's puppet. */
  fromIrc(userId: string, networkId: string, msg: IrcIncoming): Promise<void> {
    const puppet = this.o.connections.get(userId, networkId);
    const folded = puppet ? puppet.foldNick(msg.from) : foldNick(msg.from);
    const k = this.key(userId, networkId, folded);
    this.spelling.set(k, msg.from);
    return this.queue.run(k, async () => {
      const roomId = await this.roomFor(userId, networkId, folded, msg.from);
      await this.o.pipeline.fromIrc(this.context(userId, networkId, folded, roomId), IRC_KIND[msg.kind], msg.text);
    }).catch((err) => {
      this.o.metrics.messageFailed("irc_to_matrix", codeOf(err));
      this.o.logger.error("IRC message could not be delivered to Matrix", { userId, networkId, code: codeOf(err) });
    });
  }

  /**
   * A message the user wrote in a DM room. Returns `settled` when the message is held (OTR, waiting for the AKE):
   * it resolves once the text was sent or given back. Wrapped, so awaiting the call never waits for the AKE.
   */
  async fromMatrix(dm: { userId: string; networkId: string; foldedNick: string }, roomId: string, kind: MessageKind, body: string, origin?: MatrixOrigin): Promise<{ settled?: Promise<void> }> {
    const k = this.key(dm.userId, dm.networkId, dm.foldedNick);
    return this.queue.run(k, async (): Promise<{ settled?: Promise<void> }> => {
      // Activity for the idle policy; wakes a puppet disconnected for inactivity (the message is then held).
      await this.o.connections.touch(dm.userId, dm.networkId);
      const puppet = this.o.connections.get(dm.userId, dm.networkId);
      const ghost = this.o.matrix.ghostUserId(dm.networkId, dm.foldedNick);
      const isCommand = this.o.pipeline.isCommand?.(body) ?? false;
      if ((!puppet || !(puppet.canSend ?? puppet.connected)) && !isCommand) {
        this.o.metrics.messageFailed("matrix_to_irc", "not-connected");
        await this.o.matrix.send(roomId, ghost, "notice", `Not delivered: you are not connected to ${dm.networkId}. Send \`connect ${dm.networkId}\` to the bridge bot.`);
        return {};
      }
      const r = await this.o.pipeline.fromMatrix(this.context(dm.userId, dm.networkId, dm.foldedNick, roomId), kind, body, origin);
      if (r.sent) {
        this.o.metrics.messageBridged("matrix_to_irc", dm.networkId, r.encrypted);
      } else if (!r.handled) {
        this.o.metrics.messageFailed("matrix_to_irc", "nothing-sent");
        await this.o.matrix.send(roomId, ghost, "notice", "Not delivered: the message was empty or the connection dropped.");
      }
      return r.settled ? { settled: r.settled } : {};
    });
  }

  /**
   * The DM room for (user, network, nick), created and the user invited when absent. Runs inside the key's queue
   * when called from routing; `open` (the `msg` command) takes the same queue.
   */
  open(userId: string, networkId: string, folded: string, nick: string): Promise<{ roomId: string; created: boolean }> {
    const k = this.key(userId, networkId, folded);
    this.spelling.set(k, nick);
    return this.queue.run(k, async () => {
      const existing = await this.o.store.getDmRoom(userId, networkId, folded);
      const roomId = await this.roomFor(userId, networkId, folded, nick);
      if (existing) {
        const ghost = this.o.matrix.ghostUserId(networkId, folded);
        const m = await this.o.matrix.membership(roomId, ghost, userId);
        if (m !== "join" && m !== "invite") await this.o.matrix.invite(roomId, ghost, userId);
      }
      return { roomId, created: !existing };
    });
  }

  /** A room the user made (by inviting the ghost) becomes the DM for its key; the ghost leaves the previous one. */
  async adopt(roomId: string, dm: { userId: string; networkId: string; foldedNick: string }): Promise<void> {
    await this.queue.run(this.key(dm.userId, dm.networkId, dm.foldedNick), async () => {
      const previous = await this.o.store.getDmRoom(dm.userId, dm.networkId, dm.foldedNick);
      await this.o.store.putDmRoom(dm.userId, dm.networkId, dm.foldedNick, roomId);
      if (previous && previous !== roomId) {
        await this.o.matrix.leave(previous, this.o.matrix.ghostUserId(dm.networkId, dm.foldedNick)).catch(() => undefined);
      }
    });
  }

  /** A pipeline command about (user, network, nick) typed in the management room; the DM room is opened if needed. */
  command(userId: string, networkId: string, folded: string, nick: string, args: string, origin: { roomId: string; eventId?: string }): Promise<string> {
    const k = this.key(userId, networkId, folded);
    if (!this.spelling.has(k)) this.spelling.set(k, nick);
    const run = this.o.pipeline.command;
    if (!run) return Promise.resolve("This bridge has no commands for direct chats.");
    return this.queue.run(k, async () => {
      const roomId = await this.roomFor(userId, networkId, folded, this.spelling.get(k) ?? nick);
      return run.call(this.o.pipeline, this.context(userId, networkId, folded, roomId), args, origin);
    });
  }

  /**
   * An IRC contact changed nick (seen in a shared channel). Ghost ids follow the folded nick, so the DM room moves to
   * the new nick's key and its ghost is invited: later messages from the new nick land in the same room. The old ghost
   * stays (it created the room and holds its power). When the new nick already has a DM room, both are left alone.
   */
  renamed(userId: string, networkId: string, oldNick: string, newNick: string): Promise<void> {
    const puppet = this.o.connections.get(userId, networkId);
    const oldF = puppet ? puppet.foldNick(oldNick) : foldNick(oldNick);
    const newF = puppet ? puppet.foldNick(newNick) : foldNick(newNick);
    const oldK = this.key(userId, networkId, oldF);
    const newK = this.key(userId, networkId, newF);
    const move = async () => {
      const roomId = await this.o.store.getDmRoom(userId, networkId, oldF);
      if (!roomId) return;
      const newGhost = this.o.matrix.ghostUserId(networkId, newF);
      if (oldF === newF) {
        // Only the spelling changed: same key, same ghost.
        this.spelling.set(oldK, newNick);
        await this.o.matrix.setDisplayName(newGhost, newNick);
        return;
      }
      if (await this.o.store.getDmRoom(userId, networkId, newF)) return;
      await this.o.store.deleteDmRoom(userId, networkId, oldF);
      await this.o.store.putDmRoom(userId, networkId, newF, roomId);
      // A per-peer OTR policy override belongs to the contact, not to the old nick.
      const policy = await this.o.store.getPeerPolicy(userId, networkId, oldF);
      if (policy) {
        await this.o.store.putPeerPolicy(userId, networkId, newF, policy);
        await this.o.store.putPeerPolicy(userId, networkId, oldF, null);
      }
      this.spelling.set(newK, newNick);
      await this.o.pipeline.renamed?.(oldF, this.context(userId, networkId, newF, roomId));
      const oldGhost = this.o.matrix.ghostUserId(networkId, oldF);
      await this.o.matrix.setDisplayName(newGhost, newNick);
      await this.o.matrix.invite(roomId, oldGhost, newGhost);
      await this.o.matrix.join(roomId, newGhost);
      // The old ghost made the room and holds its power; the new one needs it too to post the OTR status state.
      await this.o.matrix.setPowerLevel?.(roomId, newGhost, 100, oldGhost).catch((err) =>
        this.o.logger.warn("could not give the renamed contact's ghost power in the DM room", { userId, networkId, roomId, code: codeOf(err) }));
      await this.o.matrix.send(roomId, newGhost, "notice", `${oldNick} is now known as ${newNick}`);
      this.o.logger.info("DM room follows a nick change", { userId, networkId, roomId });
    };
    // The new nick's queue is taken first, at once: a message from the new nick right after the NICK line waits
    // for the move instead of opening a second room.
    const job = oldF === newF ? this.queue.run(oldK, move) : this.queue.run(newK, () => this.queue.run(oldK, move));
    return job.catch((err) => {
      this.o.logger.warn("DM room could not follow a nick change", { userId, networkId, code: codeOf(err) });
    });
  }

  /** The user left a DM room: forget it, so the next message opens a fresh one the user can see. */
  async userLeft(roomId: string, dm: { userId: string; networkId: string; foldedNick: string }): Promise<void> {
    const k = this.key(dm.userId, dm.networkId, dm.foldedNick);
    await this.queue.run(k, async () => {
      if ((await this.o.store.getDmRoom(dm.userId, dm.networkId, dm.foldedNick)) !== roomId) return;
      await this.o.store.deleteDmRoom(dm.userId, dm.networkId, dm.foldedNick);
      const ghost = this.o.matrix.ghostUserId(dm.networkId, dm.foldedNick);
      await this.o.matrix.leave(roomId, ghost).catch(() => undefined);
    });
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }

  private async roomFor(userId: string, networkId: string, folded: string, nick: string): Promise<string> {
    const ghost = this.o.matrix.ghostUserId(networkId, folded);
    // Cosmetic: a homeserver that does not answer now must not cost the message, which the outbox can keep.
    await this.o.matrix.setDisplayName(ghost, nick).catch((err: unknown) =>
      this.o.logger.warn("a ghost's display name could not be set", { networkId, code: codeOf(err) }));
    const existing = await this.o.store.getDmRoom(userId, networkId, folded);
    if (existing) {
      this.o.roomSeen?.(existing, ghost);
      return existing;
    }
    const roomId = await this.o.matrix.createDmRoom(ghost, userId, `${nick} (${networkId})`);
    await this.o.store.putDmRoom(userId, networkId, folded, roomId);
    this.o.roomSeen?.(roomId, ghost);
    this.o.logger.info("DM room created", { userId, networkId, roomId });
    return roomId;
  }

  private context(userId: string, networkId: string, folded: string, roomId: string): DmContext {
    const ghost = this.o.matrix.ghostUserId(networkId, folded);
    const peerNick = this.spelling.get(this.key(userId, networkId, folded)) ?? folded;
    return {
      userId,
      networkId,
      peerNick,
      foldedNick: folded,
      roomId,
      ircTextBudget: () => this.o.connections.get(userId, networkId)?.textBudget(peerNick) ?? 0,
      toMatrix: async (kind, body, extra) => {
        this.o.metrics.messageHandedOff?.("irc_to_matrix");
        const otr = extra?.["org.matrix_otr_irc.otr"] as { encrypted?: unknown } | undefined;
        const sent = this.o.matrix.send(roomId, ghost, kind, body, extra)
          .then(() => this.o.metrics.messageBridged("irc_to_matrix", networkId, otr?.encrypted === true));
        if (!this.o.matrix.sendsInOrder) return sent;
        // In its room's order already: the DM's queue goes on while the homeserver takes it.
        sent.catch((err: unknown) => {
          this.o.metrics.messageFailed("irc_to_matrix", codeOf(err));
          this.o.logger.error("IRC message could not be delivered to Matrix", { userId, networkId, code: codeOf(err) });
        });
      },
      toIrc: (kind, text) => {
        const puppet = this.o.connections.get(userId, networkId);
        if (!puppet || !(puppet.canSend ?? puppet.connected)) return 0;
        if (kind === "emote") return puppet.action(peerNick, text);
        if (kind === "notice") return puppet.notice(peerNick, text);
        return puppet.say(peerNick, text);
      },
    };
  }

  private key(userId: string, networkId: string, folded: string): string {
    return `${networkId}\u0000${folded}\u0000${userId}`;
  }
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}
