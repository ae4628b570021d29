// SMP interop with libotr 4.1.1 (engineer C's Smp through engineer B's conversation API): we initiate and
// libotr initiates, with and without a question, right and wrong secrets (both sides must report failure),
// abort mid-way by either side (and a later run still works), and SMP over a fragmented session (150).
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { ensureHelperBuilt, unhex } from "../harness/libotr.js";
import { Link, OUR_NAME, libOfType, libSmp, ourKey, ourOfType } from "./link.js";

const TIMEOUT = 600_000;
const enc = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const RIGHT = "the ducks fly at midnight — ünïcödé";

async function secureLink(fragmentSize = 0): Promise<Link> {
  const link = await Link.open({ version: 3, fragmentSize });
  await link.fromOurs(link.conv.startAke());
  const evs = link.take();
  assert.equal(ourOfType(evs.ours, "gone-secure").length, 1, "AKE done");
  assert.equal(libOfType(evs.lib, "gone_secure").length, 1, "AKE done (libotr)");
  return link;
}

/** We start; libotr answers with `theirSecret`. Returns both sides' outcome. */
async function weStart(link: Link, ourSecret: string, theirSecret: string, question?: string) {
  await link.fromOurs(link.conv.smpStart(enc(ourSecret), question));
  let evs = link.take();
  const ask = libOfType(evs.lib, "smp").filter((e) => e.event.startsWith("ASK_FOR"));
  assert.equal(ask.length, 1, `libotr was asked (got ${libSmp(evs.lib).join(",")})`);
  assert.equal(ask[0]!.event, question === undefined ? "ASK_FOR_SECRET" : "ASK_FOR_ANSWER");
  assert.equal(ask[0]!.question === null ? null : unhex(ask[0]!.question), question ?? null);
  await link.fromLib(await link.lib.smpRespond(OUR_NAME, theirSecret));
  evs = link.take();
  return { ours: evs.ours.filter((e) => e.type.startsWith("smp-")).map((e) => e.type), lib: libSmp(evs.lib) };
}

/** libotr starts; we answer with `ourSecret`. */
async function libotrStarts(link: Link, theirSecret: string, ourSecret: string, question?: string) {
  await link.fromLib(await link.lib.smpStart(OUR_NAME, theirSecret, question));
  let evs = link.take();
  const ask = ourOfType(evs.ours, "smp-ask");
  assert.equal(ask.length, 1, `we were asked (got ${evs.ours.map((e) => e.type).join(",")})`);
  assert.equal(ask[0]!.question, question ?? null);
  await link.fromOurs(link.conv.smpRespond(enc(ourSecret)));
  evs = link.take();
  return { ours: evs.ours.filter((e) => e.type.startsWith("smp-")).map((e) => e.type), lib: libSmp(evs.lib) };
}

const last = (a: string[]) => a[a.length - 1];

describe("SMP interop with libotr", { timeout: TIMEOUT }, () => {
  before(() => { ensureHelperBuilt(); ourKey(); });

  for (const frag of [0, 150]) {
    const label = frag ? ` (fragments of ${frag})` : "";
    test(`we initiate, no question, right secret${label}`, { timeout: TIMEOUT }, async () => {
      const link = await secureLink(frag);
      try {
        const r = await weStart(link, RIGHT, RIGHT);
        assert.equal(last(r.ours), "smp-success");
        assert.equal(last(r.lib), "SUCCESS");
      } finally { await link.close(); }
    });

    test(`libotr initiates with a question, right secret${label}`, { timeout: TIMEOUT }, async () => {
      const link = await secureLink(frag);
      try {
        const r = await libotrStarts(link, RIGHT, RIGHT, "Where do the ducks fly? 🦆");
        assert.equal(last(r.ours), "smp-success");
        assert.equal(last(r.lib), "SUCCESS");
      } finally { await link.close(); }
    });
  }

  test("we initiate with a question, right secret", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const r = await weStart(link, RIGHT, RIGHT, "Favourite colour?");
      assert.equal(last(r.ours), "smp-success");
      assert.equal(last(r.lib), "SUCCESS");
    } finally { await link.close(); }
  });

  test("libotr initiates without a question, right secret", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const r = await libotrStarts(link, RIGHT, RIGHT);
      assert.equal(last(r.ours), "smp-success");
      assert.equal(last(r.lib), "SUCCESS");
    } finally { await link.close(); }
  });

  test("wrong secret, we initiate: both sides report failure", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const r = await weStart(link, RIGHT, "the ducks fly at noon");
      assert.equal(last(r.ours), "smp-failure");
      assert.equal(last(r.lib), "FAILURE");
      assert.ok(!r.ours.includes("smp-success") && !r.lib.includes("SUCCESS"));
    } finally { await link.close(); }
  });

  test("wrong secret, libotr initiates with a question: both sides report failure", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const r = await libotrStarts(link, RIGHT, RIGHT + " ", "q");
      assert.equal(last(r.ours), "smp-failure");
      assert.equal(last(r.lib), "FAILURE");
    } finally { await link.close(); }
  });

  test("we abort mid-way; libotr sees the abort; a new run then succeeds", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      await link.fromOurs(link.conv.smpStart(enc(RIGHT)));
      let evs = link.take();
      assert.ok(libSmp(evs.lib).includes("ASK_FOR_SECRET"));
      await link.fromOurs(link.conv.smpAbort());
      evs = link.take();
      assert.deepEqual(libSmp(evs.lib), ["ABORT"]);
      const r = await weStart(link, RIGHT, RIGHT);
      assert.equal(last(r.ours), "smp-success");
      assert.equal(last(r.lib), "SUCCESS");
    } finally { await link.close(); }
  });

  test("libotr aborts before we answer its SMP1; we report a peer abort; a new run then succeeds", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      await link.fromLib(await link.lib.smpStart(OUR_NAME, RIGHT));
      let evs = link.take();
      assert.equal(ourOfType(evs.ours, "smp-ask").length, 1);
      await link.fromLib(await link.lib.smpAbort(OUR_NAME));
      evs = link.take();
      assert.deepEqual(ourOfType(evs.ours, "smp-abort").map((e) => e.by), ["peer"]);
      const r = await libotrStarts(link, RIGHT, RIGHT);
      assert.equal(last(r.ours), "smp-success");
      assert.equal(last(r.lib), "SUCCESS");
    } finally { await link.close(); }
  });

  test("libotr aborts mid-way through our run (after SMP2): neither side reports success", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      // Hold back libotr's SMP2 so the abort lands between steps.
      const start = link.conv.smpStart(enc(RIGHT));
      link.ourEvents.push(...start.events);
      for (const l of start.toSend) {
        const evs = await link.lib.receive(OUR_NAME, l);
        link.libEvents.push(...evs);
      }
      const respond = await link.lib.smpRespond(OUR_NAME, RIGHT); // produces SMP2; we drop it on the floor
      link.libEvents.push(...respond.filter((e) => e.ev !== "inject"));
      await link.fromLib(await link.lib.smpAbort(OUR_NAME));
      const evs = link.take();
      assert.deepEqual(ourOfType(evs.ours, "smp-abort").map((e) => e.by), ["peer"]);
      assert.ok(!evs.ours.some((e) => e.type === "smp-success"));
      const r = await weStart(link, RIGHT, RIGHT);
      assert.equal(last(r.ours), "smp-success");
      assert.equal(last(r.lib), "SUCCESS");
    } finally { await link.close(); }
  });

  test("30 runs with random secrets, equal or not, alternating initiator: success exactly when equal, on both sides", { timeout: TIMEOUT }, async () => {
    const link = await secureLink();
    try {
      const seen = { equal: 0, different: 0 };
      for (let i = 0; i < 30; i++) {
        const a = randomBytes(1 + (i % 24)).toString("base64");
        const equal = (i * 7919) % 3 !== 0;
        const b = equal ? a : a + "!";
        const r = i % 2 === 0 ? await weStart(link, a, b) : await libotrStarts(link, a, b, i % 4 === 1 ? `question ${i}` : undefined);
        assert.equal(last(r.ours), equal ? "smp-success" : "smp-failure", `run ${i} (ours: ${r.ours.join(",")})`);
        assert.equal(last(r.lib), equal ? "SUCCESS" : "FAILURE", `run ${i} (libotr: ${r.lib.join(",")})`);
        seen[equal ? "equal" : "different"]++;
      }
      assert.ok(seen.equal > 0 && seen.different > 0);
    } finally { await link.close(); }
  });
});
