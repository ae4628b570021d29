// Connection outcomes on a real ngIRCd with a server password: the right PASS registers; a wrong one is a
// failure retrying cannot fix, reported once with its reason, and no further attempt is made.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startNgircd, type NgircdInstance } from "../harness/ngircd.js";
import { IrcPuppet, type PuppetHandlers } from "../../src/irc/puppet.js";

function recorder() {
  const events: string[] = [];
  let notify: () => void = () => {};
  const next = () => new Promise<void>((r) => (notify = r));
  const handlers: PuppetHandlers = {
    onMessage: () => {},
    onConnected: ({ nick }) => { events.push(`connected ${nick}`); notify(); },
    onDisconnected: ({ reason, willRetry, failed }) => { events.push(`${failed ? "failed" : "down"} ${reason} retry=${willRetry}`); notify(); },
    onNickChange: () => {},
    onNickRejected: () => {},
  };
  return { events, handlers, next };
}

describe("server password", { timeout: 300_000 }, () => {
  let irc: NgircdInstance;
  const puppets: IrcPuppet[] = [];
  before(async () => { irc = await startNgircd({ password: "s3rver-pw" }); });
  after(async () => {
    for (const p of puppets) await p.disconnect();
    await irc?.stop();
  });

  it("the right server password registers", async () => {
    const r = recorder();
    const p = new IrcPuppet({ host: irc.host, port: irc.port, tls: false, nick: "goodpass", password: "s3rver-pw" }, r.handlers);
    puppets.push(p);
    const ev = r.next();
    p.connect();
    await ev;
    assert.deepEqual(r.events, ["connected goodpass"]);
  });

  it("a wrong server password fails once, with the reason, and is not retried", async () => {
    const r = recorder();
    const p = new IrcPuppet({ host: irc.host, port: irc.port, tls: false, nick: "badpass", password: "wrong", backoff: { initialMs: 50, maxMs: 100, jitter: 0 } }, r.handlers);
    puppets.push(p);
    const ev = r.next();
    p.connect();
    await ev;
    assert.equal(r.events.length, 1);
    assert.match(r.events[0]!, /^failed the server password was refused retry=false$/);
    assert.equal(p.currentState, "failed");
    // With a 50 ms backoff a retry would long have happened: count the server's registrations attempts instead.
    const attempts = () => (irc.readLog().match(/badpass/g) ?? []).length;
    const seen = attempts();
    await new Promise((r2) => setTimeout(r2, 1_000));
    assert.equal(attempts(), seen, "no further attempt");
    assert.equal(r.events.length, 1);
    assert.equal(p.say("x", "held?"), 0, "nothing is held for a failed connection");
  });
});
