// The OTR end-to-end harness checked on its own, without the bridge: two libotr contacts on a real ngIRCd talk
// OTR to each other through libotr-irc.ts (query, AKE, fragmented long text, SMP, end), one of them behind the
// TCP tap, which sees only ciphertext. If this fails, the bridge tests' failures say nothing about the bridge.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { startTcpTap, type TcpTap } from "../harness/tcp-tap.js";
import { LibotrIrcContact, generateContactKey } from "../harness/libotr-irc.js";

describe("libotr contacts on IRC (harness self-check)", { timeout: 300_000 }, () => {
  let irc: NgircdInstance;
  let tap: TcpTap;
  let a: LibotrIrcContact;
  let b: LibotrIrcContact;
  const keyA = generateContactKey("Ann");
  const keyB = generateContactKey("Ben");

  before(async () => {
    irc = await startNgircd();
    tap = await startTcpTap(irc.host, irc.port);
    a = await LibotrIrcContact.connect({ host: tap.host, port: tap.port, nick: "Ann", remote: "Ben", keyFile: keyA.keyFile });
    b = await LibotrIrcContact.connect({ host: irc.host, port: irc.port, nick: "Ben", remote: "Ann", keyFile: keyB.keyFile });
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await tap?.stop();
    await irc?.stop();
  });

  it("a query starts an AKE; both sides see each other's fingerprint", async () => {
    b.startOtr();
    const [sa, sb] = await Promise.all([a.waitForSecure(), b.waitForSecure()]);
    assert.equal(sa.fpRaw, keyB.fpRaw);
    assert.equal(sb.fpRaw, keyA.fpRaw);
    assert.equal(sa.version, 3);
  });

  it("long non-ASCII text is fragmented into IRC lines and arrives whole, never in clear through the tap", async () => {
    const text = "Grüße aus dem Tunnel — 秘密のメッセージ ✓ ".repeat(40);
    assert.ok(Buffer.byteLength(text) > 1500, `${Buffer.byteLength(text)} bytes`);
    const from = b.mark();
    const mark = tap.mark();
    await a.send(text);
    const got = await b.waitForText(text, from);
    assert.equal(got.otr, true);
    assert.ok(a.wireSent.filter((l) => l.startsWith("?OTR|")).length >= 4, "fragments");
    for (const l of tap.linesSince(mark)) assert.ok(Buffer.byteLength(l) + 2 <= 512);
    assert.ok(!tap.sawSent("Tunnel", mark));
    assert.ok(tap.linesSince(mark).some((l) => l.startsWith("PRIVMSG Ben :?OTR|")));
  });

  it("SMP with a question succeeds with the right secret and fails with a wrong one", async () => {
    let fa = a.mark(), fb = b.mark();
    await a.smpStart("blue whale", "favourite animal?");
    const ask = await b.waitForSmp(["ASK_FOR_ANSWER"], fb);
    assert.equal(ask.question, "favourite animal?");
    await b.smpRespond("blue whale");
    assert.equal((await a.waitForSmp(["SUCCESS", "FAILURE"], fa)).event, "SUCCESS");
    assert.equal((await b.waitForSmp(["SUCCESS", "FAILURE"], fb)).event, "SUCCESS");
    fa = a.mark(); fb = b.mark();
    await b.smpStart("one");
    await a.waitForSmp(["ASK_FOR_SECRET"], fa);
    await a.smpRespond("two");
    assert.equal((await a.waitForSmp(["SUCCESS", "FAILURE"], fa)).event, "FAILURE");
    assert.equal((await b.waitForSmp(["SUCCESS", "FAILURE"], fb)).event, "FAILURE");
  });

  it("ending the session reaches the other side; a new key after reconnecting shows a new fingerprint", async () => {
    const fb = b.mark();
    await a.endSession();
    await b.waitForEvent((e) => e.ev === "ignored" || e.ev === "gone_insecure", "the TLV 1 message", fb);
    assert.equal((await b.status()).state, "finished");
    const keyA2 = generateContactKey("Ann");
    a = await a.reconnect({ keyFile: keyA2.keyFile });
    const from = b.mark();
    a.startOtr();
    const s = await b.waitForSecure(from);
    assert.equal(s.fpRaw, keyA2.fpRaw);
    assert.notEqual(s.fpRaw, keyA.fpRaw);
  });
});
