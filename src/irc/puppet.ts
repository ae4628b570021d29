// One IRC connection on behalf of one Matrix user on one network (the "puppet"), on top of irc-framework.
// irc-framework's own reconnect is off: it gives up after 3 tries and only for clients registered for >5 s, so the
// puppet owns reconnects (jittered backoff) and reports state transitions, not attempts. Every outgoing line is
// built by sanitize.ts: no caller can hand irc-framework a raw string.
import irc from "irc-framework";
import type { MessageEvent } from "irc-framework";
import { buildLine, splitMessage, stripUnsafe, textBudget, checkMiddleParam, IRC_MAX_LINE_BYTES } from "./sanitize.js";
import { foldNick, parseCaseMapping, type CaseMapping } from "./casemap.js";
import { bindChannelEvents, channelLines, modeLines, type ChannelEvent, type ModeChange } from "./channel-events.js";
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { SendQueue, type FloodBudget, type LinePriority } from "./send-queue.js";
import type { ConnectGate } from "./connect-limiter.js";
import { TlsOptionsTransport } from "./tls-transport.js";

export interface PuppetOptions {
  host: string;
  port: number;
  tls: boolean;
  /** Verify the server certificate (default true). */
  tlsVerify?: boolean;
  /** PEM trust anchors for the server certificate instead of the system's (network `tls_ca_file`). */
  tlsCa?: string;
  /** Name sent as SNI and checked against the certificate, when it differs from host (network `tls_servername`). */
  tlsServername?: string;
  /** Local source address of the connection (irc-framework `outgoing_addr`). */
  outgoingAddr?: string;
  /** Answer to CTCP VERSION; "" = no answer (default "matrix-otr-irc"). */
  ctcpVersion?: string;
  /** Answer CTCP PING (default true). */
  ctcpPing?: boolean;
  nick: string;
  username?: string;
  realname?: string;
  password?: string;
  sasl?: { mechanism: "PLAIN"; username: string; password: string } | { mechanism: "EXTERNAL"; cert: string; key: string };
  maxLineBytes?: number;
  backoff?: BackoffOptions;
  /** Pacing of message lines (defaults: DEFAULT_FLOOD_BUDGET). */
  flood?: FloodBudget;
  /** Upper bound of nick-collision retries during registration (`nick_`, `nick__`, then numbered). */
  maxNickRetries?: number;
  /** Shared per network: caps connection attempts in flight (see connect-limiter.ts). */
  connectGate?: ConnectGate;
  /**
   * Lines kept while the connection is down and sent after it is back, in order (default 100). Past this, sends
   * are refused (return 0) so a long outage cannot grow memory or replay a flood.
   */
  maxHeldLines?: number;
  /**
   * The user's own services account (password stored with `login`): SASL PLAIN when the server offers it, else
   * `IDENTIFY` to NickServ after registration (`method` forces one). A network-wide `sasl` takes precedence.
   */
  account?: { name: string; password: string; method?: "auto" | "sasl" | "nickserv" };
}

/** `failed`: the server refused us for a reason retrying cannot fix (credentials, ban, no usable nick). */
export type PuppetState = "idle" | "connecting" | "connected" | "backoff" | "stopped" | "failed";

export interface IncomingMessage {
  kind: "privmsg" | "notice" | "action";
  from: string;
  fromUser?: string | undefined;
  fromHost?: string | undefined;
  text: string;
}

export interface PuppetHandlers {
  /** A message addressed to the puppet itself (not a channel). */
  onMessage(msg: IncomingMessage): void;
  onConnected(info: { nick: string }): void;
  /** `willRetry` false only after disconnect() was asked for. */
  /** `failed` with willRetry false: refused for good (reason says why); connect() again to retry. */
  onDisconnected(info: { reason: string; willRetry: boolean; retryInMs?: number; wasConnected?: boolean; failed?: boolean }): void;
  onNickChange(info: { oldNick: string; newNick: string }): void;
  /** The server refused a nick change asked for after registration (in use, or invalid). */
  onNickRejected(info: { nick: string; reason: string }): void;
  /** Services logged us in (`ok`), or refused the user's account password (SASL 904; the connection stays up). */
  onLogin?(info: { ok: boolean; account: string | null; reason?: string }): void;
  /** Channel traffic (messages to channels, joins, parts, quits, kicks, topics, names, op/voice modes). */
  onChannel?(e: ChannelEvent): void;
  /** A queued line was written after waiting this long for the flood budget. */
  onQueueWait?(waitedMs: number): void;
}

/** Marker that lets tests and `sayRaw` callers know which bytes the server adds in front of relayed lines. */
const CTCP_ACTION_OVERHEAD = "\x01ACTION \x01".length;

const DEFAULT_MAX_HELD_LINES = 100;

/** Queued lines past which CTCP requests go unanswered. */
const CTCP_REPLY_QUEUE_LIMIT = 10;

export class IrcPuppet {
  private client: InstanceType<typeof irc.Client> | null = null;
  private state: PuppetState = "idle";
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private wantedNick: string;
  private nickRetries = 0;
  private reportedDown = false;
  private mapping: CaseMapping = "rfc1459";
  private lastError: string | null = null;
  /** Why the server refused us for good, set before the socket closes; turns the close into `failed`. */
  private failure: string | null = null;
  /** The user's account login falls back to NickServ on this connection (no SASL offered, or forced). */
  private identifyAfterWelcome = false;
  private readonly queue: SendQueue;
  /** Queued lines handed to the socket, and how many of them the socket has taken (its write callback ran). */
  private linesOut = 0;
  private linesTaken = 0;
  private readonly takenWaiters: { upTo: number; cb: () => void }[] = [];
  /** Withdraws the pending request for a connect slot, or frees the slot held by the attempt in flight. */
  private releaseSlot: (() => void) | null = null;

  constructor(private readonly opts: PuppetOptions, private readonly handlers: PuppetHandlers) {
    checkMiddleParam(opts.nick);
    this.wantedNick = opts.nick;
    this.queue = new SendQueue((line) => this.writeQueued(line), opts.flood, Date.now, (ms) => this.handlers.onQueueWait?.(ms));
  }

  get nick(): string {
    return this.client?.user.nick ?? this.wantedNick;
  }

  get connected(): boolean {
    return this.state === "connected";
  }

  get currentState(): PuppetState {
    return this.state;
  }

  /** Folds a nick with the server's CASEMAPPING (rfc1459 until ISUPPORT says otherwise). */
  foldNick(nick: string): string {
    return foldNick(nick, this.mapping);
  }

  /**
   * True when a message handed to say/notice/action now will be sent: connected, or reconnecting with room left
   * in the held-lines bound.
   */
  get canSend(): boolean {
    if (this.state === "connected") return true;
    return (this.state === "connecting" || this.state === "backoff") && this.queue.length < (this.opts.maxHeldLines ?? DEFAULT_MAX_HELD_LINES);
  }

  connect(): void {
    if (this.state === "connecting" || this.state === "connected") return;
    this.clearTimer();
    this.state = "connecting";
    const gate = this.opts.connectGate;
    if (!gate) return this.open();
    this.releaseSlot = gate.acquire((release) => {
      this.releaseSlot = release;
      if (this.state === "connecting") this.open();
      else release();
    });
  }

  private freeSlot(): void {
    const r = this.releaseSlot;
    this.releaseSlot = null;
    r?.();
  }

  private open(): void {
    this.attempt += 1;
    this.nickRetries = 0;
    this.failure = null;
    this.identifyAfterWelcome = !this.opts.sasl && this.opts.account?.method === "nickserv";
    const client = new irc.Client();
    this.client = client;
    this.bind(client);
    client.connect({
      host: this.opts.host,
      port: this.opts.port,
      tls: this.opts.tls,
      rejectUnauthorized: this.opts.tlsVerify ?? true,
      nick: this.wantedNick,
      username: stripUnsafe(this.opts.username ?? this.wantedNick).replace(/[ @:]/g, "").slice(0, 10) || "matrix",
      gecos: stripUnsafe(this.opts.realname ?? this.wantedNick),
      ...(this.opts.password ? { password: stripUnsafe(this.opts.password) } : {}),
      ...this.saslOptions(),
      auto_reconnect: false,
      ...(this.opts.outgoingAddr ? { outgoing_addr: this.opts.outgoingAddr } : {}),
      ...(this.opts.tls && (this.opts.tlsCa !== undefined || this.opts.tlsServername !== undefined)
        ? {
            transport: TlsOptionsTransport,
            ...(this.opts.tlsCa !== undefined ? { tls_ca: this.opts.tlsCa } : {}),
            ...(this.opts.tlsServername !== undefined ? { tls_servername: this.opts.tlsServername } : {}),
          }
        : {}),
      // Empty: irc-framework then leaves VERSION to our "ctcp request" handler (configurable, paced, sanitized).
      version: "",
    });
  }

  /** Sends QUIT and stops reconnecting; resolves once the socket is closed (or after a grace period). */
  async disconnect(reason = "Disconnected by user"): Promise<void> {
    this.clearTimer();
    this.freeSlot();
    this.queue.clear();
    const client = this.client;
    const wasActive = this.state === "connecting" || this.state === "connected";
    this.state = "stopped";
    if (!client || !wasActive) {
      this.client = null;
      this.settleInFlight();
      return;
    }
    await new Promise<void>((resolve) => {
      const done = setTimeout(resolve, 5_000);
      client.once("close", () => {
        clearTimeout(done);
        resolve();
      });
      client.quit(stripUnsafe(reason));
    });
    this.client = null;
    this.settleInFlight();
  }

  private saslOptions(): Record<string, unknown> {
    const s = this.opts.sasl;
    // An empty account object stops irc-framework from trying SASL with nick + server password on its own.
    if (!s) {
      const a = this.opts.account;
      if (a && a.method !== "nickserv") return { account: { account: stripUnsafe(a.name), password: stripUnsafe(a.password) } };
      return { account: {} };
    }
    if (s.mechanism === "PLAIN") return { account: { account: s.username, password: s.password } };
    // EXTERNAL: the TLS client certificate is the credential.
    return { sasl_mechanism: "EXTERNAL", client_certificate: { private_key: s.key, certificate: s.cert } };
  }

  /** Logs in to NickServ now (after `login` while connected); false when not connected. */
  identify(account: string, password: string): boolean {
    if (!this.client || this.state !== "connected") return false;
    // Straight to the socket, not the message queue: a login is protocol, and must not wait behind a paste.
    this.client.raw(buildLine("PRIVMSG", ["NickServ"], `IDENTIFY ${stripUnsafe(account)} ${stripUnsafe(password)}`));
    return true;
  }

  changeNick(nick: string): void {
    checkMiddleParam(nick);
    this.wantedNick = nick;
    if (this.client && this.state === "connected") this.client.raw(buildLine("NICK", [nick]));
  }

  /** Channel membership and moderation (the bridge's channel portals); dropped while not connected. */
  joinChannel(channel: string, key?: string): void {
    this.protocolLine(channelLines.join(channel, key));
  }

  partChannel(channel: string, reason?: string): void {
    this.protocolLine(channelLines.part(channel, reason));
  }

  setTopic(channel: string, topic: string): void {
    this.protocolLine(channelLines.topic(channel, topic));
  }

  kick(channel: string, nick: string, reason?: string): void {
    this.protocolLine(channelLines.kick(channel, nick, reason));
  }

  /** Op/voice/ban changes, as few MODE lines as the server's MODES limit allows. */
  setModes(channel: string, changes: readonly ModeChange[]): void {
    if (!this.client || this.state !== "connected" || changes.length === 0) return;
    const lines = modeLines(channel, changes, Number(this.client.network.supports("MODES")) || 3);
    for (const line of lines) this.client.raw(line);
  }

  private protocolLine(line: string): void {
    if (this.client && this.state === "connected") this.client.raw(line);
  }

  say(target: string, text: string): number {
    return this.sendText("PRIVMSG", target, text, 0, (t) => t);
  }

  notice(target: string, text: string): number {
    return this.sendText("NOTICE", target, text, 0, (t) => t, "notice");
  }

  action(target: string, text: string): number {
    return this.sendText("PRIVMSG", target, text, CTCP_ACTION_OVERHEAD, (t) => `\x01ACTION ${t}\x01`);
  }

  /** Bytes of text that fit in one PRIVMSG to target, given what the server will prepend when relaying. */
  textBudget(target: string, command: "PRIVMSG" | "NOTICE" = "PRIVMSG"): number {
    const u = this.client?.user;
    return textBudget(
      { nick: this.nick, user: u?.username ? "~" + u.username : undefined, host: u?.host || undefined },
      command,
      target,
      this.opts.maxLineBytes ?? IRC_MAX_LINE_BYTES,
    );
  }

  /**
   * Calls `done` once every line say/notice/action queued so far is in the socket's hands (written and its write
   * callback run), or was dropped (disconnect, refused for good). A line taken by the kernel survives our process
   * being killed; one still in Node's buffer does not, so "written" alone would not be enough for the inbox.
   */
  whenSent(done: () => void): void {
    this.queue.whenWritten(() => {
      if (this.linesTaken >= this.linesOut) return done();
      this.takenWaiters.push({ upTo: this.linesOut, cb: done });
    });
  }

  private writeQueued(line: string): void {
    const client = this.client;
    if (!client) return;
    this.linesOut += 1;
    client.connection.write(line, () => {
      // A callback from a connection already closed was settled by the close.
      if (this.client === client) this.lineTaken(1);
    });
  }

  private lineTaken(n: number): void {
    this.linesTaken = Math.min(this.linesOut, this.linesTaken + n);
    while (this.takenWaiters.length > 0 && this.takenWaiters[0]!.upTo <= this.linesTaken) this.takenWaiters.shift()!.cb();
  }

  /** The socket is gone: whatever it had not taken never will be; its waiters are settled. */
  private settleInFlight(): void {
    this.lineTaken(this.linesOut - this.linesTaken);
  }

  /** Lines waiting for the flood budget. */
  get queuedLines(): number {
    return this.queue.length;
  }

  /** Returns the number of lines queued; text may become several lines (CR/LF split, long text split). */
  private sendText(command: "PRIVMSG" | "NOTICE", target: string, text: string, overhead: number, wrap: (t: string) => string, priority: LinePriority = "message"): number {
    checkMiddleParam(target);
    // While reconnecting, lines are held in the (paused) queue and leave in order once registered again.
    if (!this.canSend) return 0;
    // CTCP framing byte \x01 inside the text would end the ACTION early: drop it.
    const clean = overhead ? text.replace(/\x01/g, "") : text;
    const pieces = splitMessage(clean, this.textBudget(target, command) - overhead);
    // Build (and so check) every line before queueing any: a message is sent whole or not at all.
    const lines = pieces.map((piece) => buildLine(command, [target], wrap(piece)));
    if (this.state !== "connected" && this.queue.length + lines.length > (this.opts.maxHeldLines ?? DEFAULT_MAX_HELD_LINES)) return 0;
    for (const line of lines) this.queue.push(line, priority);
    return lines.length;
  }

  private bind(client: InstanceType<typeof irc.Client>): void {
    const mine = () => this.client === client;
    bindChannelEvents(client, (e) => this.handlers.onChannel?.(e), mine);
    client.on("registered", (e: { nick: string }) => {
      if (!mine()) return;
      // irc-framework updates client.user.nick after this event's listeners run: take the nick from the 001.
      client.user.nick = e.nick;
      this.state = "connected";
      this.attempt = 0;
      this.freeSlot();
      const acct = this.opts.account;
      // irc-framework reports a missing SASL cap only when it negotiated other caps; a server offering no caps (or no
      // CAP at all) is silent, and the account is then for NickServ all the same.
      const saslRan = client.network.cap.isEnabled("sasl");
      if (acct && (this.identifyAfterWelcome || (!this.opts.sasl && acct.method !== "sasl" && !saslRan))) this.identify(acct.name, acct.password);
      this.reportedDown = false;
      this.handlers.onConnected({ nick: e.nick });
      this.queue.resume();
    });
    // ISUPPORT (005) arrives after the welcome (001) that fires "registered".
    client.on("server options", () => {
      if (mine()) this.mapping = parseCaseMapping(client.network.supports("CASEMAPPING"));
    });
    client.on("nick in use", (e: { nick: string }) => {
      if (!mine()) return;
      if (this.state === "connected") {
        this.handlers.onNickRejected({ nick: e.nick, reason: "in use" });
        return;
      }
      if (this.state !== "connecting") return;
      this.nickRetries += 1;
      if (this.nickRetries > (this.opts.maxNickRetries ?? 5)) {
        this.failure = `no free nick (${this.wantedNick} and ${this.nickRetries - 1} variants are taken)`;
        client.quit("nick unavailable");
        return;
      }
      const base = this.wantedNick;
      const next = this.nickRetries <= 2 ? base + "_".repeat(this.nickRetries) : base + String(this.nickRetries - 1);
      client.raw(buildLine("NICK", [next]));
    });
    client.on("nick invalid", (e: { nick: string }) => {
      if (!mine()) return;
      if (this.state === "connected") this.handlers.onNickRejected({ nick: e.nick, reason: "invalid" });
      else {
        this.failure = `the server refused the nick ${e.nick}`;
        client.quit("nick refused by the server");
      }
    });
    client.on("ctcp request", (e: { nick?: string; ident?: string; hostname?: string; target: string; type: string | null; message: string }) => {
      if (!mine() || !e.nick || this.state !== "connected" || foldNick(e.target, this.mapping) !== foldNick(client.user.nick, this.mapping)) return;
      // CTCP replies are the lowest priority, and a request flood must not fill the queue with them.
      if (this.queue.length >= CTCP_REPLY_QUEUE_LIMIT) return;
      let reply: string | null = null;
      const version = this.opts.ctcpVersion ?? "matrix-otr-irc";
      if (e.type === "VERSION" && version) reply = `VERSION ${stripUnsafe(version).replace(/\x01/g, "")}`;
      if (e.type === "PING" && (this.opts.ctcpPing ?? true)) reply = `PING ${stripUnsafe(e.message.slice(5)).replace(/\x01/g, "").slice(0, 64)}`.trimEnd();
      if (!reply) return;
      try {
        this.queue.push(buildLine("NOTICE", [e.nick], `\x01${reply}\x01`), "notice");
      } catch {
        // A nick the server sent that is not a valid middle parameter: no reply rather than a malformed line.
      }
    });
    client.on("loggedin", (e: { account?: string }) => {
      if (mine()) this.handlers.onLogin?.({ ok: true, account: e.account ?? null });
    });
    client.on("irc error", (e: { error?: string; reason?: string }) => {
      if (!mine()) return;
      // Some servers (ngIRCd) say "wrong password" only as the text of an ERROR line during registration.
      const refusedPass = e.error === "irc" && this.state === "connecting" && /password/i.test(e.reason ?? "");
      if (e.error === "password_mismatch" || refusedPass) this.failure = "the server password was refused";
      else if (e.error === "banned_from_network") this.failure = `banned from the network${e.reason ? ` (${stripUnsafe(e.reason).slice(0, 200)})` : ""}`;
    });
    client.on("sasl failed", (e: { reason?: string }) => {
      if (!mine() || this.state !== "connecting") return;
      if (!this.opts.sasl) {
        if (!this.opts.account) return;
        // The user's own account: no SASL here means NickServ; a refused password is reported, not fatal.
        if (e.reason === "fail" || e.reason === "nick_locked") this.handlers.onLogin?.({ ok: false, account: this.opts.account.name, reason: "the services password was refused" });
        else this.identifyAfterWelcome = true;
        return;
      }
      this.failure = `SASL authentication failed (${e.reason ?? "fail"})`;
      client.quit("authentication failed");
    });
    // The transport hands its last socket error to "socket close"; "close" only says whether there was one.
    client.on("socket close", (err?: NodeJS.ErrnoException | false) => {
      if (mine() && err) this.lastError = err.code ?? "socket error";
    });
    client.on("nick", (e: { nick: string; new_nick: string }) => {
      if (!mine()) return;
      if (foldNick(e.nick, this.mapping) === foldNick(client.user.nick, this.mapping) || foldNick(e.new_nick, this.mapping) === foldNick(client.user.nick, this.mapping)) {
        this.handlers.onNickChange({ oldNick: e.nick, newNick: e.new_nick });
      }
    });
    const onMsg = (kind: IncomingMessage["kind"]) => (e: MessageEvent) => {
      // Server notices come with a bare server name as prefix (no user@host): they are not from a contact.
      if (!mine() || e.from_server || !e.nick || (!e.ident && !e.hostname)) return;
      if (foldNick(e.target, this.mapping) !== foldNick(client.user.nick, this.mapping)) return;
      this.handlers.onMessage({ kind, from: e.nick, fromUser: e.ident, fromHost: e.hostname, text: e.message });
    };
    client.on("privmsg", onMsg("privmsg"));
    client.on("notice", onMsg("notice"));
    client.on("action", onMsg("action"));
    client.on("close", () => {
      if (!mine()) return;
      this.client = null;
      this.settleInFlight();
      this.freeSlot();
      this.queue.pause();
      if (this.state === "stopped") {
        this.handlers.onDisconnected({ reason: "requested", willRetry: false });
        return;
      }
      const wasUp = this.state === "connected";
      if (this.failure) {
        const reason = this.failure;
        this.failure = null;
        this.state = "failed";
        this.queue.clear();
        this.reportedDown = false;
        this.handlers.onDisconnected({ reason, willRetry: false, failed: true, wasConnected: wasUp });
        return;
      }
      this.state = "backoff";
      const delay = backoffDelayMs(this.attempt, this.opts.backoff ?? DEFAULT_BACKOFF);
      if (!this.reportedDown) {
        this.reportedDown = true;
        const reason = wasUp ? "connection lost" : `could not connect${this.lastError ? `: ${this.lastError}` : ""}`;
        this.handlers.onDisconnected({ reason, willRetry: true, retryInMs: delay, wasConnected: wasUp });
      }
      this.lastError = null;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.state === "backoff") {
          this.state = "idle";
          this.connect();
        }
      }, delay);
    });
    // Unhandled 'error' events would crash the process; irc-framework emits them for socket errors.
    client.on("error", () => {});
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
