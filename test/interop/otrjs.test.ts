// Interop with otr.js (npm `otr` 0.2.16), an independent OTR v2/v3 implementation, for AKE and data messages.
// otr.js has a known bug: it turns the AKE key r into an AES key through a hex string without leading zeros
// (and sends its own r as an MPI, dropping a leading zero byte), so about 1 AKE in 10-16 fails whenever r
// starts with a zero nibble. The soak below does not retry: it counts failures and requires each one to be
// explained by that bug, read off the wire (the revealed r in the reveal-signature message).
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { OtrAccount, OtrConversation, POLICY, type OtrEvent } from "../../src/otr/index.js";
import { OtrjsPeer, otrjsVectorKey } from "../harness/otrjs.js";
import { ourKey, randomInstanceTag, utf8Text, normFp, hex } from "./link.js";
import { fingerprint, dsaPublicKey } from "../../src/otr/crypto/dsa.js";

const TIMEOUT = 600_000;
const SOAK = Number(process.env.OTR_OTRJS_SOAK ?? 300);

class JsLink {
  readonly ourEvents: OtrEvent[] = [];
  readonly trace: { from: "ours" | "otrjs"; line: string }[] = [];
  conv: OtrConversation;
  constructor(readonly js: OtrjsPeer, readonly account: OtrAccount) { this.conv = new OtrConversation(account, "jsuser"); }

  async pump(fromOurs: string[]): Promise<void> {
    const toJs = [...fromOurs];
    const toOurs = await this.js.drain();
    for (let guard = 0; toJs.length || toOurs.length; guard++) {
      if (guard > 10_000) throw new Error("message storm");
      const l = toJs.shift();
      if (l !== undefined) {
        this.trace.push({ from: "ours", line: l });
        this.js.receive(l);
        toOurs.push(...(await this.js.drain()));
      }
      const m = toOurs.shift();
      if (m !== undefined) {
        this.trace.push({ from: "otrjs", line: m });
        const r = this.conv.receive(m);
        this.ourEvents.push(...r.events);
        toJs.push(...r.toSend);
      }
    }
  }
  take() { return { ours: this.ourEvents.splice(0), js: this.js.takeEvents() }; }
}

function newLink(o: { v2only?: boolean; fragmentSize?: number } = {}): JsLink {
  const js = new OtrjsPeer({ key: otrjsVectorKey(0).key, allowV3: !o.v2only, fragmentSize: o.fragmentSize ?? 0 });
  const account = new OtrAccount({ privateKey: ourKey(), instanceTag: randomInstanceTag(), policy: POLICY.MANUAL,
    maxFragmentSize: o.fragmentSize ?? 0 });
  return new JsLink(js, account);
}

async function ake(link: JsLink, initiator: "ours" | "otrjs"): Promise<{ ok: boolean; ours: OtrEvent[]; js: ReturnType<OtrjsPeer["takeEvents"]> }> {
  if (initiator === "ours") {
    const r = link.conv.startAke();
    link.ourEvents.push(...r.events);
    await link.pump(r.toSend);
  } else {
    link.js.query();
    await link.pump([]);
  }
  const evs = link.take();
  const ok = evs.ours.filter((e) => e.type === "gone-secure").length === 1 && link.js.encrypted;
  return { ok, ...evs };
}

/** Whole encoded messages of a trace, fragments put back together (pieces arrive in order here). */
function wholeMessages(trace: JsLink["trace"]): { from: string; line: string }[] {
  const out: { from: string; line: string }[] = [];
  const pending = new Map<string, string>();
  for (const { from, line } of trace) {
    const f = /^\?OTR(?:\|[0-9a-fA-F]+\|[0-9a-fA-F]+)?,0*(\d+),0*(\d+),([^,]*),$/.exec(line);
    if (!f) { out.push({ from, line }); continue; }
    const k = Number(f[1]), n = Number(f[2]);
    const acc = (k === 1 ? "" : pending.get(from) ?? "") + f[3]!;
    if (k === n) { pending.delete(from); out.push({ from, line: acc }); } else pending.set(from, acc);
  }
  return out;
}

/** The revealed r of the AKE in this trace (the reveal-signature message, type 0x11), or null. */
function revealedR(trace: JsLink["trace"]): { r: Uint8Array; from: string } | null {
  for (const { from, line } of wholeMessages(trace)) {
    const m = /^\?OTR:([A-Za-z0-9+/=]+)\.$/.exec(line);
    if (!m) continue;
    const raw = new Uint8Array(Buffer.from(m[1]!, "base64"));
    if (raw[2] !== 0x11) continue;
    const o = raw[1] === 3 ? 11 : 3;
    const len = new DataView(raw.buffer, raw.byteOffset).getUint32(o);
    return { r: raw.slice(o + 4, o + 4 + len), from };
  }
  return null;
}
/** otr.js's bug bites when r, as a big-endian number, has a leading zero nibble (or arrives shortened). */
const rBugExplains = (x: { r: Uint8Array } | null) => x !== null && (x.r.length !== 16 || x.r[0]! < 0x10);

/**
 * An AKE with a fresh otr.js peer. A failed attempt is accepted only when otr.js's r bug explains it (read off
 * the wire) and is reported as a diagnostic; then a fresh pair tries again, at most 5 times in all.
 */
async function akeAllowingKnownBug(make: () => JsLink, initiator: "ours" | "otrjs", t: { diagnostic(s: string): void }) {
  for (let attempt = 1; ; attempt++) {
    const link = make();
    const a = await ake(link, initiator);
    if (a.ok) return { link, a };
    const r = revealedR(link.trace);
    assert.ok(rBugExplains(r), `AKE failed and otr.js's r bug does not explain it: ${JSON.stringify({ ours: a.ours, js: a.js, r: r && hex(r.r) })}`);
    t.diagnostic(`attempt ${attempt}: AKE failed through otr.js's r bug (r=${hex(r!.r)}, sent by ${r!.from})`);
    assert.ok(attempt < 5, "5 AKEs in a row failed");
  }
}

describe("interop with otr.js", { timeout: TIMEOUT }, () => {
  before(() => { ourKey(); });

  for (const v2only of [false, true]) {
    for (const initiator of ["ours", "otrjs"] as const) {
      for (const fragmentSize of [0, 400]) {
        test(`v${v2only ? 2 : 3}, ${initiator} starts${fragmentSize ? `, fragments of ${fragmentSize}` : ""}: AKE and messages both ways`, { timeout: TIMEOUT }, async (t) => {
          const { link, a } = await akeAllowingKnownBug(() => newLink({ v2only, fragmentSize }), initiator, t);
          const gs = a.ours.find((e) => e.type === "gone-secure") as Extract<OtrEvent, { type: "gone-secure" }>;
          assert.equal(gs.version, v2only ? 2 : 3);
          assert.equal(normFp(gs.fingerprint), normFp(otrjsVectorKey(0).fingerprint));
          assert.equal(normFp(link.js.theirFingerprint()), hex(fingerprint(dsaPublicKey(ourKey()))));
          for (const [i, size] of [1, 400, 3000].entries()) {
            const text = utf8Text(size, i);
            const s = link.conv.send(text);
            assert.equal(s.outcome, "encrypted");
            link.ourEvents.push(...s.events);
            await link.pump(s.toSend);
            let evs = link.take();
            assert.deepEqual(evs.js.filter((e) => e.type === "ui").map((e) => [e.type === "ui" && e.text, e.type === "ui" && e.encrypted]),
              [[text, true]], `otr.js got our ${size}-byte message (events ${JSON.stringify(evs.js)})`);
            const back = utf8Text(size, i + 3);
            link.js.send(back);
            await link.pump([]);
            evs = link.take();
            assert.deepEqual(evs.ours.filter((e) => e.type === "received").map((e) => e.type === "received" && [e.text, e.encrypted]),
              [[back, true]], `we got otr.js's ${size}-byte message (events ${JSON.stringify(evs.ours)})`);
            assert.deepEqual(evs.ours.filter((e) => e.type === "malformed" || e.type === "unreadable"), []);
          }
          if (fragmentSize) {
            for (const { from, line } of link.trace) {
              if (from === "ours" && /^\?OTR[:|,]/.test(line)) assert.ok(line.length <= fragmentSize, `our line of ${line.length} chars`);
            }
          }
        });
      }
    }
  }

  test(`${SOAK} fresh AKEs with otr.js, alternating roles, v3/v2, unfragmented/400: every failure is otr.js's known r bug`, { timeout: 30 * 60_000 }, async (t) => {
    let failed = 0, rBug = 0, msgsOk = 0;
    const unexplained: string[] = [];
    for (let i = 0; i < SOAK; i++) {
      const link = newLink({ v2only: (i >> 2) % 2 === 1, fragmentSize: (i >> 1) % 2 === 1 ? 400 : 0 });
      const initiator = i % 2 === 0 ? "ours" : "otrjs";
      const a = await ake(link, initiator);
      if (!a.ok) {
        failed++;
        const r = revealedR(link.trace);
        if (rBugExplains(r)) rBug++;
        else unexplained.push(`AKE ${i} (${initiator} started): r=${r ? hex(r.r) : "none"} ours=${JSON.stringify(a.ours)} js=${JSON.stringify(a.js)}`);
        continue;
      }
      const s = link.conv.send(`m${i}`);
      await link.pump(s.toSend);
      link.js.send(`r${i}`);
      await link.pump([]);
      const evs = link.take();
      const jsGot = evs.js.filter((e) => e.type === "ui").map((e) => e.type === "ui" && e.text);
      const weGot = evs.ours.filter((e) => e.type === "received").map((e) => e.type === "received" && e.text);
      if (jsGot.join() === `m${i}` && weGot.join() === `r${i}`) msgsOk++;
      else unexplained.push(`messages after AKE ${i}: otr.js got ${JSON.stringify(jsGot)}, we got ${JSON.stringify(weGot)}`);
    }
    t.diagnostic(`otr.js soak: ${SOAK} AKEs, ${failed} failed (${rBug} explained by otr.js's r leading-zero bug), ` +
      `${msgsOk} sessions exchanged messages both ways`);
    assert.deepEqual(unexplained, []);
  });

  test("second AKE on the same otr.js object (otr.js announces stale key ids then): outcome is explained", { timeout: TIMEOUT }, async (t) => {
    const { link } = await akeAllowingKnownBug(() => newLink(), "ours", t);
    // refresh: we start a new AKE on the same conversations
    link.trace.length = 0;
    const r = link.conv.startAke();
    await link.pump(r.toSend);
    const evs = link.take();
    const secure = evs.ours.some((e) => e.type === "gone-secure" || e.type === "still-secure");
    t.diagnostic(`re-AKE with otr.js: ${secure ? "secure again" : "no new session"}; our events: ${evs.ours.map((e) => e.type).join(",")}`);
    if (!secure) assert.ok(rBugExplains(revealedR(link.trace)), "re-AKE failure explained by otr.js's r bug");
    // Whatever otr.js does with its key ids, we must not show garbage or throw: a message from it either
    // decrypts to the right text or is reported unreadable.
    link.js.send("after re-AKE");
    await link.pump([]);
    const after = link.take().ours;
    const got = after.filter((e) => e.type === "received").map((e) => e.type === "received" && e.text);
    assert.ok(got.length === 0 || (got.length === 1 && got[0] === "after re-AKE"), `no garbage shown: ${JSON.stringify(after)}`);
    t.diagnostic(`message after re-AKE: ${got.length ? "read" : `not read (${after.map((e) => JSON.stringify(e)).join(" ")})`}`);
  });

  for (const [starter, equal] of [["ours", true], ["otrjs", true], ["ours", false], ["otrjs", false]] as const) {
    test(`SMP with otr.js: ${starter} starts${starter === "ours" ? " with a question" : ""}, ${equal ? "same" : "different"} secrets`, { timeout: TIMEOUT }, async (t) => {
      const { link } = await akeAllowingKnownBug(() => newLink(), "ours", t);
      const secret = "shared secret ✓", theirs = equal ? secret : "another secret";
      const enc = (x: string) => new Uint8Array(Buffer.from(x, "utf8"));
      if (starter === "ours") {
        const r = link.conv.smpStart(enc(secret), "what is it?");
        link.ourEvents.push(...r.events);
        await link.pump(r.toSend);
        const q = link.take().js.filter((e) => e.type === "smp");
        assert.deepEqual(q.map((e) => e.type === "smp" && [e.kind, e.data]), [["question", "what is it?"]]);
        link.js.otr.smpSecret(theirs);
        await link.pump([]);
      } else {
        link.js.otr.smpSecret(theirs);
        await link.pump([]);
        const ask = link.take().ours.filter((e) => e.type === "smp-ask");
        assert.equal(ask.length, 1);
        const r = link.conv.smpRespond(enc(secret));
        link.ourEvents.push(...r.events);
        await link.pump(r.toSend);
      }
      const evs = link.take();
      const ours = evs.ours.filter((e) => e.type.startsWith("smp-")).map((e) => e.type);
      const js = evs.js.filter((e) => e.type === "smp" && e.kind === "trust").map((e) => e.type === "smp" && e.data);
      assert.equal(ours[ours.length - 1], equal ? "smp-success" : "smp-failure", `ours: ${ours.join(",")}`);
      assert.deepEqual(js, [equal], `otr.js trust events: ${JSON.stringify(evs.js)}`);
    });
  }
});
