import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { Client } from "irc-framework";
import { bindChannelEvents, channelLines, isChannelName, modeLines, type ChannelEvent } from "../../src/irc/channel-events.js";

describe("IRC channel events from irc-framework", () => {
  it("maps channel traffic in order and ignores private messages, server notices and other modes", () => {
    const c = new EventEmitter();
    const got: ChannelEvent[] = [];
    let active = true;
    bindChannelEvents(c as unknown as Client, (e) => got.push(e), () => active);
    c.emit("privmsg", { target: "#c", nick: "bob", message: "hi" });
    c.emit("privmsg", { target: "alice", nick: "bob", message: "private" });
    c.emit("notice", { target: "#c", nick: "irc.test", message: "server", from_server: true });
    c.emit("action", { target: "#c", nick: "bob", message: "waves" });
    c.emit("join", { channel: "#c", nick: "carol" });
    c.emit("kick", { channel: "#c", kicked: "carol", nick: "bob", message: "out" });
    c.emit("mode", { target: "#c", nick: "bob", modes: [{ mode: "+o", param: "dave" }, { mode: "+b", param: "x!*@*" }, { mode: "+t" }] });
    c.emit("userlist", { channel: "#c", users: [{ nick: "bob", modes: ["o"] }] });
    c.emit("quit", { nick: "bob", message: "split" });
    active = false;
    c.emit("privmsg", { target: "#c", nick: "bob", message: "from an old connection" });
    assert.deepEqual(got, [
      { type: "message", channel: "#c", from: "bob", kind: "privmsg", text: "hi" },
      { type: "message", channel: "#c", from: "bob", kind: "action", text: "waves" },
      { type: "join", channel: "#c", nick: "carol" },
      { type: "kick", channel: "#c", nick: "carol", by: "bob", reason: "out" },
      { type: "mode", channel: "#c", nick: "dave", mode: "+o", by: "bob" },
      { type: "ban", channel: "#c", mask: "x!*@*", set: true, by: "bob" },
      { type: "names", channel: "#c", users: [{ nick: "bob", modes: ["o"] }] },
      { type: "quit", nick: "bob", reason: "split" },
    ]);
  });

  it("channel lines are built by the sanitizer: no CR/LF smuggling, no bad names", () => {
    assert.equal(channelLines.join("#c", "key"), "JOIN #c key");
    assert.equal(channelLines.join("#c", ":key"), "JOIN #c ::key");
    assert.throws(() => channelLines.join("#c", "a b\r\nQUIT"));
    assert.equal(channelLines.part("#c", "bye\r\nQUIT"), "PART #c :bye  QUIT");
    assert.equal(channelLines.topic("#c", "a\nb"), "TOPIC #c :a b");
    assert.throws(() => channelLines.join("#c d"), /parameter/);
    assert.throws(() => channelLines.kick("#c", ":x"), /parameter/);
    assert.ok(isChannelName("#otr") && isChannelName("&local") && !isChannelName("otr") && !isChannelName("#a,#b"));
  });

  it("bans, keys and the masks the server shows are reported", () => {
    const c = new EventEmitter();
    const got: ChannelEvent[] = [];
    bindChannelEvents(c as unknown as Client, (e) => got.push(e), () => true);
    c.emit("join", { channel: "#c", nick: "carol", ident: "~c", hostname: "host.example" });
    c.emit("privmsg", { target: "#c", nick: "carol", ident: "~c", hostname: "host.example", message: "hi" });
    c.emit("userlist", { channel: "#c", users: [{ nick: "bob", ident: "b", hostname: "h", modes: [] }, { nick: "dan", modes: ["v"] }] });
    c.emit("mode", { target: "#c", nick: "op", modes: [{ mode: "-b", param: "*!*@h" }, { mode: "+k", param: "s3cret" }, { mode: "-k", param: "*" }, { mode: "+b" }] });
    c.emit("irc error", { error: "bad_channel_key", channel: "#c", reason: "Cannot join channel (+k)" });
    c.emit("irc error", { error: "chanop_privs_needed", channel: "#c", reason: "You're not channel operator" });
    c.emit("irc error", { error: "password_mismatch", reason: "no" });
    c.emit("irc error", { error: "banned_from_channel", channel: "nick", reason: "not a channel" });
    assert.deepEqual(got, [
      { type: "join", channel: "#c", nick: "carol", mask: "carol!~c@host.example" },
      { type: "message", channel: "#c", from: "carol", kind: "privmsg", text: "hi", mask: "carol!~c@host.example" },
      { type: "names", channel: "#c", users: [{ nick: "bob", modes: [], mask: "bob!b@h" }, { nick: "dan", modes: ["v"] }] },
      { type: "ban", channel: "#c", mask: "*!*@h", set: false, by: "op" },
      { type: "key", channel: "#c", key: "s3cret", by: "op" },
      { type: "key", channel: "#c", key: null, by: "op" },
      { type: "refused", channel: "#c", reason: "bad-key" },
      { type: "refused", channel: "#c", reason: "not-operator" },
    ]);
  });

  it("mode changes become as few MODE lines as the server's MODES limit allows, and nothing unsafe", () => {
    const ch = [{ mode: "+o", param: "a" }, { mode: "+o", param: "b" }, { mode: "-v", param: "c" }, { mode: "+b", param: "d!*@*" }];
    assert.deepEqual(modeLines("#c", ch), ["MODE #c +oo-v a b c", "MODE #c +b d!*@*"]);
    assert.deepEqual(modeLines("#c", ch, 4), ["MODE #c +oo-v+b a b c d!*@*"]);
    assert.throws(() => modeLines("#c", [{ mode: "+o", param: "a\r\nQUIT" }]), /parameter/);
    assert.throws(() => modeLines("#c", [{ mode: "+o", param: ":x" }]), /parameter/);
    assert.throws(() => modeLines("#c", [{ mode: "o+", param: "a" }]), /not a channel mode/);
  });
});
