// Fragmentation (spec v3 "Fragmentation"): splitting an encoded message into "?OTR|s|r,k,n,piece," (v3) or
// "?OTR,k,n,piece," (v2) lines, and reassembling received ones. The reassembler bounds everything a peer
// controls (fragment count, total bytes, concurrent reassemblies, age): CVE-2016-2851 was libotr growing a
// reassembly buffer without limit until a 4 GB heap overflow.

export interface Fragment {
  version: 2 | 3;
  /** 0 for v2. */
  senderInstance: number;
  receiverInstance: number;
  k: number;
  n: number;
  piece: string;
}

/** Hard limits (defaults of Reassembler's options). */
export const MAX_FRAGMENTS = 256;
export const MAX_REASSEMBLY_BYTES = 256 * 1024;
export const MAX_PENDING_REASSEMBLIES = 4;
export const REASSEMBLY_TIMEOUT_MS = 120_000;

// As libotr's sscanf("...,%n%*[^,],%n"): the piece ends at the first comma after the header and anything after
// that comma is ignored. libotr fragments its own query message, whose explanation text contains commas.
const V3_RE = /^\?OTR\|([0-9a-fA-F]{1,8})\|([0-9a-fA-F]{1,8}),(\d{1,5}),(\d{1,5}),([^,]*),/;
const V2_RE = /^\?OTR,(\d{1,5}),(\d{1,5}),([^,]*),/;

/** Parse one fragment line; null if it is not exactly a well-formed fragment (k, n in 1..65535, k <= n, piece non-empty). */
export function parseFragment(text: string): Fragment | null {
  let f: Fragment;
  let m = V3_RE.exec(text);
  if (m) {
    f = { version: 3, senderInstance: parseInt(m[1]!, 16), receiverInstance: parseInt(m[2]!, 16), k: +m[3]!, n: +m[4]!, piece: m[5]! };
  } else {
    m = V2_RE.exec(text);
    if (!m) return null;
    f = { version: 2, senderInstance: 0, receiverInstance: 0, k: +m[1]!, n: +m[2]!, piece: m[3]! };
  }
  if (f.k < 1 || f.n < 1 || f.k > f.n || f.n > 0xffff || f.piece.length === 0) return null;
  return f;
}

const hex8 = (v: number) => v.toString(16).padStart(8, "0");
const dec5 = (v: number) => v.toString().padStart(5, "0");

/** Header + trailing comma length for a message of n fragments (5-digit k/n as libotr writes them). */
function overhead(version: 2 | 3): number {
  // v3 "?OTR|xxxxxxxx|xxxxxxxx,kkkkk,nnnnn," + "," ; v2 "?OTR,kkkkk,nnnnn," + ","
  return version === 3 ? 36 : 18;
}

/**
 * Split `text` so every line is at most maxSize characters. maxSize 0 (or a text that fits) gives [text].
 * Throws RangeError when maxSize leaves no room for a piece or more than 65535 fragments would be needed
 * (caller misuse: maxSize comes from configuration). `_env` is accepted for the shared contract; splitting is
 * deterministic and needs no randomness.
 */
export function fragment(text: string, maxSize: number, version: 2 | 3, senderTag: number, receiverTag: number, _env?: unknown): string[] {
  if (maxSize <= 0 || text.length <= maxSize) return [text];
  const room = maxSize - overhead(version);
  if (room < 1) throw new RangeError(`fragment: maxSize ${maxSize} leaves no room for data`);
  const n = Math.ceil(text.length / room);
  if (n > 0xffff) throw new RangeError("fragment: message needs more than 65535 fragments");
  const out: string[] = [];
  for (let k = 1; k <= n; k++) {
    const piece = text.slice((k - 1) * room, k * room);
    out.push(
      version === 3
        ? `?OTR|${hex8(senderTag >>> 0)}|${hex8(receiverTag >>> 0)},${dec5(k)},${dec5(n)},${piece},`
        : `?OTR,${dec5(k)},${dec5(n)},${piece},`,
    );
  }
  return out;
}

export interface ReassemblerOptions {
  /** Our instance tag: v3 fragments addressed to another (non-zero) instance are refused. 0 = accept any. */
  ourInstance?: number;
  maxFragments?: number;
  maxBytes?: number;
  maxPending?: number;
  timeoutMs?: number;
}

export type ReassemblyResult =
  | { status: "incomplete" }
  | { status: "complete"; text: string; version: 2 | 3; senderInstance: number }
  | { status: "dropped"; reason: "fragment-limit" | "size-limit" | "out-of-order" | "timeout" | "pending-limit" }
  | { status: "for-other-instance" };

interface Pending {
  k: number;
  n: number;
  pieces: string[];
  bytes: number;
  started: number;
}

/**
 * Reassembles fragments per (version, sender instance): the spec keeps one stored fragment per correspondent,
 * and v3 peers logged in twice interleave their fragments, so each sender instance has its own slot.
 */
export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private readonly ourInstance: number;
  private readonly maxFragments: number;
  private readonly maxBytes: number;
  private readonly maxPending: number;
  private readonly timeoutMs: number;

  /** A number is taken as `ourInstance` with default limits. */
  constructor(opts: ReassemblerOptions | number = {}) {
    const o: ReassemblerOptions = typeof opts === "number" ? { ourInstance: opts } : opts;
    this.ourInstance = o.ourInstance ?? 0;
    this.maxFragments = Math.min(o.maxFragments ?? MAX_FRAGMENTS, 0xffff);
    this.maxBytes = o.maxBytes ?? MAX_REASSEMBLY_BYTES;
    this.maxPending = Math.max(1, o.maxPending ?? MAX_PENDING_REASSEMBLIES);
    this.timeoutMs = o.timeoutMs ?? REASSEMBLY_TIMEOUT_MS;
  }

  /** Number of reassemblies in progress. */
  get size(): number {
    return this.pending.size;
  }

  /** Bytes held across all pending reassemblies. */
  get heldBytes(): number {
    let t = 0;
    for (const p of this.pending.values()) t += p.bytes;
    return t;
  }

  /** Feed one parsed fragment received at time `now` (ms). */
  push(f: Fragment, now: number): ReassemblyResult {
    if (f.version === 3 && this.ourInstance !== 0 && f.receiverInstance !== 0 && f.receiverInstance !== this.ourInstance) {
      return { status: "for-other-instance" };
    }
    const key = `${f.version}:${f.senderInstance}`;
    if (f.k < 1 || f.n < 1 || f.k > f.n) return this.reset(key, "out-of-order");
    if (f.n > this.maxFragments) return this.reset(key, "fragment-limit");
    let cur = this.pending.get(key);
    if (cur && now - cur.started > this.timeoutMs) {
      this.pending.delete(key);
      cur = undefined;
      if (f.k !== 1) return { status: "dropped", reason: "timeout" };
    }
    if (f.k === 1) {
      if (cur) this.pending.delete(key);
      if (f.piece.length > this.maxBytes) return { status: "dropped", reason: "size-limit" };
      if (this.pending.size >= this.maxPending) {
        // Evict the oldest reassembly so a peer cycling instance tags cannot hold unbounded state.
        const oldest = this.pending.keys().next().value;
        if (oldest !== undefined) this.pending.delete(oldest);
      }
      const p: Pending = { k: 1, n: f.n, pieces: [f.piece], bytes: f.piece.length, started: now };
      this.pending.set(key, p);
      return this.finishIfDone(key, p, f);
    }
    if (cur && f.n === cur.n && f.k === cur.k + 1) {
      if (cur.bytes + f.piece.length > this.maxBytes) return this.reset(key, "size-limit");
      cur.pieces.push(f.piece);
      cur.bytes += f.piece.length;
      cur.k = f.k;
      return this.finishIfDone(key, cur, f);
    }
    return this.reset(key, "out-of-order");
  }

  /**
   * Text-level entry point: parse a fragment line and feed it. `complete` is the reassembled message, `dropped`
   * the reasons of anything discarded (including "bad-fragment" for an unparsable line and expired reassemblies).
   */
  add(text: string, now: number): { complete: string | null; dropped: string[]; forOtherInstance: boolean } {
    const dropped = this.expire(now);
    const at = Math.min(...["?OTR|", "?OTR,"].map((m) => text.indexOf(m)).filter((i) => i >= 0), Infinity);
    const f = at === Infinity ? null : parseFragment(text.slice(at));
    if (!f) return { complete: null, dropped: [...dropped, "bad-fragment"], forOtherInstance: false };
    const r = this.push(f, now);
    switch (r.status) {
      case "complete":
        return { complete: r.text, dropped, forOtherInstance: false };
      case "dropped":
        return { complete: null, dropped: [...dropped, r.reason], forOtherInstance: false };
      case "for-other-instance":
        return { complete: null, dropped, forOtherInstance: true };
      default:
        return { complete: null, dropped, forOtherInstance: false };
    }
  }

  /** Drop reassemblies older than the timeout (call from poll()); one "timeout" per expired reassembly. */
  expire(now: number): string[] {
    const out: string[] = [];
    for (const [key, p] of this.pending) {
      if (now - p.started > this.timeoutMs) {
        this.pending.delete(key);
        out.push("timeout");
      }
    }
    return out;
  }

  /** Forget everything (spec: an unfragmented message clears the stored fragment). */
  clear(): void {
    this.pending.clear();
  }

  private reset(key: string, reason: "fragment-limit" | "size-limit" | "out-of-order"): ReassemblyResult {
    this.pending.delete(key);
    return { status: "dropped", reason };
  }

  private finishIfDone(key: string, p: Pending, f: Fragment): ReassemblyResult {
    if (p.k !== p.n) return { status: "incomplete" };
    this.pending.delete(key);
    return { status: "complete", text: p.pieces.join(""), version: f.version, senderInstance: f.senderInstance };
  }
}
