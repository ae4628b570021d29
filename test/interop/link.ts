// Routes wire lines between our engine (an OtrConversation) and a libotr peer (the C helper), in order,
// until both sides are quiet, and records what each side reported. Not a test file: the interop tests use it.
import { OtrAccount, OtrConversation, POLICY, type OtrEvent, type OtrResult, type Policy } from "../../src/otr/index.js";
import { generateDsaKey, type DsaPrivateKey } from "../../src/otr/crypto/dsa.js";
import { LibotrPeer, injected, unhex, type HelperEvent, type LibotrPeerOptions } from "../harness/libotr.js";

/** Names on the simulated network: libotr is "alice" to us, we are "bob" to libotr. */
export const LIB_NAME = "alice";
export const OUR_NAME = "bob";

let cachedKey: DsaPrivateKey | null = null;
/** One DSA key per test process: generation is slow-ish and the tests are about the protocol. */
export function ourKey(): DsaPrivateKey {
  cachedKey ??= generateDsaKey();
  return cachedKey;
}

export function randomInstanceTag(): number {
  // valid tags are >= 0x100
  return 0x100 + Math.floor(Math.random() * (0xffffffff - 0x100));
}

export interface LinkOptions {
  version?: 2 | 3;              // 2: libotr allows only V2
  fragmentSize?: number;        // both sides
  ourPolicy?: Policy;
  libPolicy?: string;
  libotr?: LibotrPeerOptions;
  privateKey?: DsaPrivateKey;
}

export class Link {
  readonly ourEvents: OtrEvent[] = [];
  readonly libEvents: HelperEvent[] = [];
  /** Every wire line in order, for failure reports. */
  readonly trace: { from: "ours" | "libotr"; line: string }[] = [];

  private constructor(readonly lib: LibotrPeer, readonly account: OtrAccount, readonly ourInstance: number,
    public conv: OtrConversation) {}

  static async open(o: LinkOptions = {}): Promise<Link> {
    const libPolicy = o.libPolicy ?? (o.version === 2 ? "V2" : "V2|V3");
    const lib = await LibotrPeer.start({
      account: LIB_NAME, protocol: "irc", policy: libPolicy, maxMessageSize: o.fragmentSize ?? 0, ...o.libotr,
    });
    const instanceTag = randomInstanceTag();
    const account = new OtrAccount({
      privateKey: o.privateKey ?? ourKey(), instanceTag, policy: o.ourPolicy ?? POLICY.MANUAL,
      maxFragmentSize: o.fragmentSize ?? 0,
    });
    return new Link(lib, account, instanceTag, new OtrConversation(account, LIB_NAME));
  }

  /** A fresh conversation object on our side (a new session with the same libotr process). */
  renewOurs(): void { this.conv = new OtrConversation(this.account, LIB_NAME); }

  /** Takes the result of one of our calls, records its events and routes its lines until both sides are quiet. */
  async fromOurs(r: OtrResult): Promise<void> {
    this.ourEvents.push(...r.events);
    await this.pump(r.toSend, []);
  }

  /** Takes the events of one helper command and routes its injected lines until both sides are quiet. */
  async fromLib(evs: HelperEvent[]): Promise<void> {
    this.libEvents.push(...evs);
    await this.pump([], injected(evs));
  }

  private async pump(toLib: string[], toOurs: string[]): Promise<void> {
    const qLib = [...toLib], qOurs = [...toOurs];
    for (let guard = 0; qLib.length || qOurs.length; guard++) {
      if (guard > 10_000) throw new Error("interop link: message storm (more than 10,000 lines)");
      const l = qLib.shift();
      if (l !== undefined) {
        this.trace.push({ from: "ours", line: l });
        const evs = await this.lib.receive(OUR_NAME, l);
        this.libEvents.push(...evs);
        qOurs.push(...injected(evs));
      }
      const m = qOurs.shift();
      if (m !== undefined) {
        this.trace.push({ from: "libotr", line: m });
        const r = this.conv.receive(m);
        this.ourEvents.push(...r.events);
        qLib.push(...r.toSend);
      }
    }
  }

  /** Events recorded so far, then forgotten, so each step of a test looks at its own. */
  take(): { ours: OtrEvent[]; lib: HelperEvent[] } {
    return { ours: this.ourEvents.splice(0), lib: this.libEvents.splice(0) };
  }

  async close(): Promise<void> { await this.lib.close(); }
}

export const ourOfType = <T extends OtrEvent["type"]>(evs: OtrEvent[], type: T): Extract<OtrEvent, { type: T }>[] =>
  evs.filter((e): e is Extract<OtrEvent, { type: T }> => e.type === type);
export const libOfType = <T extends HelperEvent["ev"]>(evs: HelperEvent[], ev: T): Extract<HelperEvent, { ev: T }>[] =>
  evs.filter((e): e is Extract<HelperEvent, { ev: T }> => e.ev === ev);
export const libSmp = (evs: HelperEvent[]): string[] => libOfType(evs, "smp").map((e) => e.event);
export const libReceived = (evs: HelperEvent[]): string[] => libOfType(evs, "received").map((e) => unhex(e.text));

/** Fingerprint in any of the usual spellings -> 40 lowercase hex digits. */
export const normFp = (fp: string | Uint8Array | null | undefined): string =>
  fp == null ? "" : typeof fp === "string" ? fp.replace(/\s+/g, "").toLowerCase() : Buffer.from(fp).toString("hex");
export const hex = (u: Uint8Array | null | undefined): string => (u ? Buffer.from(u).toString("hex") : "");

/** UTF-8 text of exactly n bytes mixing 1-, 2-, 3- and 4-byte characters (ASCII-only when n is tiny). */
export function utf8Text(n: number, seed = 0): string {
  const alphabet = ["a", "Z", " ", "é", "ß", "€", "日", "本", "😀", "🔐", "ø", "\u00a0", "!"];
  let out = "", used = 0, i = seed;
  while (used < n) {
    const c = alphabet[i++ % alphabet.length]!;
    const len = Buffer.byteLength(c);
    if (used + len > n) { out += "x".repeat(n - used); break; }
    out += c; used += len;
  }
  return out;
}
