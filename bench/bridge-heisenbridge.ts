// Heisenbridge (../shared/peers/heisenbridge, upstream 1585bfa, MIT) as the bench runs it: its source copied into the
// Synapse sid chroot next to the homeserver's files and run there with python3 on Debian sid's packages
// (scripts/setup-heisenbridge-deps.sh). Nothing of it is part of this project; it is only measured.
// Its registration is written here rather than with --generate, because --generate claims @irc_.*, the namespace
// of our bridge on the same homeserver: @hbirc_.* instead (Heisenbridge derives its puppet prefix from the regex).
// Setup, as its README describes: the owner (-o) adds the network, its server and a mask letting every local user
// in; then each user DMs @heisenbridge (a control room), types `OPEN local` (it invites to a network room) and
// `CONNECT` there, done when the server's 001 welcome is relayed as a notice into the network room.
import { cpSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { stringify } from "yaml";
import { SYNAPSE_CHROOT } from "../test/harness/synapse.js";
import { freePort } from "../test/harness/ports.js";
import { spawnService, waitForPort, type Service } from "../test/harness/proc.js";
import { bodyOf } from "./bridge-inbox.js";
import type { Subject, World } from "./bridge-subject.js";

export const HEISENBRIDGE_SRC = process.env.HEISENBRIDGE_SRC ?? "/work/shared/peers/heisenbridge";
export const HB_BOT = "heisenbridge";
const STEP_TIMEOUT_MS = 180_000;

export class Heisenbridge implements Subject {
  readonly name = "heisenbridge";
  readonly otr = false;
  readonly metricsUrl = null;
  private svc: Service | null = null;
  private port = 0;
  private readonly asToken = randomBytes(24).toString("hex");
  private readonly hsToken = randomBytes(24).toString("hex");
  readonly registrationPath: string;
  private control = new Map<string, string>();
  private network = new Map<string, string>();

  constructor(private readonly w: World, private readonly owner: string) {
    this.registrationPath = join(w.dir, "heisenbridge-registration.yaml");
  }

  get pid(): number { return this.svc?.pid ?? 0; }
  get botId(): string { return `@${HB_BOT}:${this.w.domain}`; }
  get logPath(): string { return this.svc?.logPath ?? ""; }

  private registration(): string {
    return stringify({
      id: "heisenbridge", url: `http://127.0.0.1:${this.port}`, as_token: this.asToken, hs_token: this.hsToken,
      rate_limited: false, sender_localpart: HB_BOT,
      namespaces: { users: [{ regex: "@hbirc_.*", exclusive: true }], aliases: [], rooms: [] },
    });
  }

  async register(): Promise<void> {
    this.port = await freePort();
    writeFileSync(this.registrationPath, this.registration(), { mode: 0o600 });
  }

  /** `hsHostDir`: the Synapse instance's directory inside the chroot (host path), `hsDir` the same as seen inside. */
  async startIn(hsHostDir: string, hsDir: string): Promise<void> {
    const src = join(hsHostDir, "heisenbridge-src");
    mkdirSync(src, { recursive: true });
    cpSync(join(HEISENBRIDGE_SRC, "heisenbridge"), join(src, "heisenbridge"), { recursive: true });
    writeFileSync(join(hsHostDir, "heisenbridge.yaml"), this.registration(), { mode: 0o600 });
    this.svc = spawnService({
      name: "heisenbridge",
      cmd: "chroot",
      args: [SYNAPSE_CHROOT, "python3", "-m", "heisenbridge", "-c", `${hsDir}/heisenbridge.yaml`, "-l", "127.0.0.1",
        "-p", String(this.port), "-o", this.owner, ...(process.env.HEISENBRIDGE_VERBOSE ? ["-vv"] : []), this.w.hsUrl],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8", HOME: "/root", PYTHONUNBUFFERED: "1",
        PYTHONPATH: `${hsDir}/heisenbridge-src` },
    });
    await waitForPort("127.0.0.1", this.port, 120_000, this.svc);
    // The owner's control room is opened by the bridge itself at start; the network is set up there.
    const ctl = await this.w.inbox.joined(this.owner, (e) => e.sender === this.botId, STEP_TIMEOUT_MS, "Heisenbridge's owner control room");
    this.control.set(this.owner, ctl.room_id);
    for (const [cmd, reply] of [
      ["ADDNETWORK local", /Network added/i],
      [`ADDSERVER local ${this.w.ircHost} ${this.w.ircPort}`, /Server added/i],
      [`ADDMASK *:${this.w.domain}`, /Mask added/i],
    ] as const) {
      const done = this.w.inbox.message(ctl.room_id, (e) => e.sender === this.botId && reply.test(bodyOf(e)), STEP_TIMEOUT_MS, `Heisenbridge: ${cmd}`);
      await this.w.users.sendText(this.owner, ctl.room_id, cmd);
      await done;
    }
  }

  start(): Promise<void> { throw new Error("Heisenbridge starts with startIn(), inside the Synapse chroot"); }

  async prepare(userId: string): Promise<void> {
    const room = await this.w.users.createDm(userId, this.botId);
    this.control.set(userId, room);
    await this.w.inbox.message(room, (e) => e.sender === this.botId, STEP_TIMEOUT_MS, `${userId}'s Heisenbridge control room`);
    const net = this.w.inbox.joined(userId, (e) => e.sender === this.botId && e.room_id !== room && e.roomType !== "m.space", STEP_TIMEOUT_MS, `${userId}'s network room`);
    await this.w.users.sendText(userId, room, "OPEN local");
    this.network.set(userId, (await net).room_id);
  }

  async connect(userId: string): Promise<void> {
    const room = this.network.get(userId)!;
    const done = this.w.inbox.message(room, (e) => /Welcome to the Internet Relay Network/i.test(bodyOf(e)), STEP_TIMEOUT_MS, `${userId} connected (Heisenbridge)`);
    await this.w.users.sendText(userId, room, "CONNECT");
    await done;
  }

  puppetNick(localpart: string): string { return localpart; }

  ownRooms(userId: string): Set<string> {
    return new Set([this.control.get(userId), this.network.get(userId)].filter((x): x is string => !!x));
  }

  async stop(): Promise<void> { await this.svc?.stop(30_000); }
}
