// The body of SMP TLVs 2-5 (OTR v3 spec, "SMP Message TLVs"): an INT count, then that many MPIs.
// Parsing is strict: the count must be the one the message type calls for, every MPI minimally encoded
// (what libotr writes), and nothing may follow the last MPI. A bad body is reported as null, never thrown.
import { bytesToBigInt, bigIntToBytes } from "../crypto/bigint.js";

export function encodeMpis(values: readonly bigint[]): Uint8Array {
  const parts = values.map((v) => bigIntToBytes(v));
  const total = 4 + parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, values.length);
  let at = 4;
  for (const p of parts) {
    view.setUint32(at, p.length);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

export function decodeMpis(body: Uint8Array, expected: number): bigint[] | null {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (body.length < 4 || view.getUint32(0) !== expected) return null;
  const out: bigint[] = [];
  let at = 4;
  for (let i = 0; i < expected; i++) {
    if (at + 4 > body.length) return null;
    const len = view.getUint32(at);
    at += 4;
    if (len > body.length - at) return null;
    if (len > 0 && body[at] === 0) return null; // non-minimal encoding
    out.push(len === 0 ? 0n : bytesToBigInt(body.subarray(at, at + len)));
    at += len;
  }
  return at === body.length ? out : null;
}
