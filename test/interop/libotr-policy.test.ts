// Policies against libotr: whitespace tags starting the AKE in both directions, require-encryption on either
// side (nothing leaks in plaintext, the held message arrives encrypted), and error-start-AKE after a session
// was lost on one side.
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { POLICY } from "../../src/otr/index.js";
import { ensureHelperBuilt, unhex } from "../harness/libotr.js";
import { Link, OUR_NAME, libOfType, libReceived, ourKey, ourOfType } from "./link.js";

const TIMEOUT = 300_000;
const secureBoth = (link: Link, evs: ReturnType<Link["take"]>) => {
  assert.equal(ourOfType(evs.ours, "gone-secure").length, 1, `we went secure: ${evs.ours.map((e) => e.type).join(",")}`);
  assert.equal(libOfType(evs.lib, "gone_secure").length, 1, "libotr went secure");
  assert.equal(link.conv.status().state, "encrypted");
};

describe("policies against libotr", { timeout: TIMEOUT }, () => {
  before(() => { ensureHelperBuilt(); ourKey(); });

  test("our whitespace tag makes libotr (opportunistic) start the AKE; libotr shows the text without the tag", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.OPPORTUNISTIC, libPolicy: "OPPORTUNISTIC" });
    try {
      const s = link.conv.send("hello there");
      assert.equal(s.outcome, "plaintext");
      await link.fromOurs(s);
      const evs = link.take();
      assert.deepEqual(libReceived(evs.lib), ["hello there"]);
      secureBoth(link, evs);
    } finally { await link.close(); }
  });

  test("libotr's whitespace tag makes us (opportunistic) start the AKE; we show the text without the tag", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.OPPORTUNISTIC, libPolicy: "OPPORTUNISTIC" });
    try {
      await link.fromLib(await link.lib.send(OUR_NAME, "hi from libotr"));
      const evs = link.take();
      const got = ourOfType(evs.ours, "received");
      assert.deepEqual(got.map((e) => [e.text, e.encrypted]), [["hi from libotr", false]]);
      secureBoth(link, evs);
    } finally { await link.close(); }
  });

  test("we require encryption: the message is held, never sent in plaintext, and arrives encrypted after the AKE", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.ALWAYS, libPolicy: "MANUAL" });
    try {
      const s = link.conv.send("for your eyes only");
      assert.equal(s.outcome, "queued");
      assert.ok(s.toSend.every((l) => !l.includes("for your eyes only")), "nothing in plaintext");
      await link.fromOurs(s);
      const evs = link.take();
      secureBoth(link, evs);
      const rec = libOfType(evs.lib, "received");
      assert.deepEqual(rec.map((e) => [unhex(e.text), e.otr]), [["for your eyes only", true]]);
      assert.ok(link.trace.every((t) => !t.line.includes("for your eyes only")));
    } finally { await link.close(); }
  });

  test("libotr requires encryption: it starts the AKE with us and its held message reaches us encrypted", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.MANUAL, libPolicy: "ALWAYS" });
    try {
      await link.fromLib(await link.lib.send(OUR_NAME, "libotr secret"));
      const evs = link.take();
      secureBoth(link, evs);
      const got = ourOfType(evs.ours, "received");
      assert.equal(got.length, 1, `one message: ${JSON.stringify(evs.ours)}`);
      assert.ok(got[0]!.encrypted);
      assert.match(got[0]!.text, /libotr secret$/); // libotr may prefix a resent message
      assert.ok(link.trace.every((t) => !t.line.includes("libotr secret")), "never on the wire in plaintext");
    } finally { await link.close(); }
  });

  test("we lost the session (new conversation object): libotr's data message is reported unreadable, not shown; our error reply makes libotr (ERROR_START_AKE) re-run the AKE", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.OPPORTUNISTIC, libPolicy: "OPPORTUNISTIC" });
    try {
      await link.fromOurs(link.conv.startAke());
      secureBoth(link, link.take());
      link.renewOurs(); // as after a restart without persisted session state
      await link.fromLib(await link.lib.send(OUR_NAME, "are you there?"));
      const evs = link.take();
      assert.ok(evs.ours.some((e) => e.type === "unreadable"), `unreadable reported: ${evs.ours.map((e) => e.type).join(",")}`);
      assert.deepEqual(ourOfType(evs.ours, "received"), [], "nothing shown");
      // libotr 4.1.1 stays silent here; we answer a v3 message addressed to our instance with an OTR error,
      // and libotr's ERROR_START_AKE answers that with a query: the session comes back by itself.
      assert.equal(ourOfType(evs.ours, "gone-secure").length, 1, `recovered: ${evs.ours.map((e) => e.type).join(",")}`);
      await link.fromLib(await link.lib.send(OUR_NAME, "back again"));
      assert.deepEqual(ourOfType(link.take().ours, "received").map((e) => e.text), ["back again"]);
    } finally { await link.close(); }
  });

  test("libotr's error message (after a corrupted message from us) is surfaced, and with error-start-AKE we re-run the AKE", { timeout: TIMEOUT }, async () => {
    const link = await Link.open({ ourPolicy: POLICY.OPPORTUNISTIC, libPolicy: "OPPORTUNISTIC" });
    try {
      await link.fromOurs(link.conv.startAke());
      secureBoth(link, link.take());
      const s = link.conv.send("this one gets corrupted on the way");
      const [line] = s.toSend;
      const m = /^\?OTR:([A-Za-z0-9+/=]+)\.$/.exec(line!);
      assert.ok(m, "one unfragmented data message");
      const raw = Buffer.from(m[1]!, "base64");
      raw[raw.length - 30] = raw[raw.length - 30]! ^ 0x40; // near the end (ciphertext or MAC): the MAC check fails either way
      await link.fromOurs({ events: [], toSend: [`?OTR:${raw.toString("base64")}.`] });
      const evs = link.take();
      assert.deepEqual(libOfType(evs.lib, "msg_event").map((e) => e.event).filter((e) => !e.startsWith("LOG_")), ["RCVDMSG_UNREADABLE"]);
      const errors = ourOfType(evs.ours, "error-received");
      assert.equal(errors.length, 1, `error surfaced: ${evs.ours.map((e) => e.type).join(",")}`);
      assert.match(errors[0]!.text, /unreadable/);
      assert.ok(evs.ours.some((e) => e.type === "gone-secure" || e.type === "still-secure"), "AKE re-run after the error");
      assert.equal(link.conv.status().state, "encrypted");
      await link.fromOurs(link.conv.send("and this one arrives"));
      assert.deepEqual(libReceived(link.take().lib), ["and this one arrives"]);
    } finally { await link.close(); }
  });
});
