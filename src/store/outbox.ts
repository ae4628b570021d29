// The Matrix outbox over SQL (both engines): messages for Matrix rooms the homeserver has not taken yet, sealed,
// in the order the bridge had them, deleted once taken (docs/store.md "IRC → Matrix delivery").
import type { BatchResult, BatchStep, Row, SqlDriver, SqlQueries } from "./driver.js";
import type { Sealer } from "./seal.js";
import type { OutboxEntry, OutboxRecord } from "./types.js";
import * as v from "./validate.js";

export function checkOutboxRecords(records: ReadonlyArray<OutboxRecord & { queuedAt: number }>): Array<OutboxRecord & { queuedAt: number }> {
  return records.map((r) => ({
    roomId: v.checkMatrixId("roomId", "!", r.roomId),
    txnId: v.checkTxnId(r.txnId),
    message: v.checkOutboxMessage(r.message),
    queuedAt: v.checkTimestamp("queuedAt", r.queuedAt),
  }));
}

export async function addMessages(sealer: Sealer, sealedBatch: (steps: readonly BatchStep[]) => Promise<BatchResult[]>,
  records: ReadonlyArray<OutboxRecord & { queuedAt: number }>): Promise<number[]> {
  const checked = checkOutboxRecords(records);
  if (checked.length === 0) return [];
  const sealed = checked.map((r) => sealer.seal("outbox-message", [r.roomId, r.txnId], r.message));
  // seq from the table in the statement itself (RETURNING hands it back), so the batch needs no read first.
  const rows = await sealedBatch(checked.map((r, i) => ({
    op: "all" as const,
    sql: `INSERT INTO outbox_messages (seq, room_id, txn_id, sealed, queued_at)
          VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox_messages), ?, ?, ?, ?) RETURNING seq`,
    params: [r.roomId, r.txnId, sealed[i]!, r.queuedAt],
  })));
  return rows.map((r) => Number((r as Row[])[0]!.seq));
}

export async function deleteMessages(db: SqlDriver, seqs: readonly number[]): Promise<void> {
  const checked = v.checkSeqs(seqs);
  if (checked.length === 0) return;
  await db.batch(checked.map((s) => ({ op: "run" as const, sql: "DELETE FROM outbox_messages WHERE seq = ?", params: [s] })));
  // The bodies were message text (sealed), decrypted OTR plaintext among them: out of the files too.
  db.eraseSoon?.();
}

export async function pendingMessages(db: SqlDriver, open: (roomId: string, txnId: string, sealed: Uint8Array) => Promise<Uint8Array>): Promise<OutboxEntry[]> {
  const rows = await db.all("SELECT seq, room_id, txn_id, sealed, queued_at FROM outbox_messages ORDER BY seq");
  const out: OutboxEntry[] = [];
  for (const r of rows) {
    const roomId = String(r.room_id);
    const txnId = String(r.txn_id);
    out.push({ seq: Number(r.seq), roomId, txnId, queuedAt: Number(r.queued_at), message: await open(roomId, txnId, r.sealed as Uint8Array) });
  }
  return out;
}

export async function resealOutbox(q: SqlQueries, oldSealer: Sealer, newSealer: Sealer): Promise<number> {
  let count = 0;
  for (const r of await q.all("SELECT seq, room_id, txn_id, sealed FROM outbox_messages")) {
    const binding = [String(r.room_id), String(r.txn_id)];
    const plain = oldSealer.open("outbox-message", binding, r.sealed as Uint8Array);
    await q.run("UPDATE outbox_messages SET sealed = ? WHERE seq = ?", [newSealer.seal("outbox-message", binding, plain), Number(r.seq)]);
    count++;
  }
  return count;
}
