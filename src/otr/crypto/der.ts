// The little DER reading needed to take a DSA key out of node's PKCS#8 export (RFC 5958 PrivateKeyInfo with
// DSA parameters per RFC 3279 section 2.3.2). Input is node's own output, never a peer's.
import { bytesToBigInt } from "./bigint.js";

interface Tlv {
  tag: number;
  body: Uint8Array;
  end: number;
}

function readTlv(b: Uint8Array, off: number): Tlv {
  const tag = b[off];
  let lenByte = b[off + 1];
  if (tag === undefined || lenByte === undefined) throw new Error("DER: truncated");
  let pos = off + 2;
  let len = lenByte;
  if (lenByte & 0x80) {
    const n = lenByte & 0x7f;
    if (n === 0 || n > 4) throw new Error("DER: bad length");
    len = 0;
    for (let i = 0; i < n; i++) {
      const v = b[pos++];
      if (v === undefined) throw new Error("DER: truncated");
      len = len * 256 + v;
    }
  }
  if (pos + len > b.length) throw new Error("DER: truncated");
  return { tag, body: b.subarray(pos, pos + len), end: pos + len };
}

function children(seq: Uint8Array): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < seq.length; ) {
    const t = readTlv(seq, off);
    out.push(t);
    off = t.end;
  }
  return out;
}

function int(t: Tlv | undefined): bigint {
  if (!t || t.tag !== 0x02) throw new Error("DER: expected INTEGER");
  return bytesToBigInt(t.body);
}

/** Extracts p, q, g, x from a PKCS#8 DER DSA private key. Throws on anything unexpected (caller bug). */
export function parsePkcs8Dsa(der: Uint8Array): { p: bigint; q: bigint; g: bigint; x: bigint } {
  const top = readTlv(der, 0);
  if (top.tag !== 0x30) throw new Error("DER: expected SEQUENCE");
  const [, alg, key] = children(top.body);
  if (!alg || alg.tag !== 0x30 || !key || key.tag !== 0x04) throw new Error("DER: not PKCS#8");
  const [, params] = children(alg.body);
  if (!params || params.tag !== 0x30) throw new Error("DER: missing DSA parameters");
  const [p, q, g] = children(params.body);
  const x = readTlv(key.body, 0);
  return { p: int(p), q: int(q), g: int(g), x: int(x) };
}
