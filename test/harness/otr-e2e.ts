// One end-to-end world for the OTR tests: ngIRCd behind a TCP tap (every byte the bridge sends to the IRC server is
// kept), Synapse with the bridge's registration, the daemon started in-process through startBridge on a SQLite store
// with a master key file (so it can be stopped and started again on the same state), logging at debug level
// through the real logger (createLogger, plus the appservice library's lines) into a file, and Alice, a Matrix
// user with a management room and a puppet connected to the network.
import assert from "node:assert/strict";
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify, parse as parseYaml } from "yaml";
import { startSynapse, type SynapseInstance } from "./synapse.js";
import { startNgircd, type NgircdInstance } from "./ngircd.js";
import { startTcpTap, type TcpTap } from "./tcp-tap.js";
import { MatrixClient, type MatrixEvent } from "./matrix-client.js";
import { E2eeUser } from "./e2ee-user.js";
import { connectIrc } from "./irc-client.js";
import { freePort } from "./ports.js";
import { logRoot, tempDir } from "./proc.js";
import { LibotrIrcContact, normalizeFingerprint } from "./libotr-irc.js";
import { buildRegistration, parseConfig, renderRegistration } from "../../src/config/index.js";
import { createLogger, type Logger } from "../../src/log/index.js";
import { startBridge, type RunningBridge } from "../../src/main.js";
import { openStore, parseMasterKey, type Store } from "../../src/store/index.js";
import { decodeStoredOtrKey } from "../../src/bridge/keys-cli.js";

export const LONG = 120_000;
export const NOTICE_KEY = "org.matrix_otr_irc.notice";
export const OTR_KEY = "org.matrix_otr_irc.otr";
export const STATUS_TYPE = "org.matrix_otr_irc.otr_status";

export interface OtrStatus { state: string; verified: boolean; fingerprint: string | null; protocol_version: number | null }

let libraryLogsRouted = false;

export class OtrWorld {
  irc!: NgircdInstance;
  tap!: TcpTap;
  hs!: SynapseInstance;
  bridge: RunningBridge | null = null;
  alice!: MatrixClient;
  /** With `encryption`: Alice's E2EE client (matrix-js-sdk, Rust crypto), which owns the management room. */
  ealice: E2eeUser | null = null;
  aliceToken = "";
  mgmt = "";
  readonly domain = "localhost";
  readonly botId = "@ircotr:localhost";
  readonly dir: string;
  readonly logPath: string;
  private configText = "";
  private registrationPath = "";
  private logger!: Logger;
  readonly contacts: LibotrIrcContact[] = [];

  /** `network`: extra settings for network "local" (e.g. an idle timeout). */
  /** `encryption`: run with end-to-bridge encryption (Synapse with the appservice E2EE flags); off by default. */
  /**
   * `persistSessions`: otr.persist_sessions, off unless asked for: these worlds test what a restart does without
   * saved sessions (a new AKE after it); test/e2e/otr-kill.test.ts tests the default, on. `moreUsers`: localparts
   * allowed to use the bridge besides alice.
   */
  constructor(readonly name: string, readonly options: { defaultPolicy?: string; network?: Record<string, unknown>; encryption?: boolean; persistSessions?: boolean; moreUsers?: string[] } = {}) {
    this.dir = tempDir(`otr-${name}`);
    this.logPath = join(logRoot(), `bridge-${name}-${process.pid}.log`);
  }

  async start(): Promise<void> {
    this.irc = await startNgircd();
    this.tap = await startTcpTap(this.irc.host, this.irc.port);
    const asPort = await freePort();
    const configText = (hsUrl: string) => stringify({
      homeserver: { url: hsUrl, domain: this.domain },
      appservice: { port: asPort, bind_address: "127.0.0.1", url: `http://127.0.0.1:${asPort}`, bot_localpart: "ircotr" },
      // The bridge reaches ngIRCd only through the tap.
      networks: [{ id: "local", name: "Local ngIRCd", host: this.tap.host, port: this.tap.port, tls: false, ...this.options.network }],
      permissions: Object.fromEntries([`@alice:${this.domain}`, ...(this.options.moreUsers ?? []).map((u) => `@${u}:${this.domain}`)]
        .map((u) => [u, "user"])),
      otr: { default_policy: this.options.defaultPolicy ?? "opportunistic", persist_sessions: this.options.persistSessions ?? false },
      store: { engine: "sqlite", sqlite_path: join(this.dir, "bridge.db"), master_key_file: join(this.dir, "master.key") },
      metrics: { enabled: false },
      logging: { level: "debug", format: "json" },
      encryption: { allow: this.options.encryption === true, require: this.options.encryption === true },
    });
    const draft = parseConfig(configText("http://127.0.0.1:1"), `${this.name}.yaml`, { env: {} });
    assert.ok(draft.ok, draft.ok ? "" : JSON.stringify(draft.errors));
    this.registrationPath = join(this.dir, "registration.yaml");
    writeFileSync(this.registrationPath, renderRegistration(buildRegistration(draft.config)), { mode: 0o600 });
    this.hs = await startSynapse({ registrationPath: this.registrationPath, e2ee: this.options.encryption === true });
    this.configText = configText(this.hs.url);
    writeFileSync(this.logPath, "");
    this.logger = createLogger({ level: "debug", format: "json" }, { sink: { write: (line: string) => appendFileSync(this.logPath, line) } });
    if (!libraryLogsRouted) {
      libraryLogsRouted = true;
      (await import("../../src/log/library.js")).routeLibraryLogs(this.logger);
    }
    await this.startBridge();
    const a = await this.hs.registerUser("alice", "alice-pw");
    this.aliceToken = a.accessToken;
    // With encryption, this client (the registration's device, which has no keys) only reads state and unencrypted
    // events: reading encrypted ones is the E2EE client's job, on a device of its own.
    this.alice = new MatrixClient(this.hs.url, a.userId, a.accessToken);
    if (this.options.encryption) {
      const e = (this.ealice = await E2eeUser.login(this.hs, "alice", "alice-pw", { deviceName: "alice-element" }));
      await e.bootstrapCrossSigning();
      this.mgmt = await e.createEncryptedDm(this.botId);
      await e.waitForMessage(this.mgmt, (m) => /management room/.test(String(m.content.body)) && m.sender === this.botId, LONG);
      await e.sendText(this.mgmt, "connect local");
      await e.waitForMessage(this.mgmt, "Connected to local as alice.", LONG);
      return;
    }
    this.mgmt = await this.alice.createDm(this.botId);
    await this.alice.waitForMessage(this.mgmt, /management room/, { sender: this.botId, timeoutMs: LONG });
    const from = this.alice.mark();
    await this.alice.sendText(this.mgmt, "connect local");
    await this.alice.waitForMessage(this.mgmt, "Connected to local as alice.", { sender: this.botId, timeoutMs: LONG, from });
  }

  /** Starts the daemon on the same config, store and master key (a restart when it ran before). */
  async startBridge(): Promise<void> {
    const parsed = parseConfig(this.configText, `${this.name}.yaml`, { env: {} });
    assert.ok(parsed.ok, parsed.ok ? "" : JSON.stringify(parsed.errors));
    this.bridge = await startBridge({ config: parsed.config, registrationPath: this.registrationPath, logger: this.logger });
  }

  async stopBridge(): Promise<void> {
    await this.bridge?.stop();
    this.bridge = null;
  }

  /** Stops and starts the daemon, then waits until the puppet is back on IRC (seen by `watcher`, an IRC client). */
  async restartBridge(watcher: LibotrIrcContact, nick = "alice"): Promise<void> {
    await this.stopBridge();
    await this.startBridge();
    const deadline = Date.now() + LONG;
    for (;;) {
      const from = watcher.irc.mark();
      watcher.irc.send(`ISON ${nick}`);
      const r = await watcher.irc.waitFor((m) => m.command === "303", 30_000, from);
      if (new RegExp(`(^|\\s)${nick}(\\s|$)`, "i").test(r.params.at(-1) ?? "")) return;
      if (Date.now() > deadline) throw new Error("the puppet did not come back after the restart");
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  async stop(): Promise<void> {
    await this.ealice?.stop().catch(() => undefined);
    for (const c of this.contacts) await c.close().catch(() => undefined);
    await this.stopBridge().catch(() => undefined);
    await this.hs?.stop();
    await this.tap?.stop();
    await this.irc?.stop();
  }

  ghost(nick: string): string { return `@irc_local_${nick.toLowerCase()}:${this.domain}`; }

  /** A libotr contact on IRC talking to Alice's puppet. */
  async contact(nick: string, keyFile: string, account = nick): Promise<LibotrIrcContact> {
    const c = await LibotrIrcContact.connect({ host: this.irc.host, port: this.irc.port, nick, account, remote: "alice", keyFile });
    this.contacts.push(c);
    return c;
  }

  /** Replaces a contact in the cleanup list (after reconnect). */
  replaceContact(old: LibotrIrcContact, now: LibotrIrcContact): LibotrIrcContact {
    const i = this.contacts.indexOf(old);
    if (i >= 0) this.contacts[i] = now; else this.contacts.push(now);
    return now;
  }

  /** The contact says `hello` in plaintext; Alice joins the DM room its ghost invites her to. */
  async openDmFromIrc(c: LibotrIrcContact, hello: string): Promise<string> {
    const ghost = this.ghost(c.nick);
    c.irc.privmsg("alice", hello);
    const room = await this.alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    await this.alice.join(room);
    await this.alice.waitForMessage(room, hello, { sender: ghost, timeoutMs: LONG });
    return room;
  }

  /** Alice opens the DM from the management room (`msg local <nick>`) and joins it. */
  async openDmFromMatrix(nick: string): Promise<string> {
    const ghost = this.ghost(nick);
    const from = this.alice.mark();
    await this.alice.sendText(this.mgmt, `msg local ${nick}`);
    await this.alice.waitForMessage(this.mgmt, new RegExp(`direct chat with ${nick} on local`), { sender: this.botId, timeoutMs: LONG, from });
    const room = await this.alice.waitForInvite((_r, state) => state.some((e) => e.type === "m.room.member" && e.sender === ghost), LONG);
    await this.alice.join(room);
    return room;
  }

  /** The next OTR notice with `code` in `room` (from the ghost), after timeline index `from`. */
  notice(room: string, code: string, from: number, ghost?: string): Promise<MatrixEvent & { room_id: string }> {
    return this.alice.waitForEvent(room, (e) => e.type === "m.room.message" && e.content[NOTICE_KEY] === code
      && (ghost === undefined || e.sender === ghost), LONG, from);
  }

  /** Sends `!otr ...` in a DM room; resolves with its event id and the bridge's `command` reply. */
  async command(room: string, text: string): Promise<{ eventId: string; reply: MatrixEvent }> {
    const from = this.alice.mark();
    const eventId = await this.alice.sendText(room, text);
    const reply = await this.notice(room, "command", from);
    return { eventId, reply };
  }

  /** Waits until the event is redacted (its content is gone on the server). */
  async waitRedacted(room: string, eventId: string): Promise<void> {
    const deadline = Date.now() + LONG;
    for (;;) {
      const e = await this.alice.getEvent(room, eventId);
      if (typeof e.content.body !== "string") return;
      if (Date.now() > deadline) throw new Error(`event ${eventId} was not redacted`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** Polls the room's OTR status state event until `pred` holds; returns it. */
  async status(room: string, pred: (s: OtrStatus) => boolean, what: string): Promise<OtrStatus> {
    const deadline = Date.now() + LONG;
    let last: Record<string, unknown> | null = null;
    for (;;) {
      last = await this.alice.getStateEvent(room, STATUS_TYPE);
      if (last && pred(last as unknown as OtrStatus)) return last as unknown as OtrStatus;
      if (Date.now() > deadline) throw new Error(`OTR status of ${room} never became ${what}; last: ${JSON.stringify(last)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** The secrets the run must never write to a log: the appservice tokens and the store's master key. */
  infrastructureSecrets(): string[] {
    const reg = parseYaml(readFileSync(this.registrationPath, "utf8")) as { as_token: string; hs_token: string };
    return [reg.as_token, reg.hs_token, readFileSync(join(this.dir, "master.key"), "utf8").trim(), this.aliceToken];
  }

  /** The daemon's store, opened as the daemon opens it (only while the daemon is stopped). */
  async openStore(): Promise<Store> {
    const parsed = parseConfig(this.configText, `${this.name}.yaml`, { env: {} });
    assert.ok(parsed.ok);
    const key = parseMasterKey(readFileSync(join(this.dir, "master.key"), "utf8"), "test");
    return openStore(parsed.config.store, key);
  }

  /** Alice's long-term OTR private key on network local, as the secrets a log must never show (x in hex and decimal). */
  async otrKeySecrets(): Promise<string[]> {
    const store = await this.openStore();
    try {
      const bytes = await store.getOtrPrivateKey(`@alice:${this.domain}`, "local");
      assert.ok(bytes, "the daemon stored Alice's OTR key");
      const k = decodeStoredOtrKey(bytes);
      assert.ok(k, "the stored key decodes");
      const x = k.key.x;
      return [x.toString(16), x.toString(16).toUpperCase(), x.toString(10)];
    } finally {
      await store.close();
    }
  }

  readLog(): string { return readFileSync(this.logPath, "utf8"); }

  /** A raw IRC client (no OTR) on the server, e.g. to watch for the puppet. */
  rawIrc(nick: string) { return connectIrc(this.irc.host, this.irc.port, nick); }
}

/** The fingerprint in five groups of eight hex digits inside a notice's body, normalized, or null. */
export function fingerprintInBody(body: unknown): string | null {
  const m = /\b([0-9a-f]{8}(?:[ :]?[0-9a-f]{8}){4})\b/i.exec(String(body ?? ""));
  return m ? normalizeFingerprint(m[1]!.replace(/:/g, "")) : null;
}

/** The `org.matrix_otr_irc.otr` flags of a bridged message. */
export function otrFlags(e: MatrixEvent): { encrypted?: unknown; verified?: unknown } {
  return (e.content[OTR_KEY] ?? {}) as { encrypted?: unknown; verified?: unknown };
}
