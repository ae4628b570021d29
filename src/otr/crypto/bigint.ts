// Conversions between big-endian byte strings and BigInt, and the OTR MPI byte form used by the KDFs.
// OTR spec v3, "Data types" (MPI: 4-byte big-endian length, then minimal big-endian magnitude).

/** Unsigned big-endian bytes -> bigint. Empty input is 0n. */
export function bytesToBigInt(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  return BigInt("0x" + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex"));
}

/**
 * bigint -> unsigned big-endian bytes. Without `len` the encoding is minimal (0n -> empty array, as an MPI
 * encodes zero). With `len` it is left-padded; a value that does not fit is caller misuse and throws.
 */
export function bigIntToBytes(n: bigint, len?: number): Uint8Array {
  if (n < 0n) throw new RangeError("bigIntToBytes: negative value");
  let hex = n === 0n ? "" : n.toString(16);
  if (hex.length % 2) hex = "0" + hex;
  const minimal = hex.length / 2;
  if (len === undefined) return new Uint8Array(Buffer.from(hex, "hex"));
  if (minimal > len) throw new RangeError(`bigIntToBytes: value needs ${minimal} bytes, ${len} given`);
  const out = new Uint8Array(len);
  out.set(Buffer.from(hex, "hex"), len - minimal);
  return out;
}

/** Number of significant bits (0n -> 0). */
export function bitLength(n: bigint): number {
  if (n < 0n) n = -n;
  return n === 0n ? 0 : n.toString(2).length;
}

/** The OTR MPI encoding of n: INT length, then minimal big-endian bytes (the KDFs hash this exact form). */
export function encodeMpi(n: bigint): Uint8Array {
  const mag = bigIntToBytes(n);
  const out = new Uint8Array(4 + mag.length);
  new DataView(out.buffer).setUint32(0, mag.length);
  out.set(mag, 4);
  return out;
}

/** Concatenate byte arrays. */
export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
