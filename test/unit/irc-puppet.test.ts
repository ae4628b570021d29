// The puppet against a scripted in-process IRC server (a plain TCP socket): what actually goes on the wire.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { IrcPuppet, type PuppetHandlers } from "../../src/irc/puppet.js";

const HOST = "very.long.hostname.of.the.puppet.example.org";

class ScriptedServer {
  server: Server;
  sockets: Socket[] = [];
  lines: string[] = [];
  takenNicks = new Set<string>();
  private waiters: (() => void)[] = [];
  port = 0;

  constructor() {
    this.server = createServer((s) => this.accept(s));
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }
  private accept(s: Socket): void {
    this.sockets.push(s);
    let buf = "";
    let nick = "";
    let user = "";
    s.setEncoding("utf8");
    s.on("error", () => {});
    s.on("data", (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\r\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        this.lines.push(line);
        const [cmd, arg] = line.split(" ");
        if (cmd === "NICK") {
          if (this.takenNicks.has(arg!)) s.write(`:srv 433 * ${arg} :Nickname is already in use\r\n`);
          else nick = arg!;
        }
        if (cmd === "USER") user = arg!;
        if (nick && user && (cmd === "NICK" || cmd === "USER")) {
          s.write(`:srv 001 ${nick} :Welcome\r\n:srv 005 ${nick} CASEMAPPING=ascii :are supported\r\n:srv 396 ${nick} ${HOST} :is now your displayed host\r\n`);
          user = "";
        }
        if (cmd === "QUIT") s.end();
        this.waiters.splice(0).forEach((w) => w());
      }
    });
  }
  async waitFor(pred: (lines: string[]) => boolean): Promise<void> {
    while (!pred(this.lines)) await new Promise<void>((r) => this.waiters.push(r));
  }
  send(line: string): void {
    this.sockets.at(-1)!.write(line + "\r\n");
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

function recorder() {
  const ev: { type: string; info: unknown }[] = [];
  let notify: () => void = () => {};
  const handlers: PuppetHandlers = {
    onMessage: (m) => { ev.push({ type: "message", info: m }); notify(); },
    onConnected: (i) => { ev.push({ type: "connected", info: i }); notify(); },
    onDisconnected: (i) => { ev.push({ type: "disconnected", info: i }); notify(); },
    onNickChange: (i) => { ev.push({ type: "nick", info: i }); notify(); },
    onNickRejected: (i) => { ev.push({ type: "nick-rejected", info: i }); notify(); },
  };
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => { notify = r; });
  };
  return { ev, handlers, until, count: (t: string) => ev.filter((e) => e.type === t).length };
}

test("long multi-line Matrix text becomes PRIVMSGs only, each relayed line within 512 bytes", async (t) => {
  const srv = new ScriptedServer();
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet({ host: "127.0.0.1", port: srv.port, tls: false, nick: "alice", username: "alice", flood: { burstLines: 2, lineIntervalMs: 200 } }, r.handlers);
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  assert.equal(p.foldNick("A[B]"), "a[b]", "ISUPPORT CASEMAPPING=ascii is honoured");
  const text = ("emoji 👩🏽‍🚀 and e\u0301\u0323 combining, 日本語 " ).repeat(80) + "\r\nQUIT :x\nNICK evil\0";
  const n = p.say("bob", text);
  assert.ok(n > 3);
  // A slow machine may earn a token while say() is still splitting; never more than the burst goes out at once.
  assert.ok(p.queuedLines > 0 && p.queuedLines <= n - 2, `lines beyond the burst wait for the flood budget (${p.queuedLines} of ${n} queued)`);
  await srv.waitFor((l) => l.filter((x) => x.startsWith("PRIVMSG")).length === n);
  const sent = srv.lines.filter((l) => !/^(CAP|NICK|USER)\b/.test(l));
  assert.equal(sent.length, n, "nothing but the PRIVMSGs");
  for (const l of sent) {
    assert.match(l, /^PRIVMSG bob :/);
    assert.doesNotMatch(l, /[\r\n\0]/);
    const relayed = `:alice!~alice@${HOST} ${l}\r\n`;
    assert.ok(Buffer.byteLength(relayed) <= 512, `relayed line is ${Buffer.byteLength(relayed)} bytes`);
    assert.ok(!l.endsWith("\ufffd") && Buffer.from(l, "utf8").toString("utf8") === l);
  }
  assert.deepEqual(sent.slice(-2), ["PRIVMSG bob :QUIT :x", "PRIVMSG bob :NICK evil"]);
  assert.throws(() => p.say("bob\r\nQUIT", "x"), /parameter/);
  assert.throws(() => p.say("bob x", "x"), /parameter/);
  p.action("bob", "waves \x01 hello");
  await srv.waitFor((l) => l.at(-1) === "PRIVMSG bob :\x01ACTION waves  hello\x01");
  await p.disconnect();
  assert.equal(r.count("disconnected"), 1);
  assert.deepEqual(r.ev.at(-1), { type: "disconnected", info: { reason: "requested", willRetry: false } });
});

test("incoming private messages, notices and actions are reported; channel messages are not", async (t) => {
  const srv = new ScriptedServer();
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet({ host: "127.0.0.1", port: srv.port, tls: false, nick: "alice" }, r.handlers);
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  srv.send(":bob!b@h PRIVMSG #chan :not for the DM path");
  srv.send(":bob!b@h PRIVMSG ALICE :hi");
  srv.send(":bob!b@h NOTICE alice :note");
  srv.send(":bob!b@h PRIVMSG alice :\x01ACTION waves\x01");
  srv.send(":srv NOTICE alice :server notice");
  await r.until(() => r.count("message") >= 3);
  assert.deepEqual(r.ev.filter((e) => e.type === "message").map((e) => e.info), [
    { kind: "privmsg", from: "bob", fromUser: "b", fromHost: "h", text: "hi" },
    { kind: "notice", from: "bob", fromUser: "b", fromHost: "h", text: "note" },
    { kind: "action", from: "bob", fromUser: "b", fromHost: "h", text: "waves" },
  ]);
  await p.disconnect();
});

test("a taken nick falls back to nick_ during registration", async (t) => {
  const srv = new ScriptedServer();
  srv.takenNicks.add("alice");
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet({ host: "127.0.0.1", port: srv.port, tls: false, nick: "alice" }, r.handlers);
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  assert.deepEqual(r.ev[0], { type: "connected", info: { nick: "alice_" } });
  assert.equal(p.nick, "alice_");
  p.changeNick("alice");
  await r.until(() => r.count("nick-rejected") >= 1);
  assert.deepEqual(r.ev.at(-1), { type: "nick-rejected", info: { nick: "alice", reason: "in use" } });
  p.changeNick("alice2");
  srv.send(":alice_!a@h NICK alice2");
  await r.until(() => r.count("nick") >= 1);
  assert.deepEqual(r.ev.at(-1), { type: "nick", info: { oldNick: "alice_", newNick: "alice2" } });
  assert.equal(p.nick, "alice2");
  await p.disconnect();
});

test("a dropped connection is reported once and reconnected with backoff", async (t) => {
  const srv = new ScriptedServer();
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet(
    { host: "127.0.0.1", port: srv.port, tls: false, nick: "alice", backoff: { initialMs: 20, maxMs: 100, jitter: 0.5 } },
    r.handlers,
  );
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  srv.sockets.at(-1)!.destroy();
  await r.until(() => r.count("connected") >= 2);
  assert.equal(r.count("disconnected"), 1);
  assert.equal((r.ev.find((e) => e.type === "disconnected")!.info as { willRetry: boolean }).willRetry, true);
  assert.equal(srv.sockets.length, 2);
  await p.disconnect();
});

test("a server that cannot be reached is reported once as 'could not connect', with the socket error", async () => {
  const srv = new ScriptedServer();
  await srv.listen();
  const port = srv.port;
  await srv.close();
  const r = recorder();
  const p = new IrcPuppet({ host: "127.0.0.1", port, tls: false, nick: "alice", backoff: { initialMs: 10, maxMs: 20, jitter: 0 } }, r.handlers);
  p.connect();
  await r.until(() => r.count("disconnected") >= 1);
  const info = r.ev[0]!.info as { reason: string; willRetry: boolean; wasConnected: boolean };
  assert.equal(info.willRetry, true);
  assert.equal(info.wasConnected, false);
  assert.match(info.reason, /could not connect: ECONNREFUSED/);
  await p.disconnect();
  assert.equal(p.currentState, "stopped");
  assert.equal(r.count("disconnected"), 1, "retries are silent");
});

test("when every nick variant is taken the puppet fails once, with the reason, and does not retry", async (t) => {
  const srv = new ScriptedServer();
  for (const n of ["carol", "carol_", "carol__", "carol2", "carol3"]) srv.takenNicks.add(n);
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet(
    { host: "127.0.0.1", port: srv.port, tls: false, nick: "carol", maxNickRetries: 4, backoff: { initialMs: 10, maxMs: 20, jitter: 0 } },
    r.handlers,
  );
  p.connect();
  await r.until(() => r.count("disconnected") >= 1);
  const info = r.ev[0]!.info as { reason: string; willRetry: boolean; failed?: boolean };
  assert.equal(info.failed, true);
  assert.equal(info.willRetry, false);
  assert.match(info.reason, /no free nick/);
  assert.equal(p.currentState, "failed");
  assert.ok(srv.lines.some((l) => l.startsWith("QUIT")));
  assert.equal(p.say("dave", "x"), 0);
  // A later connect() (the user's `connect`) tries again.
  srv.takenNicks.delete("carol");
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  assert.equal(srv.sockets.length, 2, "exactly one new attempt, made by connect()");
  await p.disconnect();
});

test("lines sent while reconnecting are held, bounded, and written after registration in order", async (t) => {
  const srv = new ScriptedServer();
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet(
    { host: "127.0.0.1", port: srv.port, tls: false, nick: "erin", maxHeldLines: 3, backoff: { initialMs: 300, maxMs: 300, jitter: 0 } },
    r.handlers,
  );
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  srv.sockets.at(-1)!.destroy();
  await r.until(() => r.count("disconnected") >= 1);
  assert.equal(p.connected, false);
  assert.ok(p.canSend);
  assert.equal(p.say("dave", "one"), 1);
  assert.equal(p.notice("dave", "two"), 1);
  assert.equal(p.say("dave", "three"), 1);
  assert.equal(p.canSend, false, "the bound is reached");
  assert.equal(p.say("dave", "four"), 0, "refused past the bound");
  await r.until(() => r.count("connected") >= 2);
  await srv.waitFor((ls) => ls.includes("PRIVMSG dave :three") && ls.includes("NOTICE dave :two"));
  const after = srv.lines.filter((l) => l.includes(" dave :"));
  assert.deepEqual(after, ["PRIVMSG dave :one", "PRIVMSG dave :three", "NOTICE dave :two"], "PRIVMSGs first, NOTICE after, none lost or repeated");
  await p.disconnect();
});

test("CTCP VERSION and PING are answered with NOTICEs as configured; ACTION stays a message; disabled means silent", async (t) => {
  const srv = new ScriptedServer();
  await srv.listen();
  t.after(() => srv.close());
  const r = recorder();
  const p = new IrcPuppet({ host: "127.0.0.1", port: srv.port, tls: false, nick: "alice", ctcpVersion: "test-bridge 1.0" }, r.handlers);
  p.connect();
  await r.until(() => r.count("connected") >= 1);
  srv.send(":dave!d@h PRIVMSG alice :\x01VERSION\x01");
  srv.send(":dave!d@h PRIVMSG alice :\x01PING 12345 x\r\x01");
  srv.send(":dave!d@h PRIVMSG alice :\x01ACTION waves\x01");
  await r.until(() => r.count("message") >= 1);
  await srv.waitFor((ls) => ls.some((l) => l.startsWith("NOTICE dave :\x01PING")));
  assert.ok(srv.lines.includes("NOTICE dave :\x01VERSION test-bridge 1.0\x01"));
  assert.ok(srv.lines.includes("NOTICE dave :\x01PING 12345 x\x01"));
  assert.deepEqual(r.ev.find((e) => e.type === "message")!.info, { kind: "action", from: "dave", fromUser: "d", fromHost: "h", text: "waves" });
  await p.disconnect();

  const srv2 = new ScriptedServer();
  await srv2.listen();
  t.after(() => srv2.close());
  const r2 = recorder();
  const q = new IrcPuppet({ host: "127.0.0.1", port: srv2.port, tls: false, nick: "bob", ctcpVersion: "", ctcpPing: false }, r2.handlers);
  q.connect();
  await r2.until(() => r2.count("connected") >= 1);
  srv2.send(":dave!d@h PRIVMSG bob :\x01VERSION\x01");
  srv2.send(":dave!d@h PRIVMSG bob :\x01PING 1\x01");
  srv2.send(":dave!d@h PRIVMSG bob :after the requests");
  await r2.until(() => r2.count("message") >= 1);
  q.say("dave", "marker");
  await srv2.waitFor((ls) => ls.includes("PRIVMSG dave :marker"));
  assert.ok(!srv2.lines.some((l) => l.startsWith("NOTICE")), "no CTCP answer when disabled");
  await q.disconnect();
});
