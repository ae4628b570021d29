// Channel-portal fakes shared by the channel unit tests: a Matrix port that records kicks, bans and power levels,
// and a puppet that records what it would send to IRC.
import assert from "node:assert/strict";
import { BridgeCore } from "../../src/bridge/core.js";
import type { ChannelSettings } from "../../src/bridge/channels/router.js";
import type { IrcChannelEvent, MessageKind } from "../../src/bridge/ports.js";
import { MemoryStore } from "../../src/store/memory.js";
import { FakeMatrix, FakePuppet, silentLogger } from "./bridge-fakes.js";

export class ChannelMatrix extends FakeMatrix {
  created: { name: string; aliasLocalpart?: string }[] = [];
  kicks: { roomId: string; userId: string; reason?: string }[] = [];
  power: { roomId: string; userId: string; level: number }[] = [];
  extras: (Record<string, unknown> | undefined)[] = [];
  override async send(roomId: string, from: string | null, kind: MessageKind, body: string, extra?: Record<string, unknown>): Promise<string> {
    this.extras.push(extra);
    return super.send(roomId, from, kind, body);
  }
  async createChannelRoom(o: { name: string; aliasLocalpart?: string }): Promise<string> {
    this.created.push(o);
    return `!chan${this.created.length}:test.local`;
  }
  async kick(roomId: string, _as: string | null, userId: string, reason?: string): Promise<void> {
    this.kicks.push({ roomId, userId, ...(reason ? { reason } : {}) });
  }
  async setPowerLevel(roomId: string, userId: string, level: number): Promise<void> {
    this.power.push({ roomId, userId, level });
  }
  bans: { roomId: string; userId: string; reason?: string }[] = [];
  unbans: { roomId: string; userId: string }[] = [];
  /** Like a homeserver: a banned user cannot join until unbanned. */
  async ban(roomId: string, _as: string | null, userId: string, reason?: string): Promise<void> {
    this.bans.push({ roomId, userId, ...(reason ? { reason } : {}) });
    this.memberships.set(`${roomId} ${userId}`, "ban");
  }
  async unban(roomId: string, _as: string | null, userId: string): Promise<void> {
    this.unbans.push({ roomId, userId });
    this.memberships.set(`${roomId} ${userId}`, "leave");
  }
  override async join(roomId: string, as: string | null): Promise<void> {
    if (as && this.memberships.get(`${roomId} ${as}`) === "ban") throw Object.assign(new Error("banned"), { code: "M_FORBIDDEN" });
    return super.join(roomId, as);
  }
}

export class ChannelPuppet extends FakePuppet {
  joins: string[] = [];
  keys: (string | undefined)[] = [];
  parts: string[] = [];
  modes: string[] = [];
  joinChannel(channel: string, key?: string) { this.joins.push(channel); this.keys.push(key); }
  setModes(channel: string, changes: readonly { mode: string; param?: string }[]) {
    for (const c of changes) this.modes.push(`${channel} ${c.mode} ${c.param ?? ""}`.trim());
  }
  partChannel(channel: string) { this.parts.push(channel); }
  emit(e: IrcChannelEvent) { this.events.onChannel?.(e); }
}

export const ALICE = "@alice:test.local";
export const BOB = "@bob:test.local";

export interface BridgeOptions {
  store?: MemoryStore;
  settings?: Partial<ChannelSettings>;
  dynamic?: boolean;
  bridged?: string[];
  permission?: (userId: string) => "user" | "admin" | null;
}

/** A bridge core on fakes, with one network "local" (a fresh store unless one is given, as after a restart). */
export function bridgeOn(o: BridgeOptions = {}) {
  const matrix = new ChannelMatrix();
  const puppets = new Map<string, ChannelPuppet>();
  const bridged = o.bridged ?? [];
  const settings: ChannelSettings = {
    domain: "test.local", aliasTemplate: "#irc_{network}_{channel}", quitDebounceMs: 60_000, membershipPerSecond: 1000,
    maxMessageLines: 3, replyTemplate: "{nick}: {text}", editTemplate: "* {text}",
    network: (id) => (id === "local" ? { dynamicChannels: o.dynamic ?? true, membershipSync: "lazy", opLevel: 50, voiceLevel: 10 } : undefined),
    ...o.settings,
  };
  const store = o.store ?? new MemoryStore();
  const core = new BridgeCore({
    store, matrix,
    createPuppet: (req, events) => {
      const p = new ChannelPuppet(req, events);
      puppets.set(req.userId, p);
      return p;
    },
    networks: [{ id: "local", name: "Local", nickTemplate: "{localpart}" }],
    permission: o.permission ?? ((u) => (u === ALICE || u === BOB ? "user" : null)),
    logger: silentLogger, channels: settings,
    metrics: {
      messageBridged: (direction, _net, encrypted, kind) => void bridged.push(`${direction} ${kind ?? "dm"} ${encrypted}`),
      messageFailed() {}, connectionState() {},
    },
  });
  return { core, matrix, puppets, store };
}

export function setup(over: Partial<ChannelSettings> = {}, dynamic = true, bridged: string[] = []) {
  return bridgeOn({ settings: over, dynamic, bridged });
}

/** alice connected, in the portal for #chan, her puppet in the channel with the given IRC members. */
export async function inChannel(members: string[] = ["alice", "carol", "dave"], bridged: string[] = []) {
  const s = setup({}, true, bridged);
  await s.core.connections.connect(ALICE, "local");
  const p = s.puppets.get(ALICE)!;
  p.up();
  const reply = await s.core.channels!.joinCommand(ALICE, "local", "#chan");
  assert.match(reply, /Invited you to #chan on local/);
  const roomId = "!chan1:test.local";
  await s.core.onMembership({ roomId, userId: ALICE, sender: ALICE, membership: "join" });
  assert.deepEqual(p.joins, ["#chan"]);
  p.emit({ type: "join", channel: "#chan", nick: "alice" });
  p.emit({ type: "names", channel: "#chan", users: members.map((nick) => ({ nick, modes: nick === "carol" ? ["o"] : [] })) });
  await s.core.idle();
  return { ...s, p, roomId };
}

/** A second bridge on the same store, as after a restart (its Matrix fake knows nothing yet). */
export function restarted(store: MemoryStore) {
  return bridgeOn({ store, permission: () => "user" });
}
