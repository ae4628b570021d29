// Saved conversation state (src/otr/snapshot.ts): an established conversation exported, imported into a new
// OtrConversation on the same account, and continued by the untouched peer without a new AKE; the counter
// high-water mark under crashes at every point of the write-before-send cycle (no (key, counter) pair is ever
// used twice, the peer reads everything that was sent); stateDirty only when later traffic depends on it; the
// finished state and SMP; damaged or foreign bytes never throw and change nothing.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { establish, makePair, pump, receivedTexts, say, snapshot, type Side } from "./fixtures.js";
import { OtrConversation, SEND_COUNTER_RESERVE, decodeSnapshot, type OtrEvent, type OtrResult } from "../../src/otr/index.js";
import { parseIncoming, newReassembler } from "../../src/otr/wireio.js";

/** A new conversation on the side's account (the process restarted), resumed from `saved`. */
function restore(side: Side, saved: Uint8Array | null): void {
  side.conv = new OtrConversation(side.account, "peer");
  if (saved !== null) {
    const r = side.conv.importState(saved);
    assert.ok(r.ok, JSON.stringify(r));
  }
}

/** Every data message a side put on the wire: (their instance, key ids, counter), and its next_dh. */
class WireLog {
  readonly used = new Map<string, number>();
  readonly nextDh = new Map<number, bigint>();
  reuses = 0;
  announceConflicts = 0;
  private readonly reasm = newReassembler(0x22222222);
  record(line: string): void {
    let m = parseIncoming(line);
    if (m.kind === "fragment") {
      const r = this.reasm.add(m.fragment, 0);
      if (r.complete === null) return;
      m = parseIncoming(r.complete);
    }
    if (m.kind !== "data") return;
    const f = m.fields;
    const key = `${m.senderInstance}/${m.receiverInstance}/${f.senderKeyId}/${f.recipientKeyId}/${Buffer.from(f.ctr).toString("hex")}`;
    if (this.used.has(key)) this.reuses++;
    this.used.set(key, (this.used.get(key) ?? 0) + 1);
    // next_dh is our key senderKeyId+1: one key id must always stand for one key.
    const prev = this.nextDh.get(f.senderKeyId + 1);
    if (prev !== undefined && prev !== f.nextDh) this.announceConflicts++;
    this.nextDh.set(f.senderKeyId + 1, f.nextDh);
  }
}

test("an exported conversation is continued by a new one on the same account: no AKE, both directions, keys rotate", () => {
  const [a, b] = makePair();
  establish(a, b);
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(receivedTexts(say(a, b, `a${i}`)), [`a${i}`]);
    assert.deepEqual(receivedTexts(say(b, a, `b${i}`)), [`b${i}`]);
  }
  assert.ok(a.conv.stateDirty, "the rotations since the AKE are not saved yet");
  const bytes = a.conv.exportState();
  assert.ok(bytes);
  const statusBefore = a.conv.status();
  restore(a, bytes);
  assert.deepEqual(a.conv.status(), statusBefore, "same state, fingerprint, ssid and instance");
  assert.equal(a.conv.stateDirty, false);
  const bEvents = b.events.length;
  const aEvents = a.events.length;
  for (let i = 0; i < 6; i++) {
    assert.deepEqual(receivedTexts(say(a, b, `after ${i}`)), [`after ${i}`]);
    assert.deepEqual(receivedTexts(say(b, a, `back ${i}`)), [`back ${i}`]);
  }
  const types = [...a.events.slice(aEvents), ...b.events.slice(bEvents)].map((e) => e.type);
  assert.ok(!types.includes("gone-secure") && !types.includes("unreadable") && !types.includes("still-secure"), types.join(","));
});

test("the counter high-water mark: sends inside a saved reservation need no write, the restored sender starts above it", () => {
  const [a, b] = makePair();
  establish(a, b);
  say(b, a, "rotate once");
  let saved = a.conv.exportState();
  a.conv.markSaved();
  const log = new WireLog();
  let writes = 0;
  const sendA = (text: string): void => {
    const r = a.conv.send(text);
    if (a.conv.stateDirty) {
      saved = a.conv.exportState();
      a.conv.markSaved();
      writes++;
    }
    for (const l of r.toSend) log.record(l);
    pump(a, b, r.toSend);
  };
  const n = Number(SEND_COUNTER_RESERVE) * 3;
  for (let i = 0; i < n; i++) sendA(`m${i}`);
  // One write for the first send (our next key and the first reservation), then one per reservation.
  assert.equal(writes, 3, "a write per SEND_COUNTER_RESERVE sends");
  // Crash with 5 sends since the last write: the restored sender must not reuse their counters.
  restore(a, saved);
  for (let i = 0; i < n; i++) sendA(`r${i}`);
  assert.equal(log.reuses, 0);
  assert.equal(log.announceConflicts, 0);
  assert.deepEqual(receivedTexts(b.events).filter((t) => /^[mr]\d+$/.test(t)).length, 2 * n);
  assert.ok(!b.events.some((e) => e.type === "unreadable"));
});

/** SHA-256-based PRNG so a failing seed can be replayed. */
function rng(seed: string): () => number {
  let i = 0;
  return () => createHash("sha256").update(`${seed}/${i++}`).digest().readUInt32BE(0) / 2 ** 32;
}

test("crashes at random points of the write-before-send cycle, both directions: no (key, counter) reuse, nothing unreadable", () => {
  for (const seed of ["s1", "s2", "s3", "s4"]) {
    const rand = rng(seed);
    const [a, b] = makePair({ seed: `alice-${seed}` }, { seed: `bob-${seed}` });
    establish(a, b);
    b.events = [];
    let saved: Uint8Array | null = a.conv.exportState();
    a.conv.markSaved();
    const log = new WireLog();
    const aEvents: OtrEvent[] = [];
    let crashes = 0;
    let sentA = 0;
    /** Runs one operation of A's like the bridge: maybe crash before the write, between write and send, or after. */
    const stepA = (op: () => OtrResult): void => {
      const r = op();
      const crash = rand();
      if (crash < 0.1) { crashes++; restore(a, saved); return; } // before the write: nothing left the process
      if (a.conv.stateDirty) {
        saved = a.conv.exportState();
        a.conv.markSaved();
      }
      if (crash < 0.2) { crashes++; restore(a, saved); return; } // written, not sent
      aEvents.push(...r.events);
      for (const l of r.toSend) log.record(l);
      for (const l of r.toSend) {
        const rb = b.conv.receive(l);
        b.events.push(...rb.events);
        for (const back of rb.toSend) stepA(() => a.conv.receive(back));
      }
      if (crash < 0.3) { crashes++; restore(a, saved); }
    };
    for (let i = 0; i < 300; i++) {
      if (rand() < 0.5) {
        stepA(() => {
          const r = a.conv.send(`a-${seed}-${i}`);
          assert.equal(r.outcome, "encrypted");
          return r;
        });
        sentA++;
      } else {
        const r = b.conv.send(`b-${seed}-${i}`);
        assert.equal(r.outcome, "encrypted");
        for (const l of r.toSend) stepA(() => a.conv.receive(l));
      }
    }
    assert.ok(crashes > 50, `crashes: ${crashes}`);
    assert.equal(log.reuses, 0, `seed ${seed}: (key, counter) pairs reused`);
    assert.equal(log.announceConflicts, 0, `seed ${seed}: one key id announced with two keys`);
    const bad = [...b.events, ...aEvents].filter((e) => e.type === "unreadable" || e.type === "gone-secure" || e.type === "malformed");
    assert.deepEqual(bad, [], `seed ${seed}`);
    const got = receivedTexts(b.events).filter((t) => t.startsWith("a-"));
    assert.equal(new Set(got).size, got.length, "no message read twice");
    assert.ok(got.length > sentA / 2, `B read ${got.length} of ${sentA} (the rest were lost in crashes before they left)`);
    assert.ok(!b.events.some((e) => e.type === "received" && !e.encrypted), "nothing in plaintext");
    assert.equal(a.conv.status().state, "encrypted");
  }
});

test("stateDirty: set by the AKE, a received message, a new key of ours and a new reservation; not by sends inside one", () => {
  const [a, b] = makePair();
  establish(a, b);
  assert.ok(a.conv.stateDirty, "after the AKE");
  a.conv.markSaved();
  say(a, b, "first");
  assert.ok(a.conv.stateDirty, "our next key was announced and a reservation made");
  a.conv.markSaved();
  say(a, b, "second");
  assert.equal(a.conv.stateDirty, false, "inside the reservation");
  say(b, a, "reply");
  assert.ok(a.conv.stateDirty, "a received counter and a rotation");
});

test("a finished conversation stays finished after a restore: nothing goes out in plaintext", () => {
  const [a, b] = makePair();
  establish(a, b);
  pump(b, a, b.conv.end().toSend);
  assert.equal(a.conv.status().state, "finished");
  assert.ok(a.conv.stateDirty);
  const bytes = a.conv.exportState();
  assert.ok(bytes);
  restore(a, bytes);
  assert.equal(a.conv.status().state, "finished");
  assert.equal(a.conv.send("secret").outcome, "refused");
  // We end too: nothing left to keep.
  a.conv.end();
  assert.equal(a.conv.exportState(), null);
  assert.ok(a.conv.stateDirty, "the saved copy must be deleted");
});

test("an SMP under way is dropped with a flag; a new SMP after the restore succeeds", () => {
  const [a, b] = makePair();
  establish(a, b);
  const start = a.conv.smpStart(new TextEncoder().encode("s3cret"), "q?");
  const rb = b.conv.receive(start.toSend[0]!);
  assert.ok(rb.events.some((e) => e.type === "smp-ask"));
  const bytes = a.conv.exportState()!;
  restore(a, null);
  const r = a.conv.importState(bytes);
  assert.deepEqual(r, { ok: true, smpDropped: true });
  // b answers the old exchange: the restored side aborts it instead of crashing or accepting.
  const events: OtrEvent[] = [];
  const ans = b.conv.smpRespond(new TextEncoder().encode("s3cret"));
  for (const l of ans.toSend) {
    const x = a.conv.receive(l);
    events.push(...x.events);
    for (const back of x.toSend) b.conv.receive(back);
  }
  assert.ok(!events.some((e) => e.type === "smp-success"));
  a.events = [];
  b.events = [];
  const again = a.conv.smpStart(new TextEncoder().encode("s3cret"));
  pump(a, b, again.toSend);
  const bResp = b.conv.smpRespond(new TextEncoder().encode("s3cret"));
  pump(b, a, bResp.toSend);
  assert.ok(a.events.some((e) => e.type === "smp-success"), JSON.stringify(a.events.map((e) => e.type)));
});

test("damaged, truncated or foreign bytes are refused with a code, never throw, and leave the conversation untouched", () => {
  const [a, b] = makePair();
  establish(a, b);
  say(a, b, "x");
  say(b, a, "y");
  const bytes = a.conv.exportState()!;
  const d = decodeSnapshot(bytes);
  assert.ok(d.ok);
  assert.equal(d.snapshot.sessions.length, 1);
  for (let cut = 0; cut < bytes.length; cut += 7) {
    const fresh = new OtrConversation(a.account, "peer");
    const before = snapshot(fresh);
    const r = fresh.importState(bytes.slice(0, cut));
    assert.equal(r.ok, false, `truncated at ${cut}`);
    assert.equal(snapshot(fresh), before);
  }
  const wrongVersion = bytes.slice();
  wrongVersion[4] = 99;
  assert.deepEqual(new OtrConversation(a.account, "peer").importState(wrongVersion), { ok: false, code: "snapshot-version" });
  assert.deepEqual(new OtrConversation(b.account, "peer").importState(bytes), { ok: false, code: "snapshot-other-account" });
  for (let i = 0; i < bytes.length; i++) {
    const flipped = bytes.slice();
    flipped[i] = flipped[i]! ^ 0x80;
    assert.doesNotThrow(() => new OtrConversation(a.account, "peer").importState(flipped));
  }
  assert.throws(() => a.conv.importState(bytes), /already has a session/, "importing over a live session is caller misuse");
});
