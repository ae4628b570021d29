// A burst of 200 lines from a puppet to one target on a strict InspIRCd (no fake lag: a flooding client is
// disconnected with "Excess Flood"). The same burst from a raw client gets it killed; the puppet's send queue
// paces it within the configured budget, so every line arrives, in order, and the puppet stays connected.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startInspircd, type InspircdInstance } from "../harness/inspircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { IrcPuppet } from "../../src/irc/puppet.js";

const LINES = 200;
// The server allows 4 commands a second with a penalty threshold of 10; the puppet's budget stays below that rate.
const SERVER = { services: false, fakelag: false, threshold: 10, commandRate: 4000 } as const;
const BUDGET = { burstLines: 5, lineIntervalMs: 300, penaltyBytes: 0 };

describe("flood control against a strict server", { timeout: 900_000 }, () => {
  let irc: InspircdInstance;
  const clients: IrcClient[] = [];
  let puppet: IrcPuppet | undefined;

  before(async () => {
    irc = await startInspircd(SERVER);
  });
  after(async () => {
    await puppet?.disconnect("test done");
    for (const c of clients) c.destroy();
    await irc?.stop();
  });

  it("control: the same burst written raw gets a client disconnected", async () => {
    const flooder = await connectIrc(irc.host, irc.port, "flooder");
    const target = await connectIrc(irc.host, irc.port, "target0");
    clients.push(flooder, target);
    for (let i = 0; i < LINES; i++) flooder.privmsg("target0", `line ${i}`);
    await flooder.closed;
    assert.ok(target.messages.filter((m) => m.command === "PRIVMSG").length < LINES);
  });

  it("a puppet's burst of 200 lines is delivered completely, in order, and the puppet stays connected", async () => {
    const target = await connectIrc(irc.host, irc.port, "target");
    clients.push(target);
    const downs: string[] = [];
    let up!: () => void;
    const connected = new Promise<void>((r) => (up = r));
    puppet = new IrcPuppet(
      { host: irc.host, port: irc.port, tls: false, nick: "burster", flood: BUDGET },
      {
        onMessage: () => {},
        onConnected: () => up(),
        onDisconnected: ({ reason }) => downs.push(reason),
        onNickChange: () => {},
        onNickRejected: () => {},
      },
    );
    puppet.connect();
    await connected;
    const mark = target.mark();
    const sent: string[] = [];
    for (let i = 0; i < LINES; i++) {
      // Varied lengths, some near the line limit: the penalty must not depend on short lines.
      const text = `fragment ${i} ` + "abcdefghij".repeat(i % 40);
      sent.push(text);
      assert.equal(puppet.say("target", text), 1);
    }
    await target.waitForPrivmsg("burster", sent.at(-1)!, 600_000, mark);
    const got = target.messages.slice(mark).filter((m) => m.command === "PRIVMSG" && m.nick === "burster").map((m) => m.params[1]);
    assert.deepEqual(got, sent);
    assert.deepEqual(downs, [], "never disconnected");
    assert.ok(puppet.connected);
  });
});
