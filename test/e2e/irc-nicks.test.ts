// Nicks against a real InspIRCd, whose CASEMAPPING is rfc1459: `Bob[1]\` and `bob{1}|` are one nick to the server,
// so the puppet (which folds with the server's CASEMAPPING from ISUPPORT) must treat them as one too: a collision
// on registration, one key for messages from either spelling, and a nick change once the nick is free.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { startInspircd, type InspircdInstance } from "../harness/inspircd.js";
import { connectIrc, type IrcClient } from "../harness/irc-client.js";
import { IrcPuppet, type IncomingMessage, type PuppetHandlers } from "../../src/irc/puppet.js";

describe("nicks under rfc1459 case mapping", { timeout: 300_000 }, () => {
  let irc: InspircdInstance;
  const clients: IrcClient[] = [];
  let puppet: IrcPuppet | undefined;
  const events: string[] = [];
  const messages: IncomingMessage[] = [];
  let wake: () => void = () => {};
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => (wake = r));
  };
  const handlers: PuppetHandlers = {
    onMessage: (m) => { messages.push(m); wake(); },
    onConnected: ({ nick }) => { events.push(`connected ${nick}`); wake(); },
    onDisconnected: ({ reason }) => { events.push(`down ${reason}`); wake(); },
    onNickChange: ({ oldNick, newNick }) => { events.push(`nick ${oldNick} -> ${newNick}`); wake(); },
    onNickRejected: ({ nick, reason }) => { events.push(`rejected ${nick} ${reason}`); wake(); },
  };

  before(async () => { irc = await startInspircd({ services: false }); });
  after(async () => {
    await puppet?.disconnect();
    for (const c of clients) c.destroy();
    await irc?.stop();
  });

  it("a nick taken in the other case spelling collides; the puppet falls back to nick_", async () => {
    const holder = await connectIrc(irc.host, irc.port, "Bob[1]\\");
    clients.push(holder);
    puppet = new IrcPuppet({ host: irc.host, port: irc.port, tls: false, nick: "bob{1}|" }, handlers);
    puppet.connect();
    await until(() => events.length > 0);
    assert.deepEqual(events, ["connected bob{1}|_"]);
    holder.privmsg("bob{1}|_", "ping from the holder");
    await until(() => messages.length > 0);
    assert.equal(messages[0]!.from, "Bob[1]\\");
    // The key the bridge files this contact under is the same for both spellings.
    assert.equal(puppet.foldNick("Bob[1]\\"), puppet.foldNick("bob{1}|"));
    assert.notEqual(puppet.foldNick("Bob[1]\\"), puppet.foldNick("bob(1)/"));
  });

  it("a message addressed to our nick in the other spelling is ours", async () => {
    const c = await connectIrc(irc.host, irc.port, "carol");
    clients.push(c);
    c.privmsg("BOB[1]\\_", "to the upper-case spelling");
    await until(() => messages.some((m) => m.text === "to the upper-case spelling"));
  });

  it("nick change: refused while taken, done once the nick is free", async () => {
    puppet!.changeNick("BOB[1]\\");
    await until(() => events.some((e) => e.startsWith("rejected")));
    assert.equal(puppet!.nick, "bob{1}|_");
    const holder = clients[0]!;
    await holder.quit();
    puppet!.changeNick("BOB[1]\\");
    await until(() => events.some((e) => e.startsWith("nick ")));
    assert.equal(events.at(-1), "nick bob{1}|_ -> BOB[1]\\");
    assert.equal(puppet!.nick, "BOB[1]\\");
  });
});
