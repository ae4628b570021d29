// The user's services account against real InspIRCd + Atheme: SASL PLAIN when offered, NickServ IDENTIFY when
// asked for, and on its own on a server that offers no SASL; a wrong password is reported without losing the
// connection.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startInspircd, type InspircdInstance } from "../harness/inspircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { IrcPuppet, type PuppetHandlers, type PuppetOptions } from "../../src/irc/puppet.js";

describe("services login", { timeout: 300_000 }, () => {
  let irc: InspircdInstance;
  let noSasl: InspircdInstance;
  const puppets: IrcPuppet[] = [];
  const clients: IrcClient[] = [];

  before(async () => {
    irc = await startInspircd({ tls: true, accounts: [{ name: "alice", password: "alice-secret" }, { name: "bob", password: "bob-secret" }] });
    noSasl = await startInspircd({ sasl: false, accounts: [{ name: "carol", password: "carol-secret" }] });
  });
  after(async () => {
    for (const p of puppets) await p.disconnect();
    for (const c of clients) c.destroy();
    await irc?.stop();
    await noSasl?.stop();
  });

  function start(opts: Partial<PuppetOptions> & { nick: string }, server = irc) {
    const logins: { ok: boolean; account: string | null; reason?: string }[] = [];
    let connected = false;
    let wake: () => void = () => {};
    const handlers: PuppetHandlers = {
      onMessage: () => {},
      onConnected: () => { connected = true; wake(); },
      onDisconnected: () => wake(),
      onNickChange: () => {},
      onNickRejected: () => {},
      onLogin: (i) => { logins.push(i); wake(); },
    };
    const p = new IrcPuppet({ host: server.host, port: server.port, tls: false, ...opts }, handlers);
    puppets.push(p);
    p.connect();
    const until = async (pred: () => boolean) => {
      while (!pred()) await new Promise<void>((r) => (wake = r));
    };
    return { p, logins, until, isConnected: () => connected };
  }

  /** Services' view, through a WHOIS from another client: the account the nick is logged in as, or null. */
  async function accountOf(nick: string, server = irc): Promise<string | null> {
    const c = await connectIrc(server.host, server.port, `w${Math.floor(Math.random() * 1e6)}`);
    clients.push(c);
    const mark = c.mark();
    c.send(`WHOIS ${nick}`);
    await c.waitFor((m) => m.command === "318", 60_000, mark);
    const acct = c.messages.slice(mark).find((m) => m.command === "330");
    return acct ? acct.params[2] ?? null : null;
  }

  it("SASL PLAIN with the user's account when the server offers SASL", async () => {
    const s = start({ nick: "alice", account: { name: "alice", password: "alice-secret" } });
    await s.until(() => s.isConnected() && s.logins.length > 0);
    assert.deepEqual(s.logins, [{ ok: true, account: "alice" }]);
    assert.equal(await accountOf("alice"), "alice");
  });

  it("NickServ IDENTIFY after registration when asked to (no SASL)", async () => {
    const s = start({ nick: "bob", account: { name: "bob", password: "bob-secret", method: "nickserv" } });
    await s.until(() => s.isConnected());
    // Logged in by services after the IDENTIFY: poll services' view, the behaviour that matters.
    let acct: string | null = null;
    for (let i = 0; i < 60 && acct === null; i++) acct = await accountOf("bob");
    assert.equal(acct, "bob");
  });

  it("NickServ IDENTIFY on its own when the server offers no SASL (no method configured)", async () => {
    const s = start({ nick: "carol", account: { name: "carol", password: "carol-secret" } }, noSasl);
    await s.until(() => s.isConnected());
    let acct: string | null = null;
    for (let i = 0; i < 60 && acct === null; i++) acct = await accountOf("carol", noSasl);
    assert.equal(acct, "carol");
  });

  it("SASL EXTERNAL with the network's client certificate over TLS (server verified with the configured CA)", async () => {
    const cert = await irc.addCertFingerprint("alice", "alice-secret");
    const s = start({
      nick: "alice_ext",
      port: irc.tlsPort!,
      tls: true,
      tlsCa: readFileSync(irc.tlsCertFile!, "utf8"),
      sasl: { mechanism: "EXTERNAL", cert: readFileSync(cert.certFile, "utf8"), key: readFileSync(cert.keyFile, "utf8") },
    });
    await s.until(() => s.isConnected() && s.logins.length > 0);
    assert.deepEqual(s.logins, [{ ok: true, account: "alice" }]);
    assert.equal(await accountOf("alice_ext"), "alice");
  });

  it("a wrong password is reported and the puppet stays connected, not logged in", async () => {
    const s = start({ nick: "alice2", account: { name: "alice", password: "wrong" } });
    await s.until(() => s.isConnected() && s.logins.length > 0);
    assert.equal(s.logins[0]!.ok, false);
    assert.ok(s.p.connected);
    assert.equal(await accountOf("alice2"), null);
  });
});
