// Strict base64 (RFC 4648 alphabet, '=' padding) for "?OTR:...." messages. CVE-2012-3461 was libotr's decoder
// writing past its buffer on crafted input; this one computes the exact output size up front and refuses any
// character outside the alphabet, misplaced padding, or an impossible length instead of skipping junk.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export function base64Encode(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

/** Decode, or null for anything that is not canonical base64 (padding optional but must be correct if present). */
export function base64Decode(s: string): Uint8Array | null {
  let end = s.length;
  let pad = 0;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d /* = */ && pad < 2) {
    end--;
    pad++;
  }
  if (pad > 0 && s.length % 4 !== 0) return null;
  const rem = end % 4;
  if (rem === 1) return null;
  if (pad > 0 && (4 - rem) % 4 !== pad) return null;
  const outLen = Math.floor(end / 4) * 3 + (rem === 0 ? 0 : rem - 1);
  const out = new Uint8Array(outLen);
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? DECODE[c]! : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  // Non-zero leftover bits mean a non-canonical final character: refuse so each message has one encoding.
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return null;
  return o === outLen ? out : null;
}
