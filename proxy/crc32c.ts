// CRC32C (Castagnoli, RFC 4960 App. B), the checksum of the PROXY v2 CRC32C TLV: a byte-wise
// table-driven implementation, fast enough for headers of a few hundred bytes.

const POLYNOMIAL = 0x82f63b78; // 0x1EDC6F41 bit-reversed: the CRC is computed LSB first

const TABLE = buildTable();

/**
 * The CRC32C of `data`. Pass the result of a previous call as `previous` to continue over more
 * bytes: `crc32c(b, crc32c(a))` equals `crc32c(concat(a, b))`.
 */
export function crc32c(data: Uint8Array, previous = 0): number {
  let crc = ~previous;
  for (let i = 0; i < data.length; i++) {
    crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return ~crc >>> 0;
}

function buildTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? POLYNOMIAL ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}
