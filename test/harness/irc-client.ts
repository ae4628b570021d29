// A raw-socket IRC client that plays the IRC contact in tests: it registers, answers PING, and keeps every line
// it received so a test can wait for one. Deliberately not irc-framework: tests must see the wire as it is.
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";

export interface IrcMessage {
  raw: string;
  /** Full prefix without ':' (e.g. "nick!user@host"), or null. */
  prefix: string | null;
  /** Nick part of the prefix, or null. */
  nick: string | null;
  command: string;
  params: string[];
}

export function parseIrcLine(raw: string): IrcMessage {
  let rest = raw;
  if (rest.startsWith("@")) { // message tags: not used by ngIRCd, skipped if present
    const sp = rest.indexOf(" ");
    rest = sp < 0 ? "" : rest.slice(sp + 1);
  }
  let prefix: string | null = null;
  if (rest.startsWith(":")) {
    const sp = rest.indexOf(" ");
    prefix = sp < 0 ? rest.slice(1) : rest.slice(1, sp);
    rest = sp < 0 ? "" : rest.slice(sp + 1);
  }
  const params: string[] = [];
  let command = "";
  while (rest.length) {
    rest = rest.replace(/^ +/, "");
    if (!rest.length) break;
    if (command && rest.startsWith(":")) { params.push(rest.slice(1)); break; }
    const sp = rest.indexOf(" ");
    const word = sp < 0 ? rest : rest.slice(0, sp);
    rest = sp < 0 ? "" : rest.slice(sp + 1);
    if (!command) command = word.toUpperCase(); else params.push(word);
  }
  const nick = prefix === null ? null : prefix.split("!")[0]!.split("@")[0]!;
  return { raw, prefix, nick, command, params };
}

export interface IrcClientOptions {
  /** Server password (PASS). */
  password?: string;
  username?: string;
  realname?: string;
  /** Answer PING automatically (default true). */
  autoPong?: boolean;
  /** Connect with TLS; certFile/keyFile present a client certificate (SASL EXTERNAL). */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; servername?: string; rejectUnauthorized?: boolean };
  /** Authenticate with SASL during registration. */
  sasl?: { mechanism: "PLAIN"; username: string; password: string } | { mechanism: "EXTERNAL" };
}

type Waiter = { pred: (m: IrcMessage) => boolean; from: number; resolve: (m: IrcMessage) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class IrcClient {
  /** Every line received, in order (without CRLF). */
  readonly lines: string[] = [];
  readonly messages: IrcMessage[] = [];
  /** Every line sent, in order. */
  readonly sent: string[] = [];
  nick = "";
  /** Account name from RPL_LOGGEDIN (900) after SASL, else null. */
  account: string | null = null;
  private sock: Socket | null = null;
  private buf = Buffer.alloc(0);
  private waiters: Waiter[] = [];
  private closedErr: Error | null = null;
  private closedResolve!: () => void;
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void> = new Promise((r) => { this.closedResolve = r; });

  constructor(readonly host: string, readonly port: number, readonly opts: IrcClientOptions = {}) {}

  /**
   * Connects and registers; resolves on RPL_WELCOME (001), rejects on a nick error, ERROR, or (with `sasl`) a
   * SASL failure (904-906) — the account the server logged us into is then in `account`.
   */
  async connect(nick: string, timeoutMs = 30_000): Promise<void> {
    this.nick = nick;
    const t = this.opts.tls;
    const sock: Socket = t
      ? tlsConnect({
        host: this.host, port: this.port, servername: t.servername ?? "irc.test",
        ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
        ...(t.certFile ? { cert: readFileSync(t.certFile) } : {}),
        ...(t.keyFile ? { key: readFileSync(t.keyFile) } : {}),
        rejectUnauthorized: t.rejectUnauthorized ?? true,
      })
      : connect({ host: this.host, port: this.port });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on("data", (d) => this.onData(d));
    sock.on("error", (e) => this.onClose(e));
    sock.on("close", () => this.onClose(new Error("connection closed")));
    await new Promise<void>((resolve, reject) => {
      sock.once(t ? "secureConnect" : "connect", resolve);
      sock.once("error", reject);
    });
    const sasl = this.opts.sasl;
    if (sasl) this.send("CAP REQ :sasl");
    if (this.opts.password) this.send(`PASS ${this.opts.password}`);
    this.send(`NICK ${nick}`);
    this.send(`USER ${this.opts.username ?? nick.toLowerCase().replace(/[^a-z0-9]/g, "x").slice(0, 9)} 0 * :${this.opts.realname ?? "test client"}`);
    if (sasl) {
      const ack = await this.waitFor((x) => x.command === "CAP" && (x.params[1] === "ACK" || x.params[1] === "NAK"), timeoutMs);
      if (ack.params[1] !== "ACK") throw new Error(`IRC ${nick}: server refused CAP sasl: ${ack.raw}`);
      let from = this.mark();
      this.send(`AUTHENTICATE ${sasl.mechanism}`);
      await this.waitFor((x) => x.command === "AUTHENTICATE" && x.params[0] === "+", timeoutMs, from);
      from = this.mark();
      this.send(`AUTHENTICATE ${sasl.mechanism === "PLAIN"
        ? Buffer.from(`${sasl.username}\0${sasl.username}\0${sasl.password}`).toString("base64") : "+"}`);
      const r = await this.waitFor((x) => ["903", "904", "905", "906", "907"].includes(x.command), timeoutMs, from);
      if (r.command !== "903") throw new Error(`IRC ${nick}: SASL ${sasl.mechanism} failed: ${r.raw}`);
      const logged = this.messages.find((x, i) => i >= from && x.command === "900");
      this.account = logged?.params[2] ?? null;
      this.send("CAP END");
    }
    const m = await this.waitFor((x) => ["001", "432", "433", "436", "464", "ERROR"].includes(x.command), timeoutMs);
    if (m.command !== "001") throw new Error(`IRC registration of ${nick} failed: ${m.raw}`);
    this.nick = m.params[0] ?? nick;
  }

  /** Sends one raw line; CR/LF inside it is a test bug, so it throws instead of splitting. */
  send(line: string): void {
    if (/[\r\n\0]/.test(line)) throw new Error("IrcClient.send: line contains CR, LF or NUL");
    if (!this.sock || this.closedErr) throw new Error("IrcClient.send: not connected");
    this.sent.push(line);
    this.sock.write(`${line}\r\n`);
  }

  privmsg(target: string, text: string): void { this.send(`PRIVMSG ${target} :${text}`); }
  notice(target: string, text: string): void { this.send(`NOTICE ${target} :${text}`); }
  join(channel: string): void { this.send(`JOIN ${channel}`); }

  /** Index to pass as `from` so only lines received after this point match. */
  mark(): number { return this.messages.length; }

  /**
   * Resolves with the first message at index >= `from` (default 0: everything received so far counts, so a line
   * that arrived before the call is not missed) matching `pred`; rejects on timeout or when the connection closes.
   */
  waitFor(pred: (m: IrcMessage) => boolean, timeoutMs = 30_000, from = 0): Promise<IrcMessage> {
    for (let i = from; i < this.messages.length; i++) {
      if (pred(this.messages[i]!)) return Promise.resolve(this.messages[i]!);
    }
    if (this.closedErr) return Promise.reject(new Error(`IRC ${this.nick}: ${this.closedErr.message} before a match`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        pred, from, resolve, reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(new Error(`IRC ${this.nick}: no matching line within ${timeoutMs} ms; last lines:\n${this.lines.slice(-10).join("\n")}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Waits for a PRIVMSG to us (or to `target`) from `fromNick`, whose text matches. */
  waitForPrivmsg(fromNick: string | null, text: string | RegExp | ((t: string) => boolean), timeoutMs = 30_000, from = 0): Promise<IrcMessage> {
    const match = typeof text === "string" ? (t: string) => t === text
      : text instanceof RegExp ? (t: string) => text.test(t) : text;
    return this.waitFor((m) => m.command === "PRIVMSG"
      && (fromNick === null || m.nick?.toLowerCase() === fromNick.toLowerCase())
      && match(m.params[1] ?? ""), timeoutMs, from);
  }

  /** Sends QUIT and waits for the server to close the connection. */
  async quit(message = "bye", timeoutMs = 10_000): Promise<void> {
    if (!this.sock || this.closedErr) return;
    try { this.send(`QUIT :${message}`); } catch { /* already closing */ }
    const t = setTimeout(() => this.sock?.destroy(), timeoutMs);
    await this.closed;
    clearTimeout(t);
  }

  /** Drops the TCP connection without QUIT. */
  destroy(): void { this.sock?.destroy(); }

  isConnected(): boolean { return this.sock !== null && this.closedErr === null; }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) break;
      let lineBuf = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      if (lineBuf.length && lineBuf[lineBuf.length - 1] === 0x0d) lineBuf = lineBuf.subarray(0, -1);
      const line = lineBuf.toString("utf8");
      if (!line) continue;
      const m = parseIrcLine(line);
      this.lines.push(line);
      this.messages.push(m);
      if (m.command === "PING" && this.opts.autoPong !== false) {
        try { this.send(`PONG :${m.params[0] ?? ""}`); } catch { /* closing */ }
      }
      if (m.command === "NICK" && m.nick === this.nick && m.params[0]) this.nick = m.params[0];
      const idx = this.messages.length - 1;
      for (const w of [...this.waiters]) {
        if (idx >= w.from && w.pred(m)) {
          clearTimeout(w.timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(m);
        }
      }
    }
  }

  private onClose(e: Error): void {
    if (this.closedErr) return;
    this.closedErr = e;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`IRC ${this.nick}: ${e.message} while waiting; last lines:\n${this.lines.slice(-10).join("\n")}`));
    }
    this.waiters = [];
    this.closedResolve();
  }
}

/** Connects a client and registers `nick`. */
export async function connectIrc(host: string, port: number, nick: string, opts: IrcClientOptions = {}): Promise<IrcClient> {
  const c = new IrcClient(host, port, opts);
  await c.connect(nick);
  return c;
}
