// Byte-level codec for OTR's binary messages (spec v3 "Data types": BYTE, SHORT, INT, MPI, DATA, CTR, MAC, and
// "Public keys, signatures, and fingerprints": PUBKEY). Reader methods throw WireError internally; peer input
// must be decoded through `decodeWith`, which turns any failure into a result, so nothing escapes the module.
import { bigIntToBytes, bytesToBigInt } from "../crypto/bigint.js";
import { PUBKEY_TYPE_DSA, type DsaPublicKey } from "../crypto/dsa.js";

export type WireErrorCode = "truncated" | "mpi-not-minimal" | "trailing-data" | "bad-length" | "unknown-pubkey-type";

export class WireError extends Error {
  constructor(readonly code: WireErrorCode, message: string) {
    super(message);
    this.name = "WireError";
  }
}

export type DecodeResult<T> = { ok: true; value: T } | { ok: false; code: WireErrorCode; message: string };

/** Run a decoder over peer bytes; WireErrors (and anything else a decoder throws) become an error result. */
export function decodeWith<T>(bytes: Uint8Array, f: (r: Reader) => T, opts: { allowTrailing?: boolean } = {}): DecodeResult<T> {
  try {
    const r = new Reader(bytes);
    const value = f(r);
    if (!opts.allowTrailing && r.remaining > 0) throw new WireError("trailing-data", `${r.remaining} bytes left over`);
    return { ok: true, value };
  } catch (e) {
    if (e instanceof WireError) return { ok: false, code: e.code, message: e.message };
    return { ok: false, code: "truncated", message: e instanceof Error ? e.message : String(e) };
  }
}

export class Reader {
  private off = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.off;
  }
  get remaining(): number {
    return this.buf.length - this.off;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) throw new WireError("truncated", `${what}: need ${n} bytes, have ${this.remaining}`);
  }

  readByte(): number {
    this.need(1, "BYTE");
    return this.view.getUint8(this.off++);
  }
  readShort(): number {
    this.need(2, "SHORT");
    const v = this.view.getUint16(this.off);
    this.off += 2;
    return v;
  }
  readInt(): number {
    this.need(4, "INT");
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }
  /** Raw bytes (a view into the input, not a copy). */
  readBytes(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.off, this.off + n);
    this.off += n;
    return b;
  }
  /** DATA: INT length then that many bytes. */
  readData(): Uint8Array {
    const len = this.readInt();
    return this.readBytes(len, "DATA");
  }
  /** MPI: the spec requires minimal encoding, and fingerprints depend on it, so a leading zero is refused. */
  readMpi(): bigint {
    const len = this.readInt();
    const b = this.readBytes(len, "MPI");
    if (len > 0 && b[0] === 0) throw new WireError("mpi-not-minimal", "MPI has a leading zero byte");
    return bytesToBigInt(b);
  }
  readCtr(): Uint8Array {
    return this.readBytes(8, "CTR");
  }
  readMac(): Uint8Array {
    return this.readBytes(20, "MAC");
  }
  /** PUBKEY: SHORT type (only DSA, 0x0000, exists) then MPIs p, q, g, y. */
  readPubkey(): DsaPublicKey {
    const type = this.readShort();
    if (type !== PUBKEY_TYPE_DSA) throw new WireError("unknown-pubkey-type", `pubkey type ${type}`);
    const p = this.readMpi();
    const q = this.readMpi();
    const g = this.readMpi();
    const y = this.readMpi();
    return { p, q, g, y };
  }
  /** The bytes consumed between `start` and the current offset (e.g. the MAC'd part of a data message). */
  since(start: number): Uint8Array {
    return this.buf.subarray(start, this.off);
  }
}

export class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  byte(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`BYTE out of range: ${v}`);
    this.grow(1);
    this.buf[this.len++] = v;
    return this;
  }
  short(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`SHORT out of range: ${v}`);
    this.grow(2);
    this.buf[this.len++] = v >>> 8;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  int(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`INT out of range: ${v}`);
    this.grow(4);
    new DataView(this.buf.buffer).setUint32(this.len, v);
    this.len += 4;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  data(b: Uint8Array): this {
    return this.int(b.length).bytes(b);
  }
  mpi(n: bigint): this {
    return this.data(bigIntToBytes(n));
  }
  ctr(b: Uint8Array): this {
    if (b.length !== 8) throw new RangeError("CTR must be 8 bytes");
    return this.bytes(b);
  }
  mac(b: Uint8Array): this {
    if (b.length !== 20) throw new RangeError("MAC must be 20 bytes");
    return this.bytes(b);
  }
  pubkey(k: DsaPublicKey): this {
    return this.short(PUBKEY_TYPE_DSA).mpi(k.p).mpi(k.q).mpi(k.g).mpi(k.y);
  }
  get length(): number {
    return this.len;
  }
  /** A copy of what was written. */
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** DATA encoding of b (the AKE MACs cover the encrypted signature "including the four-byte length"). */
export function encodeData(b: Uint8Array): Uint8Array {
  return new Writer().data(b).finish();
}
