// In-memory world for the OTR session manager's unit tests: a recording MatrixPort, a DmContext whose IRC side is
// a real OtrConversation of our own library (the "IRC contact"), and a pump that carries lines both ways.
import { OtrAccount, OtrConversation, POLICY, type OtrEvent, type DsaPrivateKey } from "../../src/otr/index.js";
import { MemoryStore } from "../../src/store/memory.js";
import { OtrPipeline, type OtrPipelineOptions } from "../../src/bridge/otr/manager.js";
import type { DmContext } from "../../src/bridge/dm-pipeline.js";
import type { MatrixPort, MessageKind } from "../../src/bridge/ports.js";
import type { Store } from "../../src/store/types.js";
import { TestEnv, testKey } from "../otr/fixtures.js";

export const USER = "@alice:test.local";
export const NET = "net";

export interface Posted { roomId: string; from: string | null; kind: MessageKind; body: string; extra: Record<string, unknown> }

export class RecMatrix implements MatrixPort {
  readonly botUserId = "@bridge:test.local";
  posted: Posted[] = [];
  states: { roomId: string; from: string | null; type: string; stateKey: string; content: Record<string, unknown> }[] = [];
  redactions: { roomId: string; as: string | null; eventId: string }[] = [];
  failRedact = false;
  ghostUserId(networkId: string, foldedNick: string): string {
    return `@irc_${networkId}_${foldedNick}:test.local`;
  }
  parseGhost(): null {
    return null;
  }
  async send(roomId: string, from: string | null, kind: MessageKind, body: string, extra?: Record<string, unknown>): Promise<string> {
    this.posted.push({ roomId, from, kind, body, extra: extra ?? {} });
    return `$p${this.posted.length}`;
  }
  async sendState(roomId: string, from: string | null, type: string, stateKey: string, content: Record<string, unknown>): Promise<string> {
    this.states.push({ roomId, from, type, stateKey, content: structuredClone(content) });
    return `$s${this.states.length}`;
  }
  async redact(roomId: string, as: string | null, eventId: string): Promise<void> {
    if (this.failRedact) throw Object.assign(new Error("forbidden"), { code: "M_FORBIDDEN" });
    this.redactions.push({ roomId, as, eventId });
  }
  async setDisplayName(): Promise<void> {}
  async createDmRoom(): Promise<string> {
    return "!unused:test.local";
  }
  async invite(): Promise<void> {}
  async join(): Promise<void> {}
  async leave(): Promise<void> {}
  async membership(): Promise<string | null> {
    return null;
  }
  async joinedMembers(): Promise<string[]> {
    return [];
  }
  async unreadable(): Promise<boolean> {
    return false;
  }
  notices(roomId?: string): string[] {
    return this.posted.filter((p) => (!roomId || p.roomId === roomId) && p.extra["org.matrix_otr_irc.notice"]).map((p) => p.extra["org.matrix_otr_irc.notice"] as string);
  }
  noticesWith(code: string): Posted[] {
    return this.posted.filter((p) => p.extra["org.matrix_otr_irc.notice"] === code);
  }
  /** Messages from the contact (not notices). */
  messages(roomId?: string): Posted[] {
    return this.posted.filter((p) => (!roomId || p.roomId === roomId) && p.extra["org.matrix_otr_irc.otr"] !== undefined);
  }
  status(roomId: string): Record<string, unknown> | null {
    const s = this.states.filter((e) => e.roomId === roomId && e.type === "org.matrix_otr_irc.otr_status");
    return s.length ? s[s.length - 1]!.content : null;
  }
}

/** The IRC contact: a real OTR client (our library) on the other end of the puppet. */
export class Contact {
  readonly env: TestEnv;
  conv: OtrConversation;
  events: OtrEvent[] = [];
  /** Lines the contact wants to send to the bridge. */
  outbox: string[] = [];
  constructor(readonly nick: string, key: DsaPrivateKey, seed: string, policy = POLICY.OPPORTUNISTIC, tag = 0x5000 + seed.length) {
    this.env = new TestEnv(seed);
    this.conv = new OtrConversation(new OtrAccount({ privateKey: key, instanceTag: tag, policy, env: this.env, maxFragmentSize: 0 }), "alice");
  }
  take(r: { events: OtrEvent[]; toSend: string[] }): void {
    this.events.push(...r.events);
    this.outbox.push(...r.toSend);
  }
  received(): string[] {
    return this.events.filter((e): e is Extract<OtrEvent, { type: "received" }> => e.type === "received").map((e) => e.text);
  }
  has(type: OtrEvent["type"]): boolean {
    return this.events.some((e) => e.type === type);
  }
}

export interface World {
  store: Store;
  matrix: RecMatrix;
  env: TestEnv;
  pipeline: OtrPipeline;
  keygens: number;
}

export function makeWorld(opts: Partial<OtrPipelineOptions> & { store?: Store; keyIndex?: number } = {}): World {
  const env = new TestEnv("bridge");
  const matrix = new RecMatrix();
  const store = opts.store ?? new MemoryStore();
  const w: World = { store, matrix, env, keygens: 0, pipeline: null as unknown as OtrPipeline };
  w.pipeline = new OtrPipeline({
    store,
    matrix,
    logger: { debug() {}, info() {}, warn() {}, error() {} },
    defaultPolicy: "opportunistic",
    trustOnFirstUse: false,
    env,
    pollIntervalMs: 0,
    generateKey: async () => {
      w.keygens++;
      return testKey(opts.keyIndex ?? 0);
    },
    ...opts,
  });
  return w;
}

/** A DM between the user and one contact, with the puppet's IRC side carried to `contact`. */
export class Dm {
  ctx: DmContext;
  connected = true;
  budget = 400;
  /** Everything the puppet wrote to IRC for this contact. */
  irc: { kind: MessageKind; text: string }[] = [];
  private inFlight: string[] = [];
  constructor(readonly w: World, public contact: Contact, readonly roomId: string, nick = contact.nick) {
    this.ctx = {
      userId: USER,
      networkId: NET,
      peerNick: nick,
      foldedNick: nick.toLowerCase(),
      roomId,
      ircTextBudget: () => (this.connected ? this.budget : 0),
      toMatrix: async (kind, body, extra) => {
        await w.matrix.send(roomId, w.matrix.ghostUserId(NET, nick.toLowerCase()), kind, body, extra);
      },
      toIrc: (kind, text) => {
        if (!this.connected) return 0;
        this.irc.push({ kind, text });
        if (kind === "text") this.inFlight.push(text);
        return 1;
      },
    };
  }
  /** Carries lines both ways until nobody has anything to say. */
  async pump(): Promise<void> {
    for (let i = 0; i < 500; i++) {
      const toContact = this.inFlight.shift();
      if (toContact !== undefined) {
        this.contact.take(this.contact.conv.receive(toContact));
        continue;
      }
      const toBridge = this.contact.outbox.shift();
      if (toBridge !== undefined) {
        await this.w.pipeline.fromIrc(this.ctx, "text", toBridge);
        continue;
      }
      return;
    }
    throw new Error("pump: no quiescence after 500 lines");
  }
  /** Lines the bridge wrote that the contact has not read yet are dropped (a lost network, a peer that never answers). */
  dropInFlight(): void {
    this.inFlight = [];
  }
  async user(text: string, kind: MessageKind = "text", eventId?: string) {
    const r = await this.w.pipeline.fromMatrix(this.ctx, kind, text, eventId ? { eventId } : undefined);
    await this.pump();
    return r;
  }
  async contactSays(text: string): Promise<void> {
    this.contact.take(this.contact.conv.send(text));
    await this.pump();
  }
  async contactStarts(): Promise<void> {
    this.contact.take(this.contact.conv.startAke());
    await this.pump();
  }
  wireText(): string {
    return this.irc.map((l) => l.text).join("\n");
  }
}
