// Self-test of the InspIRCd + Atheme harness: the real SASL and NickServ paths the IRC tests rely on.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startInspircd, type InspircdInstance } from "../harness/inspircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";

describe("harness: InspIRCd + Atheme", { timeout: 300_000 }, () => {
  let irc: InspircdInstance;
  const clients: IrcClient[] = [];
  before(async () => {
    irc = await startInspircd({ tls: true, accounts: [{ name: "alice", password: "alice-secret" }] });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await irc?.stop();
  });

  it("logs in with SASL PLAIN and refuses a wrong password", async () => {
    const c = await connectIrc(irc.host, irc.port, "alice_plain",
      { sasl: { mechanism: "PLAIN", username: "alice", password: "alice-secret" } });
    clients.push(c);
    assert.equal(c.account, "alice");
    await assert.rejects(connectIrc(irc.host, irc.port, "alice_bad",
      { sasl: { mechanism: "PLAIN", username: "alice", password: "wrong" } }), /SASL PLAIN failed: .* 904 /);
  });

  it("identifies with NickServ", async () => {
    const c = await connectIrc(irc.host, irc.port, "alice");
    clients.push(c);
    c.privmsg("NickServ", "IDENTIFY alice-secret");
    await c.waitFor((m) => m.command === "NOTICE" && m.nick === "NickServ" && /identified for .?alice|now logged in as .?alice/i.test(m.params[1] ?? ""));
  });

  it("logs in with SASL EXTERNAL over TLS with a client certificate", async () => {
    const cert = await irc.addCertFingerprint("alice", "alice-secret");
    const c = await connectIrc(irc.host, irc.tlsPort!, "alice_ext", {
      tls: { caFile: irc.tlsCertFile!, certFile: cert.certFile, keyFile: cert.keyFile },
      sasl: { mechanism: "EXTERNAL" },
    });
    clients.push(c);
    assert.equal(c.account, "alice");
  });

  it("restart() brings the server back with services linked", async () => {
    await irc.restart();
    const c = await connectIrc(irc.host, irc.port, "alice_again",
      { sasl: { mechanism: "PLAIN", username: "alice", password: "alice-secret" } });
    clients.push(c);
    assert.equal(c.account, "alice");
  });
});

describe("harness: InspIRCd flood control", { timeout: 120_000 }, () => {
  let irc: InspircdInstance;
  const clients: IrcClient[] = [];
  before(async () => { irc = await startInspircd({ services: false, fakelag: false, threshold: 10, commandRate: 1000 }); });
  after(async () => {
    for (const c of clients) c.destroy();
    await irc?.stop();
  });

  it("a strict server disconnects a client that bursts 200 lines (so a bridge test of pacing can fail)", async () => {
    const flooder = await connectIrc(irc.host, irc.port, "flooder");
    const target = await connectIrc(irc.host, irc.port, "target");
    clients.push(flooder, target);
    for (let i = 0; i < 200; i++) flooder.privmsg("target", `line ${i}`);
    // The server closes the connection (the client never sends QUIT). Its "ERROR :Excess Flood" line is often
    // lost: the close resets a socket that still holds unread input.
    await flooder.closed;
    assert.ok(!flooder.sent.some((l) => l.startsWith("QUIT")));
    const error = flooder.messages.find((m) => m.command === "ERROR");
    if (error) assert.match(error.params.join(" "), /flood/i);
    assert.ok(target.messages.filter((m) => m.command === "PRIVMSG").length < 200);
    assert.ok(target.isConnected(), "the quiet client stays connected");
  });
});
