// Socialist Millionaires' Protocol, OTR v3 (spec sections "Socialist Millionaires' Protocol (SMP)" and
// "The SMP state machine"): TLVs 2 (message 1), 7 (message 1 with a question), 3, 4, 5 and 6 (abort).
//
// Pure and synchronous: randomness comes from the env given to the constructor; the caller (the session)
// carries the TLVs inside data messages. Peer input never throws. Whatever arrives is parsed in full,
// range-checked, and its zero-knowledge proofs verified before any state changes; then:
//   - a TLV the state does not expect, a malformed body or an out-of-range value: reply TLV 6, back to
//     the start, event smp-abort (by: "protocol");
//   - a proof that does not verify: reply TLV 6, back to the start, event smp-cheated;
//   - TLV 6 from the peer: back to the start, event smp-abort (by: "peer").
import {
  G1, divMod, isExponent, isGroupElement, isHashValue, mulMod, pow,
  proofResponse, randomDhExponent, randomNonce, smpHash, type RandomSource,
} from "./smp/group.js";
import { decodeMpis, encodeMpis } from "./smp/mpis.js";
import { sha256 } from "./crypto/primitives.js";
import { bytesToBigInt } from "./crypto/bigint.js";
import {
  TLV_SMP1, TLV_SMP1Q, TLV_SMP2, TLV_SMP3, TLV_SMP4, TLV_SMP_ABORT, type Tlv,
} from "./wire/messages.js";

export type { Tlv } from "./wire/messages.js";

export type SmpEvent =
  | { type: "smp-ask"; question: string | null }
  | { type: "smp-in-progress" }
  | { type: "smp-success" }
  | { type: "smp-failure" }
  | { type: "smp-abort"; by: "peer" | "protocol" }
  | { type: "smp-cheated" };

export interface SmpStep { reply: Tlv[]; event: SmpEvent | null }

/** Where the exchange stands; "asked" is EXPECT1 with a verified message 1 waiting for our secret. */
export type SmpState = "idle" | "asked" | "expect2" | "expect3" | "expect4";

/** Caller misuse (never peer input): responding when nothing was asked, bad secret or question. */
export class SmpUsageError extends Error {
  constructor(readonly code: "smp-not-asked" | "smp-bad-secret" | "smp-bad-question" | "smp-bad-input", message: string) {
    super(message);
    this.name = "SmpUsageError";
  }
}

const SMP_VERSION = 1;
const FINGERPRINT_BYTES = 20;
const SSID_BYTES = 8;
const SECRET_LIMIT = 1n << 256n;
/** TLV lengths are SHORTs; message 1 takes at most 6 MPIs of 196 bytes plus the count. */
const MAX_TLV_BYTES = 0xffff;
const MSG1_MAX_BODY = 4 + 6 * (4 + 192);

const MSG1_MPIS = 6;
const MSG2_MPIS = 11;
const MSG3_MPIS = 8;
const MSG4_MPIS = 3;

type Internal =
  | { kind: "idle" }
  | { kind: "asked"; g2a: bigint; g3a: bigint }
  | { kind: "expect2"; x: bigint; a2: bigint; a3: bigint }
  | { kind: "expect3"; g3a: bigint; g2: bigint; g3: bigint; b3: bigint; pb: bigint; qb: bigint }
  | { kind: "expect4"; g3b: bigint; pab: bigint; qab: bigint; a3: bigint };

const IDLE: Internal = { kind: "idle" };
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8");

/**
 * The SMP secret: SHA-256(0x01 || initiator fingerprint || responder fingerprint || ssid || user secret),
 * read as an integer. Both sides pass the initiator's fingerprint first.
 */
export function smpSecret(initiatorFp: Uint8Array, responderFp: Uint8Array, ssid: Uint8Array, secret: Uint8Array): bigint {
  if (initiatorFp.length !== FINGERPRINT_BYTES || responderFp.length !== FINGERPRINT_BYTES) {
    throw new SmpUsageError("smp-bad-input", "fingerprints must be 20 bytes");
  }
  if (ssid.length !== SSID_BYTES) throw new SmpUsageError("smp-bad-input", "ssid must be 8 bytes");
  const input = new Uint8Array(1 + 2 * FINGERPRINT_BYTES + SSID_BYTES + secret.length);
  input[0] = SMP_VERSION;
  input.set(initiatorFp, 1);
  input.set(responderFp, 1 + FINGERPRINT_BYTES);
  input.set(ssid, 1 + 2 * FINGERPRINT_BYTES);
  input.set(secret, 1 + 2 * FINGERPRINT_BYTES + SSID_BYTES);
  return bytesToBigInt(sha256(input));
}

function tlv(type: number, value: Uint8Array): Tlv {
  return { type, value };
}

function abortTlv(): Tlv {
  return tlv(TLV_SMP_ABORT, new Uint8Array(0));
}

/** Proof of knowledge of log_g1(g1^secret): c = H(version, g1^r), D = r - secret*c mod q. */
function proveKnowLog(env: RandomSource, secret: bigint, version: number): [bigint, bigint] {
  const r = randomNonce(env);
  const c = smpHash(version, pow(G1, r));
  return [c, proofResponse(r, secret, c)];
}

function checkKnowLog(c: bigint, d: bigint, x: bigint, version: number): boolean {
  return isHashValue(c) && smpHash(version, mulMod(pow(G1, d), pow(x, c))) === c;
}

/** Proof that P = g3^r and Q = g1^r g2^secret share r (spec: cP, D5, D6). */
function checkEqualCoords(c: bigint, d5: bigint, d6: bigint, p: bigint, q: bigint, g2: bigint, g3: bigint, version: number): boolean {
  if (!isHashValue(c)) return false;
  const left = mulMod(pow(g3, d5), pow(p, c));
  const right = mulMod(mulMod(pow(G1, d5), pow(g2, d6)), pow(q, c));
  return smpHash(version, left, right) === c;
}

/** Proof that R = qab^x where g3o = g1^x (spec: cR, D7). */
function checkEqualLogs(c: bigint, d7: bigint, r: bigint, g3o: bigint, qab: bigint, version: number): boolean {
  if (!isHashValue(c)) return false;
  const left = mulMod(pow(G1, d7), pow(g3o, c));
  const right = mulMod(pow(qab, d7), pow(r, c));
  return smpHash(version, left, right) === c;
}

export class Smp {
  private st: Internal = IDLE;
  private askedQuestion: string | null = null;

  constructor(private readonly env: RandomSource) {}

  get state(): SmpState {
    return this.st.kind;
  }

  /** The question of the pending request (state "asked"), null when none was given. */
  get question(): string | null {
    return this.st.kind === "asked" ? this.askedQuestion : null;
  }

  /** True when a verified message 1 waits for respond(). */
  canRespond(): boolean {
    return this.st.kind === "asked";
  }

  /**
   * Begins SMP: TLV 2, or TLV 7 with the question. If an exchange was under way (either role), a TLV 6
   * goes first so the peer restarts too, as the spec's "User requests to begin SMP" allows.
   */
  start(x: bigint, question: string | null): Tlv[] {
    checkSecret(x);
    let prefix: Uint8Array | null = null;
    if (question !== null) {
      if (question.includes("\0")) throw new SmpUsageError("smp-bad-question", "the question must not contain NUL");
      prefix = utf8.encode(question);
      if (prefix.length + 1 + MSG1_MAX_BODY > MAX_TLV_BYTES) {
        throw new SmpUsageError("smp-bad-question", "the question is too long for one TLV");
      }
    }
    const out: Tlv[] = this.st.kind === "idle" ? [] : [abortTlv()];
    this.reset();

    const a2 = randomDhExponent(this.env);
    const a3 = randomDhExponent(this.env);
    const g2a = pow(G1, a2);
    const g3a = pow(G1, a3);
    const [c2, d2] = proveKnowLog(this.env, a2, 1);
    const [c3, d3] = proveKnowLog(this.env, a3, 2);
    const body = encodeMpis([g2a, c2, d2, g3a, c3, d3]);

    this.st = { kind: "expect2", x, a2, a3 };
    if (prefix === null) {
      out.push(tlv(TLV_SMP1, body));
    } else {
      const value = new Uint8Array(prefix.length + 1 + body.length);
      value.set(prefix, 0);
      value[prefix.length] = 0;
      value.set(body, prefix.length + 1);
      out.push(tlv(TLV_SMP1Q, value));
    }
    return out;
  }

  /** Answers a verified message 1 (after an smp-ask event) with our secret: TLV 3. */
  respond(y: bigint): Tlv[] {
    checkSecret(y);
    const st = this.st;
    if (st.kind !== "asked") throw new SmpUsageError("smp-not-asked", "no SMP request is waiting for an answer");
    const { g2a, g3a } = st;

    const b2 = randomDhExponent(this.env);
    const b3 = randomDhExponent(this.env);
    const g2b = pow(G1, b2);
    const g3b = pow(G1, b3);
    const [c2, d2] = proveKnowLog(this.env, b2, 3);
    const [c3, d3] = proveKnowLog(this.env, b3, 4);
    const g2 = pow(g2a, b2);
    const g3 = pow(g3a, b3);

    const r4 = randomDhExponent(this.env);
    const r5 = randomNonce(this.env);
    const r6 = randomNonce(this.env);
    const pb = pow(g3, r4);
    const qb = mulMod(pow(G1, r4), pow(g2, y));
    const cp = smpHash(5, pow(g3, r5), mulMod(pow(G1, r5), pow(g2, r6)));
    const d5 = proofResponse(r5, r4, cp);
    const d6 = proofResponse(r6, y, cp);

    this.st = { kind: "expect3", g3a, g2, g3, b3, pb, qb };
    this.askedQuestion = null;
    return [tlv(TLV_SMP2, encodeMpis([g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6]))];
  }

  /** Our user gives up: TLV 6, back to the start. */
  abort(): Tlv[] {
    this.reset();
    return [abortTlv()];
  }

  /** Feeds one received TLV. Types other than 2-7 are not SMP's business and are ignored. */
  handleTlv(t: Tlv): SmpStep {
    try {
      switch (t.type) {
        case TLV_SMP_ABORT:
          this.reset();
          return { reply: [], event: { type: "smp-abort", by: "peer" } };
        case TLV_SMP1:
          return this.onMessage1(t.value, null);
        case TLV_SMP1Q: {
          const nul = t.value.indexOf(0);
          if (nul < 0) return this.protocolAbort();
          return this.onMessage1(t.value.subarray(nul + 1), fromUtf8.decode(t.value.subarray(0, nul)));
        }
        case TLV_SMP2:
          return this.onMessage2(t.value);
        case TLV_SMP3:
          return this.onMessage3(t.value);
        case TLV_SMP4:
          return this.onMessage4(t.value);
        default:
          return { reply: [], event: null };
      }
    } catch {
      // Nothing above throws on well-formed input; a throw means input we failed to foresee, which must
      // still end as a clean abort rather than an exception into the session.
      return this.protocolAbort();
    }
  }

  private onMessage1(body: Uint8Array, question: string | null): SmpStep {
    if (this.st.kind !== "idle" && this.st.kind !== "asked") return this.protocolAbort();
    const m = decodeMpis(body, MSG1_MPIS);
    if (!m) return this.protocolAbort();
    const [g2a, c2, d2, g3a, c3, d3] = m as [bigint, bigint, bigint, bigint, bigint, bigint];
    if (!isGroupElement(g2a) || !isGroupElement(g3a) || !isExponent(d2) || !isExponent(d3)) {
      return this.protocolAbort();
    }
    if (!checkKnowLog(c2, d2, g2a, 1) || !checkKnowLog(c3, d3, g3a, 2)) return this.cheated();
    this.st = { kind: "asked", g2a, g3a };
    this.askedQuestion = question;
    return { reply: [], event: { type: "smp-ask", question } };
  }

  private onMessage2(body: Uint8Array): SmpStep {
    const st = this.st;
    if (st.kind !== "expect2") return this.protocolAbort();
    const m = decodeMpis(body, MSG2_MPIS);
    if (!m) return this.protocolAbort();
    const [g2b, c2, d2, g3b, c3, d3, pb, qb, cp, d5, d6] =
      m as [bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint];
    if (!isGroupElement(g2b) || !isGroupElement(g3b) || !isGroupElement(pb) || !isGroupElement(qb) ||
        !isExponent(d2) || !isExponent(d3) || !isExponent(d5) || !isExponent(d6)) {
      return this.protocolAbort();
    }
    if (!checkKnowLog(c2, d2, g2b, 3) || !checkKnowLog(c3, d3, g3b, 4)) return this.cheated();
    const g2 = pow(g2b, st.a2);
    const g3 = pow(g3b, st.a3);
    if (!checkEqualCoords(cp, d5, d6, pb, qb, g2, g3, 5)) return this.cheated();

    const r4 = randomDhExponent(this.env);
    const r5 = randomNonce(this.env);
    const r6 = randomNonce(this.env);
    const r7 = randomNonce(this.env);
    const pa = pow(g3, r4);
    const qa = mulMod(pow(G1, r4), pow(g2, st.x));
    const cpA = smpHash(6, pow(g3, r5), mulMod(pow(G1, r5), pow(g2, r6)));
    const d5A = proofResponse(r5, r4, cpA);
    const d6A = proofResponse(r6, st.x, cpA);
    const pab = divMod(pa, pb);
    const qab = divMod(qa, qb);
    const ra = pow(qab, st.a3);
    const cr = smpHash(7, pow(G1, r7), pow(qab, r7));
    const d7 = proofResponse(r7, st.a3, cr);

    this.st = { kind: "expect4", g3b, pab, qab, a3: st.a3 };
    return {
      reply: [tlv(TLV_SMP3, encodeMpis([pa, qa, cpA, d5A, d6A, ra, cr, d7]))],
      event: { type: "smp-in-progress" },
    };
  }

  private onMessage3(body: Uint8Array): SmpStep {
    const st = this.st;
    if (st.kind !== "expect3") return this.protocolAbort();
    const m = decodeMpis(body, MSG3_MPIS);
    if (!m) return this.protocolAbort();
    const [pa, qa, cp, d5, d6, ra, cr, d7] = m as [bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint];
    if (!isGroupElement(pa) || !isGroupElement(qa) || !isGroupElement(ra) ||
        !isExponent(d5) || !isExponent(d6) || !isExponent(d7)) {
      return this.protocolAbort();
    }
    if (!checkEqualCoords(cp, d5, d6, pa, qa, st.g2, st.g3, 6)) return this.cheated();
    const pab = divMod(pa, st.pb);
    const qab = divMod(qa, st.qb);
    if (!checkEqualLogs(cr, d7, ra, st.g3a, qab, 7)) return this.cheated();

    const r7 = randomNonce(this.env);
    const rb = pow(qab, st.b3);
    const crB = smpHash(8, pow(G1, r7), pow(qab, r7));
    const d7B = proofResponse(r7, st.b3, crB);
    const rab = pow(ra, st.b3);

    this.reset();
    return {
      reply: [tlv(TLV_SMP4, encodeMpis([rb, crB, d7B]))],
      event: { type: rab === pab ? "smp-success" : "smp-failure" },
    };
  }

  private onMessage4(body: Uint8Array): SmpStep {
    const st = this.st;
    if (st.kind !== "expect4") return this.protocolAbort();
    const m = decodeMpis(body, MSG4_MPIS);
    if (!m) return this.protocolAbort();
    const [rb, cr, d7] = m as [bigint, bigint, bigint];
    if (!isGroupElement(rb) || !isExponent(d7)) return this.protocolAbort();
    if (!checkEqualLogs(cr, d7, rb, st.g3b, st.qab, 8)) return this.cheated();
    const rab = pow(rb, st.a3);
    this.reset();
    return { reply: [], event: { type: rab === st.pab ? "smp-success" : "smp-failure" } };
  }

  private reset(): void {
    this.st = IDLE;
    this.askedQuestion = null;
  }

  private protocolAbort(): SmpStep {
    this.reset();
    return { reply: [abortTlv()], event: { type: "smp-abort", by: "protocol" } };
  }

  private cheated(): SmpStep {
    this.reset();
    return { reply: [abortTlv()], event: { type: "smp-cheated" } };
  }
}

function checkSecret(x: bigint): void {
  if (typeof x !== "bigint" || x < 0n || x >= SECRET_LIMIT) {
    throw new SmpUsageError("smp-bad-secret", "the SMP secret must be a 256-bit value from smpSecret()");
  }
}

