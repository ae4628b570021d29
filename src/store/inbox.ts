// The Matrix inbox over SQL (both engines): events recorded before their appservice transaction is answered, kept
// sealed until the bridge has written every IRC line they caused, then reduced to their id for a while so a
// redelivered event is recognised and dropped (docs/store.md "Matrix → IRC delivery").
import type { BatchResult, BatchStep, SqlDriver, SqlQueries } from "./driver.js";
import type { Sealer } from "./seal.js";
import type { InboxEvent, InboxRecord } from "./types.js";
import * as v from "./validate.js";

/** How long a done event id is remembered: Synapse retries a transaction for hours at most, a replay is refused within a day. */
export const INBOX_DONE_RETENTION_MS = 24 * 60 * 60 * 1000;
/** And at most this many done ids, whatever their age, so a busy day cannot grow the table without bound. */
export const INBOX_DONE_MAX = 10_000;

export function checkRecords(events: readonly InboxRecord[]): InboxRecord[] {
  return events.map((e) => ({
    eventId: v.checkMatrixId("eventId", "$", e.eventId),
    roomId: v.checkMatrixId("roomId", "!", e.roomId),
    event: v.checkInboxEvent(e.event),
  }));
}

export async function recordEvents(sealer: Sealer, sealedBatch: (steps: readonly BatchStep[]) => Promise<BatchResult[]>, events: readonly InboxRecord[]): Promise<boolean[]> {
  const checked = checkRecords(events);
  if (checked.length === 0) return [];
  const sealed = checked.map((e) => sealer.seal("inbox-event", [e.roomId, e.eventId], e.event));
  const now = Date.now();
  // seq from the table in the statement itself, so the batch needs no read first; a redelivered id takes none.
  const changed = await sealedBatch(checked.map((e, i) => ({
    op: "run" as const,
    sql: `INSERT INTO inbox_events (event_id, room_id, seq, sealed, received_at)
          VALUES (?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM inbox_events), ?, ?) ON CONFLICT (event_id) DO NOTHING`,
    params: [e.eventId, e.roomId, sealed[i]!, now],
  })));
  return changed.map((n) => (n as number) > 0);
}

export async function markDone(db: SqlDriver, eventIds: readonly string[]): Promise<void> {
  const ids = eventIds.map((id) => v.checkMatrixId("eventId", "$", id));
  if (ids.length === 0) return;
  const now = Date.now();
  await db.batch([
    ...ids.map((id) => ({ op: "run" as const, sql: "UPDATE inbox_events SET sealed = NULL, done_at = ? WHERE event_id = ? AND done_at IS NULL", params: [now, id] })),
    { op: "run", sql: "DELETE FROM inbox_events WHERE done_at IS NOT NULL AND done_at < ?", params: [now - INBOX_DONE_RETENTION_MS] },
    // Beyond the newest INBOX_DONE_MAX done ids; no such row makes the bound NULL and the DELETE a no-op.
    { op: "run", sql: `DELETE FROM inbox_events WHERE done_at IS NOT NULL AND seq <= (
        SELECT seq FROM inbox_events WHERE done_at IS NOT NULL ORDER BY seq DESC LIMIT 1 OFFSET ?)`, params: [INBOX_DONE_MAX] },
  ]);
  // The bodies were message text (sealed): get their bytes out of the files too where the engine allows.
  db.eraseSoon?.();
}

export async function pendingEvents(db: SqlDriver, open: (roomId: string, eventId: string, sealed: Uint8Array) => Promise<Uint8Array>): Promise<InboxEvent[]> {
  const rows = await db.all("SELECT event_id, room_id, seq, sealed, received_at FROM inbox_events WHERE done_at IS NULL ORDER BY seq");
  const out: InboxEvent[] = [];
  for (const r of rows) {
    const eventId = String(r.event_id);
    const roomId = String(r.room_id);
    out.push({ eventId, roomId, seq: Number(r.seq), receivedAt: Number(r.received_at), event: await open(roomId, eventId, r.sealed as Uint8Array) });
  }
  return out;
}

export async function resealInbox(q: SqlQueries, oldSealer: Sealer, newSealer: Sealer): Promise<number> {
  let count = 0;
  for (const r of await q.all("SELECT event_id, room_id, sealed FROM inbox_events WHERE sealed IS NOT NULL")) {
    const binding = [String(r.room_id), String(r.event_id)];
    const plain = oldSealer.open("inbox-event", binding, r.sealed as Uint8Array);
    await q.run("UPDATE inbox_events SET sealed = ? WHERE event_id = ?", [newSealer.seal("inbox-event", binding, plain), binding[1]!]);
    count++;
  }
  return count;
}
