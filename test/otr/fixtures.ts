// Shared helpers for the engine tests: a deterministic OtrEnv, cached DSA keys, a pair of conversations
// wired back to back, and a deep snapshot of a conversation's state for "nothing changed" assertions.
import { createHash } from "node:crypto";
import { generateDsaKey, type DsaPrivateKey } from "../../src/otr/crypto/dsa.js";
import { OtrAccount, OtrConversation, POLICY, type OtrEnv, type OtrEvent, type Policy } from "../../src/otr/index.js";

/** Deterministic randomness (SHA-256 in counter mode over a seed) and a hand-driven clock. */
export class TestEnv implements OtrEnv {
  private counter = 0;
  clock = 1_700_000_000_000;
  /** Queue of byte strings returned verbatim by the next random() calls of matching length (for forcing values). */
  forced: Uint8Array[] = [];
  constructor(private readonly seed: string) {}
  random(n: number): Uint8Array {
    const f = this.forced[0];
    if (f !== undefined && f.length === n) {
      this.forced.shift();
      return f.slice();
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const block = createHash("sha256").update(`${this.seed}/${this.counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - off)), off);
      off += 32;
    }
    return out;
  }
  now(): number {
    return this.clock;
  }
}

const keyCache: DsaPrivateKey[] = [];
/** DSA keys made once per test process (key generation is the slow part). */
export function testKey(i: number): DsaPrivateKey {
  while (keyCache.length <= i) keyCache.push(generateDsaKey());
  return keyCache[i]!;
}

export interface Side {
  env: TestEnv;
  account: OtrAccount;
  conv: OtrConversation;
  events: OtrEvent[];
}

export function makeSide(opts: {
  name: string;
  key?: number;
  tag?: number;
  policy?: Policy;
  maxFragmentSize?: number;
  peer?: string;
  seed?: string;
}): Side {
  const env = new TestEnv(opts.seed ?? opts.name);
  const account = new OtrAccount({
    privateKey: testKey(opts.key ?? 0),
    instanceTag: opts.tag ?? 0x1000,
    policy: opts.policy ?? POLICY.MANUAL,
    env,
    maxFragmentSize: opts.maxFragmentSize ?? 0,
  });
  return { env, account, conv: new OtrConversation(account, opts.peer ?? "peer"), events: [] };
}

export function makePair(
  a: Partial<Parameters<typeof makeSide>[0]> = {},
  b: Partial<Parameters<typeof makeSide>[0]> = {},
): [Side, Side] {
  return [
    makeSide({ name: "alice", key: 0, tag: 0x11111111, ...a }),
    makeSide({ name: "bob", key: 1, tag: 0x22222222, ...b }),
  ];
}

/**
 * Deliver lines alternately until nobody has anything left to say. `lines` are from `from` to the other side.
 * Returns how many lines crossed. A hook can drop or rewrite any line in flight.
 */
export function pump(
  from: Side,
  to: Side,
  lines: string[],
  hook?: (line: string, sender: Side) => string | null,
  maxRounds = 200,
): number {
  let crossed = 0;
  let queue: Array<{ line: string; sender: Side; receiver: Side }> = lines.map((line) => ({ line, sender: from, receiver: to }));
  for (let round = 0; queue.length > 0; round++) {
    if (round > maxRounds) throw new Error("pump: no quiescence");
    const next: typeof queue = [];
    for (const { line, sender, receiver } of queue) {
      const l = hook ? hook(line, sender) : line;
      if (l === null) continue;
      crossed++;
      const r = receiver.conv.receive(l);
      receiver.events.push(...r.events);
      for (const reply of r.toSend) next.push({ line: reply, sender: receiver, receiver: sender });
    }
    queue = next;
  }
  return crossed;
}

/** Deliver lines from both sides at once (crossing messages), until quiet. */
export function pumpBoth(a: Side, b: Side, fromA: string[], fromB: string[], hook?: (line: string, sender: Side) => string | null): void {
  let queue: Array<{ line: string; sender: Side; receiver: Side }> = [
    ...fromA.map((line) => ({ line, sender: a, receiver: b })),
    ...fromB.map((line) => ({ line, sender: b, receiver: a })),
  ];
  for (let round = 0; queue.length > 0; round++) {
    if (round > 200) throw new Error("pumpBoth: no quiescence");
    const next: typeof queue = [];
    for (const { line, sender, receiver } of queue) {
      const l = hook ? hook(line, sender) : line;
      if (l === null) continue;
      const r = receiver.conv.receive(l);
      receiver.events.push(...r.events);
      for (const reply of r.toSend) next.push({ line: reply, sender: receiver, receiver: sender });
    }
    queue = next;
  }
}

/** Run the AKE from `a`'s query; returns both sides' events of the exchange. */
export function establish(a: Side, b: Side): void {
  const q = a.conv.startAke();
  pump(a, b, q.toSend);
}

/** Send from one side and deliver; returns the receiver's events for it. */
export function say(from: Side, to: Side, text: string): OtrEvent[] {
  const before = to.events.length;
  const r = from.conv.send(text);
  from.events.push(...r.events);
  pump(from, to, r.toSend);
  return to.events.slice(before);
}

export function receivedTexts(events: OtrEvent[]): string[] {
  return events.flatMap((e) => (e.type === "received" ? [e.text] : []));
}

/** Deep, order-stable rendering of a conversation's own state (the account and its env excluded). */
export function snapshot(conv: OtrConversation): string {
  const seen = new WeakSet<object>();
  const walk = (v: unknown): unknown => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return `bytes:${Buffer.from(v).toString("hex")}`;
    if (v === null || typeof v !== "object") return v;
    if (seen.has(v)) return "[cycle]";
    seen.add(v);
    if (v instanceof OtrAccount) return "[account]";
    if (v instanceof Map) return ["Map", [...v.entries()].map(([k, x]) => [walk(k), walk(x)])];
    if (v instanceof Set) return ["Set", [...v.values()].map(walk)];
    if (Array.isArray(v)) return v.map(walk);
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (typeof x === "function") continue;
      if (k === "env") continue;
      o[k] = walk(x);
    }
    return o;
  };
  return JSON.stringify(walk(conv));
}
