// IRC → Matrix through a homeserver outage (docs/store.md "IRC → Matrix delivery"). Every message for a Matrix room
// goes through one queue per room, in the order the bridge had it, each with a transaction id of its own that every
// try reuses, so the homeserver keeps it once however often it is sent. A room whose homeserver does not answer is
// retried with a growing wait (0.5 s doubling to 30 s) while other rooms go on.
//
// Durable only when it matters: a message goes straight out while its room has nothing waiting, and is written to
// the store (sealed) once it has to wait: its try failed, or took more than a second, or others are queued ahead
// in a room that is already waiting. An IRC line cannot be asked for again, and an OTR message's keys have moved
// on once it was read, so a message the bridge has and the homeserver does not must outlive a crash; in the steady
// state that costs no write. What a crash can still lose is the message whose first try is under way (at most a
// second), as it could lose the line the socket had not handed over yet.
//
// Bounded: at most `maxMessages` wait in all. A message beyond that, or older than `maxAgeMs` when its turn comes,
// is dropped; the room then gets one notice, where the gap is, saying how many were lost.
import { randomBytes } from "node:crypto";
import type { Store } from "../store/types.js";
import type { BridgeLogger, MatrixDelivery, MatrixPort, MessageKind } from "./ports.js";

export interface OutboxMetrics {
  /** Messages waiting now (all rooms). */
  queued?(n: number): void;
  /** A try failed and will be repeated. */
  retried?(): void;
  /** Written to the store because it had to wait. */
  recorded?(n: number): void;
  dropped?(reason: "overflow" | "expired" | "refused", n: number): void;
  /** The homeserver took a message that waited this long (ms) since the bridge had it. */
  delivered?(waitedMs: number): void;
}

export interface OutboxOptions {
  store: Store;
  matrix: MatrixDelivery;
  logger: BridgeLogger;
  maxMessages: number;
  maxAgeMs: number;
  metrics?: OutboxMetrics;
  /** Tests shorten these. */
  retryFirstMs?: number;
  retryMaxMs?: number;
  slowMs?: number;
}

interface Entry {
  kind: "message";
  roomId: string;
  txnId: string;
  from: string | null;
  content: Record<string, unknown>;
  queuedAt: number;
  /** Its seq once written; null while only in memory or when the write failed. */
  seq: Promise<number | null> | null;
  /** Resolves the caller's wait: taken by the homeserver, or written to the store. */
  settle: () => void;
}

/** Where messages were dropped: delivered as one notice in their place. */
interface Gap {
  kind: "gap";
  txnId: string;
  from: string | null;
  lost: number;
}

interface Room {
  id: string;
  queue: Array<Entry | Gap>;
  running: boolean;
  /** Waiting for the homeserver: everything queued is written to the store. */
  waiting: boolean;
  attempt: number;
  timer: ReturnType<typeof setTimeout> | null;
  wake: (() => void) | null;
}

const OUTBOX_NOTICE = "outbox-dropped";

export class MatrixOutbox {
  private readonly rooms = new Map<string, Room>();
  private count = 0;
  private writes: Promise<unknown> = Promise.resolve();
  private storeFailing = false;
  private closed = false;

  constructor(private readonly o: OutboxOptions) {}

  /**
   * Queues a message for `roomId`; resolves once the homeserver took it or, when it has to wait, once it is in the
   * store. Never rejects: a message that cannot be kept is dropped and counted, and its room told.
   */
  send(roomId: string, from: string | null, content: Record<string, unknown>): Promise<void> {
    const room = this.room(roomId);
    if (this.count >= this.o.maxMessages) {
      this.drop(room, from, 1, "overflow");
      return Promise.resolve();
    }
    let settle!: () => void;
    const settled = new Promise<void>((r) => (settle = r));
    const e: Entry = { kind: "message", roomId, txnId: newTxnId(), from, content, queuedAt: Date.now(), seq: null, settle };
    room.queue.push(e);
    this.setCount(this.count + 1);
    // After close (the connections are still quitting): kept for the next start, not sent.
    if (room.waiting || this.closed) this.record([e]);
    if (!this.closed) void this.pump(room);
    return settled;
  }

  /** Messages kept from before a restart, in their order, ahead of anything new of their rooms. Call before traffic. */
  async restore(): Promise<number> {
    let pending: Awaited<ReturnType<Store["outboxPending"]>> = [];
    try {
      pending = await this.o.store.outboxPending();
    } catch (err) {
      this.o.logger.error("messages kept for Matrix could not be read; they stay in the store until the next start", { code: codeOf(err) });
      return 0;
    }
    const rooms = new Set<Room>();
    for (const p of pending) {
      let m: { from: string | null; content: Record<string, unknown> };
      try {
        m = JSON.parse(new TextDecoder().decode(p.message)) as typeof m;
      } catch {
        this.o.logger.warn("a kept message for Matrix is unreadable and was dropped", { roomId: p.roomId });
        this.forget(p.seq);
        continue;
      }
      const room = this.room(p.roomId);
      room.queue.push({ kind: "message", roomId: p.roomId, txnId: p.txnId, from: m.from, content: m.content, queuedAt: p.queuedAt, seq: Promise.resolve(p.seq), settle: () => undefined });
      room.waiting = true;
      rooms.add(room);
    }
    this.setCount(this.count + pending.length);
    for (const room of rooms) void this.pump(room);
    if (pending.length > 0) this.o.logger.info("messages kept for Matrix before the restart are being sent", { count: pending.length, rooms: rooms.size });
    return pending.length;
  }

  /** Messages waiting now. */
  get size(): number {
    return this.count;
  }

  /** Resolves when no room has anything left to send (tests, benches). */
  async idle(): Promise<void> {
    while (this.count > 0 || [...this.rooms.values()].some((r) => r.running)) await new Promise((r) => setTimeout(r, 20));
    await this.writes;
  }

  /**
   * Shutdown: nothing new is taken, whatever still waits is written so the next start sends it, and the writes are
   * awaited. Tries under way are not awaited.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const room of this.rooms.values()) {
      if (room.timer) clearTimeout(room.timer);
      room.wake?.();
      this.makeWaiting(room);
    }
    await this.writes;
  }

  private room(id: string): Room {
    let r = this.rooms.get(id);
    if (!r) {
      r = { id, queue: [], running: false, waiting: false, attempt: 0, timer: null, wake: null };
      this.rooms.set(id, r);
    }
    return r;
  }

  private async pump(room: Room): Promise<void> {
    if (room.running) return;
    room.running = true;
    try {
      while (room.queue.length > 0 && !this.closed) {
        const head = room.queue[0]!;
        if (head.kind === "message" && Date.now() - head.queuedAt > this.o.maxAgeMs) {
          room.queue.shift();
          this.setCount(this.count - 1);
          this.forgetEntry(head);
          head.settle();
          this.drop(room, head.from, 1, "expired", 0);
          continue;
        }
        const slow = setTimeout(() => this.makeWaiting(room), this.o.slowMs ?? 1_000);
        let outcome: "ok" | "retry" | "refused";
        let err: unknown = null;
        try {
          await this.o.matrix.deliver(room.id, head.from, this.contentOf(head), head.txnId);
          outcome = "ok";
        } catch (e) {
          err = e;
          outcome = (e as { transient?: boolean }).transient === false ? "refused" : "retry";
        } finally {
          clearTimeout(slow);
        }
        if (outcome === "retry") {
          if (room.attempt === 0) this.o.logger.warn("the homeserver does not take messages for a room; they wait and are tried again", { roomId: room.id, code: codeOf(err) });
          this.o.metrics?.retried?.();
          this.makeWaiting(room);
          await this.backoff(room);
          continue;
        }
        room.queue.shift();
        room.attempt = 0;
        if (head.kind === "gap") continue;
        this.setCount(this.count - 1);
        this.forgetEntry(head);
        head.settle();
        if (outcome === "ok") {
          this.o.metrics?.delivered?.(Date.now() - head.queuedAt);
        } else {
          this.o.metrics?.dropped?.("refused", 1);
          this.o.logger.error("the homeserver refused a message for good; it was dropped", { roomId: room.id, code: codeOf(err) });
        }
      }
    } finally {
      room.running = false;
      if (room.queue.length === 0) {
        if (room.waiting) this.o.logger.info("the homeserver takes a room's messages again", { roomId: room.id });
        room.waiting = false;
        this.rooms.delete(room.id);
      }
    }
  }

  private contentOf(e: Entry | Gap): Record<string, unknown> {
    if (e.kind === "message") return e.content;
    const n = e.lost;
    return {
      msgtype: "m.notice",
      body: `${n} message${n === 1 ? "" : "s"} from IRC could not be kept while the homeserver was unreachable, and ${n === 1 ? "is" : "are"} lost here.`,
      "org.matrix_otr_irc.notice": OUTBOX_NOTICE,
      "org.matrix_otr_irc.lost": n,
    };
  }

  private backoff(room: Room): Promise<void> {
    const first = this.o.retryFirstMs ?? 500;
    const ms = Math.min(this.o.retryMaxMs ?? 30_000, first * 2 ** room.attempt);
    room.attempt++;
    return new Promise((resolve) => {
      room.wake = () => {
        room.wake = null;
        room.timer = null;
        resolve();
      };
      room.timer = setTimeout(room.wake, ms);
    });
  }

  /** The room waits for the homeserver: what it holds that is only in memory is written, in order. */
  private makeWaiting(room: Room): void {
    room.waiting = true;
    const unwritten = room.queue.filter((e): e is Entry => e.kind === "message" && e.seq === null);
    if (unwritten.length > 0) this.record(unwritten);
  }

  /** Writes run one after another, so seq follows the order messages were queued in, across rooms too. */
  private record(entries: Entry[]): void {
    const batch = this.writes.then(async () => {
      try {
        const seqs = await this.o.store.outboxAdd(entries.map((e) => ({
          roomId: e.roomId, txnId: e.txnId, queuedAt: e.queuedAt,
          message: new TextEncoder().encode(JSON.stringify({ from: e.from, content: e.content })),
        })));
        this.o.metrics?.recorded?.(seqs.length);
        if (this.storeFailing) this.o.logger.info("messages waiting for the homeserver are written to the store again");
        this.storeFailing = false;
        return seqs;
      } catch (err) {
        // Still queued in memory and sent when the homeserver answers; only a crash meanwhile would lose them.
        if (!this.storeFailing) this.o.logger.error("messages waiting for the homeserver could not be written to the store; they wait in memory", { count: entries.length, code: codeOf(err) });
        this.storeFailing = true;
        return entries.map(() => null);
      } finally {
        for (const e of entries) e.settle();
      }
    });
    this.writes = batch.catch(() => undefined);
    entries.forEach((e, i) => (e.seq = batch.then((s) => s[i] ?? null, () => null)));
  }

  private forgetEntry(e: Entry): void {
    if (!e.seq) return;
    void e.seq.then((seq) => {
      if (seq !== null) this.forget(seq);
    });
  }

  private forget(seq: number): void {
    this.writes = this.writes.then(() => this.o.store.outboxDelete([seq])).catch((err: unknown) =>
      // Left in the store: sent again at the next start, a duplicate the homeserver drops by its transaction id.
      this.o.logger.warn("a delivered message could not be deleted from the store", { code: codeOf(err) }));
  }

  /** Dropped messages become (or grow) one notice where they would have been. */
  private drop(room: Room, from: string | null, n: number, reason: "overflow" | "expired", at = room.queue.length): void {
    this.o.metrics?.dropped?.(reason, n);
    const near = room.queue[at - 1] ?? room.queue[at];
    const gap = [room.queue[at - 1], room.queue[at]].find((e): e is Gap => e?.kind === "gap");
    if (gap) {
      gap.lost += n;
      return;
    }
    this.o.logger.error("messages for Matrix were dropped: the outbox is full or they waited too long", { roomId: room.id, reason, max_messages: this.o.maxMessages });
    room.queue.splice(at, 0, { kind: "gap", txnId: newTxnId(), from: near?.from ?? from, lost: n });
    void this.pump(room);
  }

  private setCount(n: number): void {
    this.count = n;
    this.o.metrics?.queued?.(n);
  }
}

function newTxnId(): string {
  return `motr.o.${Date.now().toString(36)}.${randomBytes(6).toString("hex")}`;
}

function codeOf(err: unknown): string {
  return (err as { code?: string })?.code ?? (err as Error)?.name ?? "unknown";
}

const MSGTYPE: Record<MessageKind, string> = { text: "m.text", notice: "m.notice", emote: "m.emote" };

/**
 * The Matrix port with its messages sent through the outbox; everything else goes straight to `port`. A send
 * resolves once the message was taken or kept, with no event id (nothing in the bridge uses it).
 */
export function throughOutbox<T extends MatrixPort>(port: T, outbox: MatrixOutbox): T {
  const send: MatrixPort["send"] = async (roomId, from, kind, body, extraContent) => {
    await outbox.send(roomId, from, { ...extraContent, msgtype: MSGTYPE[kind], body });
    return "";
  };
  return new Proxy(port, {
    get: (obj, prop, receiver) => {
      if (prop === "send") return send;
      if (prop === "sendsInOrder") return true;
      const v = Reflect.get(obj, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
    },
  });
}
