// libotr sitting on IRC as a contact: a raw IRC client (irc-client.ts) whose PRIVMSGs from one remote nick (the
// bridge's puppet) go into a LibotrPeer (the C helper), and whose helper-injected wire lines go out as one PRIVMSG
// each. libotr fragments its own messages to `maxMessageSize` (default 400: a fragment plus this client's
// `PRIVMSG nick :` and the server's prefix fit a 512-byte line). Every helper event is kept, in order, so tests
// wait for "gone secure", a received plaintext or an SMP outcome the way they wait for IRC lines.
import { connectIrc, type IrcClient, type IrcMessage } from "./irc-client.js";
import { LibotrPeer, helperGenKey, unhex, type HelperEvent } from "./libotr.js";
import { tempDir } from "./proc.js";
import { join } from "node:path";

export interface LibotrIrcOptions {
  host: string;
  port: number;
  /** Our IRC nick. */
  nick: string;
  /** libotr account name, default `nick`; the key file must hold a key for it. */
  account?: string;
  /** The nick we talk to (the puppet). */
  remote: string;
  /** libotr private key file for account `nick`, protocol "irc" (see generateContactKey). */
  keyFile: string;
  /** libotr policy, default "V2|V3|WS_START|ERR_START" (libotr's opportunistic without whitespace tags). */
  policy?: string;
  maxMessageSize?: number;
  timeoutMs?: number;
}

/** A libotr key file for `account` on protocol irc, in a fresh temp dir (generate once per test file: it is slow). */
export function generateContactKey(account: string): { keyFile: string; fp: string; fpRaw: string } {
  const keyFile = join(tempDir("libotr-key"), "otr.private_key");
  const k = helperGenKey(keyFile, account, "irc");
  return { keyFile, fp: k.fp, fpRaw: k.fp_raw.toLowerCase() };
}

/** "AAAAAAAA BBBBBBBB ..." or hex40 in any case -> lowercase hex40. */
export const normalizeFingerprint = (fp: string): string => fp.replace(/\s+/g, "").toLowerCase();

type EventWaiter = { pred: (e: HelperEvent) => boolean; from: number; resolve: (e: HelperEvent) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class LibotrIrcContact {
  /** Every helper event (our own commands' and those caused by incoming lines), in order. */
  readonly events: HelperEvent[] = [];
  /** Every wire line the contact sent to the remote, in order. */
  readonly wireSent: string[] = [];
  /** Every PRIVMSG text the contact received from the remote, before libotr. */
  readonly wireReceived: string[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private waiters: EventWaiter[] = [];
  private stopped = false;
  private cursor = 0;
  private pumpDone: Promise<void> = Promise.resolve();
  private pumpError: Error | null = null;
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  private constructor(readonly irc: IrcClient, readonly otr: LibotrPeer, public remote: string,
    readonly account: string, private readonly timeoutMs: number) {}

  static async connect(o: LibotrIrcOptions): Promise<LibotrIrcContact> {
    const otr = await LibotrPeer.start({
      account: o.account ?? o.nick, protocol: "irc", keyFile: o.keyFile,
      policy: o.policy ?? "V2|V3|WS_START|ERR_START", maxMessageSize: o.maxMessageSize ?? 400,
    });
    let irc: IrcClient;
    try {
      irc = await connectIrc(o.host, o.port, o.nick);
    } catch (e) {
      await otr.close();
      throw e;
    }
    const c = new LibotrIrcContact(irc, otr, o.remote, o.account ?? o.nick, o.timeoutMs ?? 120_000);
    c.cursor = irc.mark();
    c.pumpDone = c.pump();
    return c;
  }

  get nick(): string { return this.irc.nick; }
  /** Our fingerprint as libotr prints it, and as lowercase hex. */
  get fingerprint(): string { return this.otr.fingerprint; }
  get fingerprintRaw(): string { return this.otr.fingerprintRaw.toLowerCase(); }

  /** Index to pass as `from` so only later events match. */
  mark(): number { return this.events.length; }

  /** Helper commands one at a time: the helper's stdio protocol is strictly request/response. */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const p = this.chain.then(f);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Records a command's events and sends its injected wire lines, in order, one PRIVMSG each. */
  private route(evs: HelperEvent[]): HelperEvent[] {
    for (const e of evs) {
      if (e.ev === "inject" && !this.stopped) {
        const line = unhex(e.msg);
        // libotr's own query message carries an HTML explanation on further lines; IRC carries one line.
        for (const part of line.split(/\r?\n/).filter(Boolean).slice(0, 1)) {
          this.wireSent.push(part);
          this.irc.privmsg(this.remote, part);
        }
      }
      this.events.push(e);
      const idx = this.events.length - 1;
      for (const w of [...this.waiters]) {
        if (idx >= w.from && w.pred(e)) {
          clearTimeout(w.timer);
          this.waiters = this.waiters.filter((x) => x !== w);
          w.resolve(e);
        }
      }
    }
    return evs;
  }

  private run(f: () => Promise<HelperEvent[]>): Promise<HelperEvent[]> {
    return this.serial(async () => this.route(await f()));
  }

  private isFromRemote(m: IrcMessage): boolean {
    return m.command === "PRIVMSG" && m.nick?.toLowerCase() === this.remote.toLowerCase()
      && m.params[0]?.toLowerCase() === this.irc.nick.toLowerCase();
  }

  /** Feeds every PRIVMSG from the remote into libotr, in arrival order, until close(). */
  private async pump(): Promise<void> {
    while (!this.stopped) {
      let m: IrcMessage;
      try {
        m = await this.irc.waitFor(() => true, 5_000, this.cursor);
      } catch (e) {
        if (!this.irc.isConnected()) return;
        continue; // quiet for a while: keep listening
      }
      this.cursor++;
      if (!this.isFromRemote(m)) continue;
      if (this.gate) await this.gate;
      const text = m.params[1] ?? "";
      this.wireReceived.push(text);
      try {
        await this.run(() => this.otr.receive(this.remote, text));
      } catch (e) {
        this.pumpError = e as Error;
        for (const w of this.waiters) { clearTimeout(w.timer); w.reject(this.pumpError); }
        this.waiters = [];
        return;
      }
    }
  }

  /** Stops handing incoming lines to libotr (they wait, in order), e.g. to type something before an AKE can finish. */
  pause(): void {
    if (!this.gate) this.gate = new Promise((r) => { this.openGate = r; });
  }

  resume(): void {
    this.openGate?.();
    this.gate = null;
    this.openGate = null;
  }

  /** First event at index >= from matching pred (already seen ones count). */
  waitForEvent(pred: (e: HelperEvent) => boolean, what = "a libotr event", from = 0, timeoutMs = this.timeoutMs): Promise<HelperEvent> {
    for (let i = from; i < this.events.length; i++) if (pred(this.events[i]!)) return Promise.resolve(this.events[i]!);
    if (this.pumpError) return Promise.reject(this.pumpError);
    return new Promise((resolve, reject) => {
      const w: EventWaiter = {
        pred, from, resolve, reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          const recent = this.events.slice(-12).map((e) => JSON.stringify(e).slice(0, 160)).join("\n");
          reject(new Error(`${this.irc.nick}: no ${what} within ${timeoutMs} ms; last libotr events:\n${recent}\nlast IRC lines:\n${this.irc.lines.slice(-6).join("\n")}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Resolves with the fingerprint (lowercase hex) of the remote once libotr reports the session private. */
  async waitForSecure(from = 0): Promise<{ fpRaw: string; version: number }> {
    const e = await this.waitForEvent((x) => x.ev === "gone_secure" || x.ev === "still_secure", "gone_secure", from) as HelperEvent;
    if (e.ev === "gone_secure") return { fpRaw: (e.fp_raw ?? "").toLowerCase(), version: e.version };
    const s = await this.status();
    return { fpRaw: (s.fp_raw ?? "").toLowerCase(), version: s.version ?? 0 };
  }

  /** Resolves with the first plaintext libotr delivered (from index `from` on) that matches. */
  async waitForText(text: string | RegExp | ((t: string) => boolean), from = 0): Promise<{ text: string; otr: boolean; state: string }> {
    const match = typeof text === "string" ? (t: string) => t === text : text instanceof RegExp ? (t: string) => text.test(t) : text;
    const e = await this.waitForEvent((x) => x.ev === "received" && match(unhex(x.text)), `received text ${String(text).slice(0, 60)}`, from);
    const r = e as Extract<HelperEvent, { ev: "received" }>;
    return { text: unhex(r.text), otr: r.otr, state: r.state };
  }

  /** Resolves with an SMP event of one of `names` (libotr names: SUCCESS, FAILURE, ASK_FOR_SECRET, ...). */
  async waitForSmp(names: string[], from = 0): Promise<{ event: string; question: string | null }> {
    const e = await this.waitForEvent((x) => x.ev === "smp" && names.includes(x.event), `SMP ${names.join("/")}`, from);
    const s = e as Extract<HelperEvent, { ev: "smp" }>;
    return { event: s.event, question: s.question === null ? null : unhex(s.question) };
  }

  /** Starts OTR the way irssi-otr does: a bare query message, typed to the remote. */
  startOtr(versions = "23"): void {
    const line = `?OTRv${versions}?`;
    this.wireSent.push(line);
    this.irc.privmsg(this.remote, line);
  }

  /** Sends text through libotr (encrypted when the session is, else per policy). */
  send(text: string): Promise<HelperEvent[]> { return this.run(() => this.otr.send(this.remote, text)); }
  /** `/me text` inside OTR, as irssi-otr and pidgin send it. */
  emote(text: string): Promise<HelperEvent[]> { return this.send(`/me ${text}`); }
  smpStart(secret: string, question?: string): Promise<HelperEvent[]> { return this.run(() => this.otr.smpStart(this.remote, secret, question)); }
  smpRespond(secret: string): Promise<HelperEvent[]> { return this.run(() => this.otr.smpRespond(this.remote, secret)); }
  smpAbort(): Promise<HelperEvent[]> { return this.run(() => this.otr.smpAbort(this.remote)); }
  /** Ends the private conversation (TLV 1), as /otr finish. */
  endSession(): Promise<HelperEvent[]> { return this.run(() => this.otr.disconnect(this.remote)); }
  setPolicy(p: string): Promise<HelperEvent[]> { return this.run(() => this.otr.setPolicy(p)); }
  status(): Promise<Extract<HelperEvent, { ev: "status" }>> { return this.serial(() => this.otr.status(this.remote)); }

  /** Changes our IRC nick and waits for the server to confirm it. */
  async changeNick(nick: string): Promise<void> {
    const from = this.irc.mark();
    this.irc.send(`NICK ${nick}`);
    await this.irc.waitFor((m) => (m.command === "NICK" && m.params[0]?.toLowerCase() === nick.toLowerCase())
      || ["432", "433", "436"].includes(m.command), 30_000, from);
    if (this.irc.nick.toLowerCase() !== nick.toLowerCase()) throw new Error(`nick change to ${nick} refused`);
  }

  /** Quits IRC and stops libotr (the session state is lost, as when the contact's client closes). */
  async close(message = "bye"): Promise<void> {
    this.stopped = true;
    this.resume();
    for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new Error(`${this.irc.nick}: closed`)); }
    this.waiters = [];
    await this.irc.quit(message).catch(() => undefined);
    this.irc.destroy();
    await this.pumpDone.catch(() => undefined);
    await this.chain.catch(() => undefined);
    await this.otr.close();
  }

  /**
   * The contact comes back: quits, then connects again under `nick` (default the same) with another key file (a
   * new key, for the key-changed case) or the same one; libotr starts fresh (no session, no known fingerprints).
   */
  async reconnect(o: { keyFile: string; account?: string; nick?: string; policy?: string }): Promise<LibotrIrcContact> {
    const nick = o.nick ?? this.irc.nick;
    await this.close("reconnecting");
    return LibotrIrcContact.connect({
      host: this.irc.host, port: this.irc.port, nick, account: o.account ?? this.account, remote: this.remote, keyFile: o.keyFile,
      timeoutMs: this.timeoutMs, ...(o.policy ? { policy: o.policy } : {}),
    });
  }
}
