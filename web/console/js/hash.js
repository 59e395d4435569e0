// Incremental MD5 and SHA-256 in plain JavaScript, for a firmware's sign: crypto.subtle
// cannot hash a file piece by piece, and is absent on plain-http LAN origins. A file is
// read in 4 MiB slices, so a gigabyte firmware is never whole in memory.

const CHUNK = 4 << 20;

// --- MD5 (RFC 1321) ---

const MD5_S = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21];
const MD5_K = new Int32Array(64);
for (let i = 0; i < 64; i++) MD5_K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 4294967296) | 0;

// Hasher keeps the 64-byte block being filled and the byte count; subclasses compress.
class Hasher {
  constructor() {
    this.block = new Uint8Array(64);
    this.fill = 0;
    this.bytes = 0;
  }

  // update hashes more bytes (a Uint8Array).
  update(data) {
    let i = 0;
    const n = data.length;
    this.bytes += n;
    if (this.fill) {
      while (i < n && this.fill < 64) this.block[this.fill++] = data[i++];
      if (this.fill < 64) return this;
      this.compress(this.block, 0);
      this.fill = 0;
    }
    for (; i + 64 <= n; i += 64) this.compress(data, i);
    while (i < n) this.block[this.fill++] = data[i++];
    return this;
  }

  // finish pads the last block with the bit length, little- or big-endian.
  finish(bigEndian) {
    const bytes = this.bytes;
    const pad = new Uint8Array(((this.fill < 56 ? 56 : 120) - this.fill) + 8);
    pad[0] = 0x80;
    const lo = (bytes * 8) >>> 0;
    const hi = Math.floor(bytes / 0x20000000) >>> 0;
    const at = pad.length - 8;
    for (let k = 0; k < 4; k++) {
      if (bigEndian) {
        pad[at + 7 - k] = (lo >>> (8 * k)) & 0xff;
        pad[at + 3 - k] = (hi >>> (8 * k)) & 0xff;
      } else {
        pad[at + k] = (lo >>> (8 * k)) & 0xff;
        pad[at + 4 + k] = (hi >>> (8 * k)) & 0xff;
      }
    }
    this.update(pad);
  }
}

export class MD5 extends Hasher {
  constructor() {
    super();
    this.h = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
    this.m = new Int32Array(16);
  }

  compress(d, o) {
    const m = this.m;
    for (let j = 0; j < 16; j++, o += 4) m[j] = d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (d[o + 3] << 24);
    let a = this.h[0], b = this.h[1], c = this.h[2], e = this.h[3];
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & e); g = i; }
      else if (i < 32) { f = (e & b) | (~e & c); g = (5 * i + 1) & 15; }
      else if (i < 48) { f = b ^ c ^ e; g = (3 * i + 5) & 15; }
      else { f = c ^ (b | ~e); g = (7 * i) & 15; }
      const x = (a + f + MD5_K[i] + m[g]) | 0;
      const s = MD5_S[i];
      a = e; e = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
    }
    this.h[0] = (this.h[0] + a) | 0;
    this.h[1] = (this.h[1] + b) | 0;
    this.h[2] = (this.h[2] + c) | 0;
    this.h[3] = (this.h[3] + e) | 0;
  }

  // hex answers the digest in lower-case hex; the hasher is done after it.
  hex() {
    this.finish(false);
    let s = '';
    for (const w of this.h) for (let k = 0; k < 4; k++) s += ((w >>> (8 * k)) & 0xff).toString(16).padStart(2, '0');
    return s;
  }
}

// --- SHA-256 (FIPS 180-4) ---

const SHA_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);

export class SHA256 extends Hasher {
  constructor() {
    super();
    this.h = new Int32Array([0x6a09e667, 0xbb67ae85 | 0, 0x3c6ef372, 0xa54ff53a | 0,
      0x510e527f, 0x9b05688c | 0, 0x1f83d9ab, 0x5be0cd19]);
    this.w = new Int32Array(64);
  }

  compress(d, o) {
    const w = this.w;
    for (let j = 0; j < 16; j++, o += 4) w[j] = (d[o] << 24) | (d[o + 1] << 16) | (d[o + 2] << 8) | d[o + 3];
    for (let j = 16; j < 64; j++) {
      const x = w[j - 15], y = w[j - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[j] = (w[j - 16] + s0 + w[j - 7] + s1) | 0;
    }
    const H = this.h;
    let a = H[0], b = H[1], c = H[2], e4 = H[3], e = H[4], f = H[5], g = H[6], hh = H[7];
    for (let j = 0; j < 64; j++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + SHA_K[j] + w[j]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (e4 + t1) | 0;
      e4 = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    H[0] = (H[0] + a) | 0; H[1] = (H[1] + b) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + e4) | 0;
    H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + hh) | 0;
  }

  hex() {
    this.finish(true);
    let s = '';
    for (const x of this.h) s += (x >>> 0).toString(16).padStart(8, '0');
    return s;
  }
}

// newHasher answers a hasher for a sign method: 'md5' or 'sha256'.
export function newHasher(method) {
  if (method === 'md5') return new MD5();
  if (method === 'sha256') return new SHA256();
  throw new Error('unknown sign method: ' + method);
}

// fileDigest hashes a File (or any Blob) by method, 'md5' | 'sha256', reading it in 4 MiB
// slices; onProgress(doneBytes, totalBytes) after each. Answers lower-case hex. opts.signal
// (an AbortSignal) stops it between slices with an AbortError.
export async function fileDigest(file, method, onProgress, opts = {}) {
  const hasher = newHasher(method);
  const total = file.size;
  if (onProgress) onProgress(0, total);
  for (let off = 0; off < total; off += CHUNK) {
    if (opts.signal && opts.signal.aborted) throw new DOMException('the digest was abandoned', 'AbortError');
    const buf = new Uint8Array(await file.slice(off, Math.min(total, off + CHUNK)).arrayBuffer());
    hasher.update(buf);
    if (onProgress) onProgress(Math.min(total, off + CHUNK), total);
  }
  return hasher.hex();
}
