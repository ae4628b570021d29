// Matrix → IRC at least once (docs/store.md "Matrix → IRC delivery"). Every message event that can become IRC
// lines is recorded in the store, sealed, before its appservice transaction is answered; it is marked done once
// every line it caused has been taken by the IRC socket (or it led to none). After a crash the events still
// pending are handed on again, in arrival order, before anything new of their rooms. The homeserver's retries and
// replays of events already recorded are dropped by event id.
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
}

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
    let recorded: { fresh: boolean[]; live: boolean };
    try {
      recorded = await this.exclusive(async () => {
        const f = await this.o.store.inboxRecord(events.map((e) => ({ eventId: e.eventId, roomId: e.roomId, event: encoder.encode(JSON.stringify(e.event)) })));
        return { fresh: f, live: this.replayed };
      });
    } catch (err) {
      // The store cannot take them (down, disk full): hand them on unrecorded, at most once, as before the inbox.
      // Refusing the transaction instead would leave the user unanswered while the homeserver retries into its
      // growing backoff; handed on, a message whose OTR state cannot be saved gets the not-saved notice.
      this.o.logger.error("Matrix events could not be recorded; handed on without the restart guarantee", { count: events.length, code: (err as { code?: string })?.code ?? "unknown" });
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
