// Matrix → IRC at least once (docs/store.md "Matrix → IRC delivery"). Every message event that can become IRC
// lines is recorded in the store, sealed, before its appservice transaction is answered; it is marked done once
// every line it caused has been taken by the IRC socket (or it led to none). After a crash the events still
// pending are handed on again, in arrival order, before anything new of their rooms. The homeserver's retries and
// replays of events already recorded are dropped by event id.
//
// While the store cannot write (down, disk full), transactions are refused: the homeserver keeps them and sends
// them again, so nothing is lost and nothing is handed on whose state could not be saved. Each room whose events
// were refused is told once per outage; a write is tried every few seconds, and once one succeeds the homeserver
// is asked to retry at once instead of waiting out its backoff (up to 512 s in Synapse).
//
// The one window that remains: a line the socket took just before the process died, whose done mark was not yet
// written, goes out again after the restart. Each event handed on again is counted (matrix_replayed_events_total):
// an upper bound of such duplicates, at most the events in flight at the kill.
import type { InboxEvent, Store } from "../store/types.js";
import type { BridgeLogger, EventInbox } from "./ports.js";

export interface InboxEventRecord {
  eventId: string;
  roomId: string;
  /** The event as the Matrix side hands it on (its clear form when it came encrypted). */
  event: Record<string, unknown>;
}

export interface MatrixInboxOptions {
  store: Store;
  logger: BridgeLogger;
  /** Events handed on again after a restart (the metric). */
  onReplayed?(count: number): void;
  /** The store cannot record: rooms whose events the homeserver will send again, each reported once per outage. */
  onUnavailable?(roomIds: string[]): void;
  /** A write succeeded again after an outage: ask the homeserver to send what it kept now. */
  onRecovered?(): void;
  /** How often a write is tried while the store is down (default 2 s). */
  probeIntervalMs?: number;
}

/** Store errors that say the engine cannot write now, not that this data is wrong: worth waiting for. */
const UNAVAILABLE = new Set(["database-error", "database-unavailable"]);

interface Outage {
  since: number;
  told: Set<string>;
  timer: ReturnType<typeof setInterval>;
  probing: boolean;
}

const PROBE_KEY = "inbox-write-probe";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class MatrixInbox implements EventInbox {
  private readonly toMark = new Set<string>();
  private marking: Promise<void> | null = null;
  /**
   * Until the pending events were handed on (replay), a new event is recorded but not passed on live: replay
   * reads it back with the pending ones and hands it on after them, so nothing new of a room overtakes them.
   * Recording must not wait for the replay itself: the replay runs once the bridge has started, and the start
   * waits for transactions (the encryption probe) queued behind the one being recorded.
   */
  private replayed = false;
  /** Recording and the replay's read-and-hand-on exclude each other, so no event falls between the two. */
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;
  private outage: Outage | null = null;

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  constructor(private readonly o: MatrixInboxOptions) {}

  /**
   * Called by the appservice hook before the transaction is answered: durable when it resolves. Returns per event
   * whether it is new; a rejection makes the hook answer 500, and the homeserver sends the transaction again.
   */
  async record(events: readonly InboxEventRecord[]): Promise<boolean[]> {
    if (events.length === 0) return [];
    // During an outage each transaction would fail the same way: refuse it without a write, the probe decides when
    // writes work again.
    if (this.outage) {
      this.noteRefused(events);
      throw Object.assign(new Error("the store cannot record Matrix events"), { code: "store-unavailable" });
    }
    let recorded: { fresh: boolean[]; live: boolean };
    try {
      recorded = await this.exclusive(async () => {
        const f = await this.o.store.inboxRecord(events.map((e) => ({ eventId: e.eventId, roomId: e.roomId, event: encoder.encode(JSON.stringify(e.event)) })));
        return { fresh: f, live: this.replayed };
      });
    } catch (err) {
      const code = (err as { code?: string })?.code ?? "unknown";
      // A write of our own tells an outage from a transaction the store refuses for its content (which, refused,
      // the homeserver would send forever, blocking every room behind it).
      if (UNAVAILABLE.has(code) && !this.closed && !(await this.writes())) {
        this.startOutage(code);
        this.noteRefused(events);
        throw Object.assign(new Error("the store cannot record Matrix events"), { code: "store-unavailable", cause: err });
      }
      // About these events, not the store: handed on unrecorded, at most once, as before the inbox.
      this.o.logger.error("Matrix events could not be recorded; handed on without the restart guarantee", { count: events.length, code });
      return events.map(() => true);
    }
    const { fresh, live } = recorded;
    // Ids only: the order the homeserver delivered in, for diagnosing order (Synapse can deliver a transaction
    // late after an appservice outage) without content.
    for (const [i, e] of events.entries()) if (fresh[i]) this.o.logger.debug("Matrix event recorded", { eventId: e.eventId, roomId: e.roomId });
    const dropped = fresh.filter((f) => !f).length;
    if (dropped > 0) this.o.logger.debug("Matrix events delivered again were dropped by event id", { count: dropped });
    // Before the replay, new events are handed on by it (they are pending in the store), not live.
    return live ? fresh : fresh.map(() => false);
  }

  /** Whether the store refused writes at the last try (for /ready: reads may work while writes fail). */
  get storeDown(): boolean {
    return this.outage !== null;
  }

  private startOutage(code: string): void {
    if (this.outage) return;
    this.o.logger.error("the store cannot write: Matrix transactions are refused (the homeserver keeps them) until it can", { code });
    const timer = setInterval(() => void this.probe(), this.o.probeIntervalMs ?? 2_000);
    timer.unref?.();
    this.outage = { since: Date.now(), told: new Set(), timer, probing: false };
  }

  private noteRefused(events: readonly InboxEventRecord[]): void {
    const o = this.outage;
    if (!o) return;
    const rooms = [...new Set(events.map((e) => e.roomId))].filter((r) => !o.told.has(r));
    for (const r of rooms) o.told.add(r);
    if (rooms.length > 0) this.o.onUnavailable?.(rooms);
  }

  /** A small write, since a read can succeed on a full disk. */
  private writes(): Promise<boolean> {
    return this.o.store.putState(PROBE_KEY, String(Date.now())).then(() => true, () => false);
  }

  private async probe(): Promise<void> {
    const o = this.outage;
    if (!o || o.probing) return;
    o.probing = true;
    const ok = await this.writes();
    o.probing = false;
    if (!ok || this.outage !== o) return;
    clearInterval(o.timer);
    this.outage = null;
    this.o.logger.info("the store writes again: the homeserver is asked to send the refused transactions", { down_seconds: Math.round((Date.now() - o.since) / 1000), rooms: o.told.size });
    this.o.onRecovered?.();
  }

  /**
   * The events still pending from the last run, in arrival order; `handOn` gets each (synchronously, so their
   * rooms' queues take them in this order), then recording opens.
   */
  replay(handOn: (event: Record<string, unknown>) => void): Promise<number> {
    return this.exclusive(() => this.replayLocked(handOn));
  }

  private async replayLocked(handOn: (event: Record<string, unknown>) => void): Promise<number> {
    let pending: InboxEvent[] = [];
    try {
      pending = await this.o.store.inboxPending();
    } catch (err) {
      // A store that cannot open them (sealed-data-corrupt, database-error) must not also stop new events: they
      // stay pending and are tried again at the next start.
      this.o.logger.error("Matrix events from before the restart could not be read; they stay pending", { code: (err as { code?: string })?.code ?? "unknown" });
    } finally {
      const events = pending.flatMap((p) => this.parse(p));
      for (const ev of events) {
        this.o.logger.debug("Matrix event handed on again", { eventId: ev["event_id"], roomId: ev["room_id"] });
        handOn(ev);
      }
      if (events.length > 0) {
        this.o.onReplayed?.(events.length);
        this.o.logger.info("Matrix events from before the restart handed on again", { count: events.length });
      }
      this.replayed = true;
    }
    return pending.length;
  }

  done(eventId: string): void {
    if (this.closed) return;
    this.toMark.add(eventId);
    this.marking ??= this.markLoop();
  }

  /**
   * Shutdown, before the connections quit: marks from now on are ignored, so events whose lines the quit drops stay
   * pending and go out after the restart; the marks already made are written before this resolves.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.outage) clearInterval(this.outage.timer);
    await this.marking;
  }

  /** One write for every mark that came in while the previous write ran: a burst costs a few fsyncs, not one each. */
  private async markLoop(): Promise<void> {
    while (this.toMark.size > 0) {
      const ids = [...this.toMark];
      this.toMark.clear();
      try {
        await this.o.store.inboxDone(ids);
      } catch (err) {
        // Not fatal: the events stay pending and are handed on again after a restart (a duplicate, not a loss).
        this.o.logger.warn("Matrix events could not be marked done", { count: ids.length, code: (err as { code?: string })?.code ?? "unknown" });
      }
    }
    this.marking = null;
  }

  private parse(p: InboxEvent): Record<string, unknown>[] {
    try {
      const ev = JSON.parse(decoder.decode(p.event)) as unknown;
      if (ev && typeof ev === "object" && !Array.isArray(ev)) return [ev as Record<string, unknown>];
    } catch {
      // fall through: reported without content
    }
    this.o.logger.warn("a recorded Matrix event is unreadable and was dropped", { eventId: p.eventId });
    this.done(p.eventId);
    return [];
  }
}
