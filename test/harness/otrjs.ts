// otr.js (npm `otr` 0.2.16, arlolra) as a second, independent OTR peer for interop tests.
// otr.js emits outgoing lines asynchronously (setTimeout chains even with send_interval 0), so `drain()`
// waits until its outgoing buffer is empty; everything else is synchronous.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);

// Minimal shape of the parts of otr.js we use (the package ships no types).
interface OtrJsDsa { fingerprint(): string; packPrivate(): string }
interface OtrJsDsaCtor {
  new (obj?: unknown): OtrJsDsa;
  parsePrivate(s: string, libotr?: boolean): unknown;
}
interface OtrJsInstance {
  ALLOW_V2: boolean; ALLOW_V3: boolean; REQUIRE_ENCRYPTION: boolean; SEND_WHITESPACE_TAG: boolean;
  WHITESPACE_START_AKE: boolean; ERROR_START_AKE: boolean;
  msgstate: number; outgoing: unknown[]; ssid: string | null;
  their_priv_pk: OtrJsDsa | null;
  ake: { otr_version: string };
  on(ev: string, fn: (...args: any[]) => void): void;
  sendMsg(msg: string): void; receiveMsg(msg: string): void; sendQueryMsg(): void; endOtr(cb?: () => void): void;
  smpSecret(secret: string, question?: string): void;
  sendFile(filename: string): void;
}
interface OtrJsCtor {
  new (opts: { priv: OtrJsDsa; fragment_size?: number; send_interval?: number; instance_tag?: string; debug?: boolean }): OtrJsInstance;
  makeInstanceTag(): string;
  CONST: Record<string, number>;
}
const otrjs = require("otr") as { DSA: OtrJsDsaCtor; OTR: OtrJsCtor };

export const MSGSTATE = { PLAINTEXT: 0, ENCRYPTED: 1, FINISHED: 2 } as const;

/**
 * A DSA key for otr.js. Keys from the libotr vector file load instantly; generating one in otr.js's
 * pure-JS BigInt takes seconds, so tests use these (index 0..n-1).
 */
export function otrjsVectorKey(index = 0): { key: OtrJsDsa; libotrKeyFile: string; fingerprint: string } {
  const here = dirname(fileURLToPath(import.meta.url));
  const v = JSON.parse(readFileSync(join(here, "..", "vectors", "libotr-dsa.json"), "utf8")) as
    { keys: { libotr_key_file: string; fingerprint: string }[] };
  const k = v.keys[index];
  if (!k) throw new Error(`no vector key ${index}`);
  const file = Buffer.from(k.libotr_key_file, "hex").toString("utf8");
  return { key: new otrjs.DSA(otrjs.DSA.parsePrivate(file, true)), libotrKeyFile: file, fingerprint: k.fingerprint };
}

export type OtrjsEvent =
  | { type: "ui"; text: string; encrypted: boolean }
  | { type: "status"; status: "query-sent" | "ake-init" | "ake-success" | "end-otr" | number }
  | { type: "error"; text: string; severity: string }
  | { type: "smp"; kind: string; data: unknown; act: unknown }
  | { type: "file"; direction: string; key: string; filename: string };

const STATUS: Record<number, "query-sent" | "ake-init" | "ake-success" | "end-otr"> = {
  0: "query-sent", 1: "ake-init", 2: "ake-success", 3: "end-otr",
};

export interface OtrjsPeerOptions {
  key?: OtrJsDsa;
  fragmentSize?: number;
  allowV2?: boolean;
  allowV3?: boolean;
}

/** One otr.js conversation (otr.js keeps one OTR object per buddy). */
export class OtrjsPeer {
  readonly otr: OtrJsInstance;
  readonly events: OtrjsEvent[] = [];
  private outbox: string[] = [];

  constructor(o: OtrjsPeerOptions = {}) {
    const key = o.key ?? otrjsVectorKey(0).key;
    this.otr = new otrjs.OTR({ priv: key, fragment_size: o.fragmentSize ?? 0, send_interval: 0, instance_tag: otrjs.OTR.makeInstanceTag() });
    if (o.allowV2 !== undefined) this.otr.ALLOW_V2 = o.allowV2;
    if (o.allowV3 !== undefined) this.otr.ALLOW_V3 = o.allowV3;
    this.otr.on("io", (msg: string) => { this.outbox.push(msg); });
    this.otr.on("ui", (msg: string, encrypted: boolean) => { this.events.push({ type: "ui", text: msg, encrypted }); });
    this.otr.on("status", (s: number) => { this.events.push({ type: "status", status: STATUS[s] ?? s }); });
    this.otr.on("error", (err: string, severity: string) => { this.events.push({ type: "error", text: String(err), severity }); });
    this.otr.on("smp", (kind: string, data: unknown, act: unknown) => { this.events.push({ type: "smp", kind, data, act }); });
    this.otr.on("file", (direction: string, key: string, filename: string) => {
      this.events.push({ type: "file", direction, key, filename });
    });
  }

  /** Waits for otr.js's asynchronous sender and returns (and clears) the lines it emitted. */
  async drain(): Promise<string[]> {
    for (let i = 0; i < 10_000; i++) {
      await new Promise((r) => setTimeout(r, 0));
      if (this.otr.outgoing.length === 0) break;
    }
    await new Promise((r) => setTimeout(r, 0));
    return this.outbox.splice(0);
  }

  /** Events since the last call. */
  takeEvents(): OtrjsEvent[] { return this.events.splice(0); }

  receive(line: string): void { this.otr.receiveMsg(line); }
  send(text: string): void { this.otr.sendMsg(text); }
  query(): void { this.otr.sendQueryMsg(); }
  end(): void { this.otr.endOtr(); }
  get encrypted(): boolean { return this.otr.msgstate === MSGSTATE.ENCRYPTED; }
  get msgstate(): number { return this.otr.msgstate; }
  /** Peer's fingerprint as otr.js formats it (40 lowercase hex digits). */
  theirFingerprint(): string | null { return this.otr.their_priv_pk ? this.otr.their_priv_pk.fingerprint() : null; }
}
