// TLS to a real InspIRCd with a self-signed certificate (CN and SAN DNS = the server name, SAN IP 127.0.0.1):
// verification is on by default, so the system trust store refuses it; the configured CA accepts it; the
// configured server name is what the certificate is checked against.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startInspircd, type InspircdInstance } from "../harness/inspircd.js";
import { IrcPuppet, type PuppetHandlers, type PuppetOptions } from "../../src/irc/puppet.js";

describe("TLS verification, custom CA and server name", { timeout: 300_000 }, () => {
  let irc: InspircdInstance;
  let ca: string;
  const puppets: IrcPuppet[] = [];
  before(async () => {
    irc = await startInspircd({ services: false, tls: true });
    ca = readFileSync(irc.tlsCertFile!, "utf8");
  });
  after(async () => {
    for (const p of puppets) await p.disconnect();
    await irc?.stop();
  });

  /** The first outcome of one connection: "connected" or the reported reason. */
  function firstOutcome(opts: Partial<PuppetOptions> & { nick: string }): Promise<string> {
    return new Promise((resolve) => {
      const handlers: PuppetHandlers = {
        onMessage: () => {},
        onConnected: () => resolve("connected"),
        onDisconnected: ({ reason }) => resolve(reason),
        onNickChange: () => {},
        onNickRejected: () => {},
      };
      const p = new IrcPuppet({ host: "127.0.0.1", port: irc.tlsPort!, tls: true, backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 }, ...opts }, handlers);
      puppets.push(p);
      p.connect();
    });
  }

  it("a self-signed server certificate is refused without a configured CA", async () => {
    assert.match(await firstOutcome({ nick: "noca" }), /could not connect/);
  });

  it("the configured CA makes it trusted (certificate checked against the IP)", async () => {
    assert.equal(await firstOutcome({ nick: "withca", tlsCa: ca }), "connected");
  });

  it("with a server name, the certificate is checked against that name: right name passes, wrong name fails", async () => {
    assert.equal(await firstOutcome({ nick: "sniok", tlsCa: ca, tlsServername: irc.name }), "connected");
    assert.match(await firstOutcome({ nick: "snibad", tlsCa: ca, tlsServername: "not-the-server.example" }), /could not connect/);
  });
});
