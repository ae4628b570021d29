// The idle policy against the real parts (issue 7): with a one-minute timeout, a puppet whose user says nothing on
// Matrix is disconnected from ngIRCd with one notice, and the user's next message brings it back and is delivered.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { LONG, OtrWorld } from "../harness/otr-e2e.js";
import type { IrcClient } from "../harness/irc-client.js";

describe("idle puppets are disconnected and come back with the next message", { timeout: 600_000 }, () => {
  const world = new OtrWorld("idle", { defaultPolicy: "never", network: { idle_timeout_minutes: 1 } });
  let watcher: IrcClient;

  before(async () => {
    await world.start();
    watcher = await world.rawIrc("watcher");
  });
  after(async () => {
    watcher?.destroy();
    await world.stop();
  });

  const online = async (nick: string): Promise<boolean> => {
    const from = watcher.mark();
    watcher.send(`ISON ${nick}`);
    const r = await watcher.waitFor((m) => m.command === "303", 30_000, from);
    return new RegExp(`(^|\\s)${nick}(\\s|$)`, "i").test(r.params.at(-1) ?? "");
  };

  it("a quiet user's puppet leaves IRC after the timeout, with one notice", async () => {
    assert.ok(await online("alice"), "the puppet is on IRC after connect");
    const from = world.alice.mark();
    const notice = await world.alice.waitForMessage(world.mgmt, /Disconnected from local: no activity here for a while/, { sender: world.botId, timeoutMs: 240_000, from });
    assert.equal(notice.content.msgtype, "m.notice");
    const deadline = Date.now() + LONG;
    while (await online("alice")) {
      assert.ok(Date.now() < deadline, "the puppet is still on IRC");
      await new Promise((r) => setTimeout(r, 500));
    }
    // One notice per outage, not one per sweep.
    await new Promise((r) => setTimeout(r, 20_000));
    const notices = (await world.alice.getMessages(world.mgmt, 100)).filter((e) => /no activity here for a while/.test(String(e.content.body)));
    assert.equal(notices.length, 1);
  });

  it("the next message to someone on the network reconnects and is delivered", async () => {
    const mark = watcher.mark();
    const from = world.alice.mark();
    await world.alice.sendText(world.mgmt, "msg local watcher back from idle");
    await world.alice.waitForMessage(world.mgmt, /direct chat with watcher on local/, { sender: world.botId, timeoutMs: LONG, from });
    await watcher.waitFor((m) => m.command === "PRIVMSG" && m.nick === "alice" && m.params[1] === "back from idle", LONG, mark);
  });
});
