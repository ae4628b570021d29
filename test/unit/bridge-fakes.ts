// In-memory stand-ins for the Matrix and IRC adapters, shaped like the bridge's ports.
import type { MatrixPort, MessageKind, PuppetEvents, PuppetPort, PuppetRequest } from "../../src/bridge/ports.js";
import { foldNick } from "../../src/irc/casemap.js";
import { GhostNaming } from "../../src/matrix/localpart.js";

export interface Sent { roomId: string; from: string | null; kind: MessageKind; body: string }

export class FakeMatrix implements MatrixPort {
  readonly botUserId = "@bridge:test.local";
  sent: Sent[] = [];
  rooms = new Map<string, { creator: string; invited: string[]; members: Set<string>; name: string }>();
  joined: { roomId: string; as: string | null }[] = [];
  left: { roomId: string; as: string | null }[] = [];
  displayNames = new Map<string, string>();
  private n = 0;

  private naming = new GhostNaming("irc_{network}_{nick}", "test.local");
  ghostUserId(networkId: string, foldedNick: string): string {
    return this.naming.userId(networkId, foldedNick);
  }
  parseGhost(userId: string) {
    return this.naming.parse(userId, ["local"]);
  }
  async send(roomId: string, from: string | null, kind: MessageKind, body: string): Promise<string> {
    await new Promise((r) => setImmediate(r));
    this.sent.push({ roomId, from, kind, body });
    return `$e${this.sent.length}`;
  }
  states: { roomId: string; from: string | null; type: string; stateKey: string; content: Record<string, unknown> }[] = [];
  async sendState(roomId: string, from: string | null, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    this.states.push({ roomId, from, type, stateKey, content });
    return `$s${this.states.length}`;
  }
  redactions: { roomId: string; eventId: string }[] = [];
  async redact(roomId: string, _as: string | null, eventId: string): Promise<void> {
    this.redactions.push({ roomId, eventId });
  }
  async setDisplayName(userId: string, name: string): Promise<void> {
    this.displayNames.set(userId, name);
  }
  async createDmRoom(creator: string, invitee: string, name: string): Promise<string> {
    // Yield several times so concurrent callers would interleave if the bridge did not serialise creation.
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    const roomId = `!dm${++this.n}:test.local`;
    this.rooms.set(roomId, { creator, invited: [invitee], members: new Set([creator]), name });
    return roomId;
  }
  async invite(roomId: string, _as: string | null, userId: string): Promise<void> {
    this.rooms.get(roomId)?.invited.push(userId);
  }
  async join(roomId: string, as: string | null): Promise<void> {
    this.joined.push({ roomId, as });
  }
  async leave(roomId: string, as: string | null): Promise<void> {
    this.left.push({ roomId, as });
  }
  memberships = new Map<string, string>();
  async membership(roomId: string, _as: string | null, userId: string): Promise<string | null> {
    return this.memberships.get(`${roomId} ${userId}`) ?? null;
  }
  encryptedRooms = new Set<string>();
  async unreadable(roomId: string): Promise<boolean> {
    return this.encryptedRooms.has(roomId);
  }
  joinedMembersResult: string[] | null = null;
  async joinedMembers(): Promise<string[]> {
    return this.joinedMembersResult ?? [];
  }
  textsIn(roomId: string): string[] {
    return this.sent.filter((s) => s.roomId === roomId).map((s) => s.body);
  }
}

export class FakePuppet implements PuppetPort {
  connected = false;
  connectCalls = 0;
  lines: { cmd: "say" | "notice" | "action"; target: string; text: string }[] = [];
  nicks: string[] = [];
  disconnected = false;
  constructor(readonly req: PuppetRequest, readonly events: PuppetEvents) {}
  get nick() { return this.req.nick; }
  foldNick(n: string) { return foldNick(n); }
  connect() { this.connectCalls++; }
  async disconnect() { this.connected = false; this.disconnected = true; }
  say(target: string, text: string) { this.lines.push({ cmd: "say", target, text }); return this.connected ? 1 : 0; }
  notice(target: string, text: string) { this.lines.push({ cmd: "notice", target, text }); return this.connected ? 1 : 0; }
  action(target: string, text: string) { this.lines.push({ cmd: "action", target, text }); return this.connected ? 1 : 0; }
  changeNick(nick: string) { this.nicks.push(nick); }
  textBudget(target: string) { return 400 - target.length; }
  /** Test helper: the server accepted the registration. */
  up() { this.connected = true; this.events.onConnected({ nick: this.req.nick }); }
}

export const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };
