// Unit tests for the PNG decoder (no server needed): PNGs are encoded here with every row filter and
// decoded again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { decodePng, isPng, toRgb24 } from '../../examples/node/png.js';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, body) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Encodes packed rows (filter bytes not included), filtering row y with filters[y % filters.length]. */
function encodePng({ width, height, bitDepth, colorType, rows, palette, filters }) {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType];
  const bpp = Math.max(1, (channels * bitDepth) / 8);
  const filtered = [];
  rows.forEach((row, y) => {
    const prev = y > 0 ? rows[y - 1] : null;
    const f = filters[y % filters.length];
    const out = Buffer.alloc(row.length + 1);
    out[0] = f;
    for (let i = 0; i < row.length; i++) {
      const a = i >= bpp ? row[i - bpp] : 0;
      const b = prev ? prev[i] : 0;
      const c = prev && i >= bpp ? prev[i - bpp] : 0;
      const pred = [0, a, b, (a + b) >>> 1, paeth(a, b, c)][f];
      out[i + 1] = (row[i] - pred) & 0xff;
    }
    filtered.push(out);
  });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...(palette ? [chunk('PLTE', palette)] : []),
    // Split the image data over two IDAT chunks, as large PNGs are.
    ...(() => {
      const z = deflateSync(Buffer.concat(filtered));
      const half = z.length >> 1;
      return [chunk('IDAT', z.subarray(0, half)), chunk('IDAT', z.subarray(half))];
    })(),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Deterministic pseudo-random bytes. */
function bytes(n, seed) {
  const out = Buffer.alloc(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const ALL_FILTERS = [0, 1, 2, 3, 4];

test('decodes 8-bit RGB with all five filters', () => {
  const width = 7, height = 10;
  const rows = Array.from({ length: height }, (_, y) => bytes(width * 3, y + 1));
  const png = encodePng({ width, height, bitDepth: 8, colorType: 2, rows, filters: ALL_FILTERS });
  assert.ok(isPng(png));
  const img = decodePng(png);
  assert.equal(img.width, width);
  assert.equal(img.height, height);
  assert.equal(img.channels, 3);
  assert.deepEqual(Buffer.from(img.data), Buffer.concat(rows));
  assert.deepEqual(toRgb24(img), Buffer.concat(rows));
});

test('decodes 8-bit grey with all five filters', () => {
  const width = 9, height = 5;
  const rows = Array.from({ length: height }, (_, y) => bytes(width, 100 + y));
  const img = decodePng(encodePng({ width, height, bitDepth: 8, colorType: 0, rows, filters: ALL_FILTERS }));
  assert.equal(img.channels, 1);
  assert.deepEqual(Buffer.from(img.data), Buffer.concat(rows));
});

test('decodes 16-bit grey (big-endian samples) with all five filters', () => {
  const width = 6, height = 5;
  const rows = Array.from({ length: height }, (_, y) => bytes(width * 2, 200 + y));
  const img = decodePng(encodePng({ width, height, bitDepth: 16, colorType: 0, rows, filters: ALL_FILTERS }));
  assert.ok(img.data instanceof Uint16Array);
  const all = Buffer.concat(rows);
  for (let i = 0; i < width * height; i++) assert.equal(img.data[i], all.readUInt16BE(2 * i));
});

test('decodes 8-bit RGBA and drops alpha for RGB24', () => {
  const width = 4, height = 5;
  const rows = Array.from({ length: height }, (_, y) => bytes(width * 4, 300 + y));
  const img = decodePng(encodePng({ width, height, bitDepth: 8, colorType: 6, rows, filters: ALL_FILTERS }));
  const rgba = Buffer.concat(rows);
  const rgb = toRgb24(img);
  for (let i = 0; i < width * height; i++) {
    assert.deepEqual(rgb.subarray(3 * i, 3 * i + 3), rgba.subarray(4 * i, 4 * i + 3));
  }
});

test('decodes a 4-bit palette image', () => {
  const width = 5, height = 5; // odd width: the last byte of each row is half used
  const palette = bytes(16 * 3, 7);
  const indices = Array.from({ length: height }, (_, y) => Array.from({ length: width }, (_, x) => (x * 3 + y * 5) % 16));
  const rows = indices.map((row) => {
    const packed = Buffer.alloc(Math.ceil(width / 2));
    row.forEach((v, x) => (packed[x >> 1] |= x % 2 ? v : v << 4));
    return packed;
  });
  const img = decodePng(encodePng({ width, height, bitDepth: 4, colorType: 3, rows, palette, filters: ALL_FILTERS }));
  assert.deepEqual(Array.from(img.data), indices.flat());
  const rgb = toRgb24(img);
  const i = 2 * width + 3; // pixel (3, 2)
  assert.deepEqual(rgb.subarray(3 * i, 3 * i + 3), palette.subarray(3 * indices[2][3], 3 * indices[2][3] + 3));
});

test('rejects data that is not a PNG', () => {
  assert.throws(() => decodePng(Buffer.from('definitely not a png')), /not a PNG/);
});
