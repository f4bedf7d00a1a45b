// A small PNG decoder (node:zlib only) for the integration tests.
//
// Handles non-interlaced PNGs of every colour type (grey, RGB, palette, grey+alpha, RGBA) at every
// legal bit depth, and all five row filters (None, Sub, Up, Average, Paeth). Enough for the
// held-out RGB images and the 8- or 16-bit grey label maps the server returns.
import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Samples per pixel for each PNG colour type. */
const CHANNELS = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

/** True when `bytes` starts with the PNG signature. */
export function isPng(bytes) {
  return bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(SIGNATURE);
}

/**
 * Decodes a PNG.
 * @returns {{width: number, height: number, bitDepth: number, colorType: number, channels: number,
 *            palette: Buffer | null, data: Uint8Array | Uint16Array}}
 *   `data` holds width * height * channels samples, row-major; Uint16Array for 16-bit images. For a
 *   palette image (colour type 3) the single channel holds palette indices.
 */
export function decodePng(bytes) {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isPng(buf)) throw new Error('not a PNG: bad signature');

  let header = null;
  let palette = null;
  const idat = [];
  for (let pos = 8; pos + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + length);
    if (body.length !== length) throw new Error(`truncated PNG chunk ${type}`);
    if (type === 'IHDR') {
      header = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        bitDepth: body[8],
        colorType: body[9],
        interlace: body[12],
      };
    } else if (type === 'PLTE') {
      palette = Buffer.from(body);
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + length; // length, type, body, CRC
  }
  if (!header) throw new Error('PNG has no IHDR chunk');
  const { width, height, bitDepth, colorType, interlace } = header;
  const channels = CHANNELS[colorType];
  if (channels === undefined) throw new Error(`unsupported PNG colour type ${colorType}`);
  if (![1, 2, 4, 8, 16].includes(bitDepth)) throw new Error(`unsupported PNG bit depth ${bitDepth}`);
  if (interlace !== 0) throw new Error('interlaced PNGs are not supported');
  if (colorType === 3 && !palette) throw new Error('palette PNG without a PLTE chunk');

  const raw = inflateSync(Buffer.concat(idat));
  const bitsPerPixel = channels * bitDepth;
  const rowBytes = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel / 8); // the filters' byte distance to the "left" pixel
  if (raw.length < height * (rowBytes + 1)) {
    throw new Error(`PNG image data too short: ${raw.length} < ${height * (rowBytes + 1)}`);
  }

  // Undo the per-row filters into `pixels` (rows without their filter-type byte).
  const pixels = new Uint8Array(height * rowBytes);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (rowBytes + 1)];
    const src = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    const row = pixels.subarray(y * rowBytes, (y + 1) * rowBytes);
    const prev = y > 0 ? pixels.subarray((y - 1) * rowBytes, y * rowBytes) : null;
    for (let i = 0; i < rowBytes; i++) {
      const a = i >= bpp ? row[i - bpp] : 0; // left
      const b = prev ? prev[i] : 0; // up
      const c = prev && i >= bpp ? prev[i - bpp] : 0; // up-left
      let predictor;
      switch (filter) {
        case 0: predictor = 0; break; // None
        case 1: predictor = a; break; // Sub
        case 2: predictor = b; break; // Up
        case 3: predictor = (a + b) >>> 1; break; // Average
        case 4: predictor = paeth(a, b, c); break; // Paeth
        default: throw new Error(`bad PNG filter type ${filter} on row ${y}`);
      }
      row[i] = (src[i] + predictor) & 0xff;
    }
  }

  // Unpack into one sample per array element.
  const count = width * height * channels;
  let data;
  if (bitDepth === 8) {
    data = pixels;
  } else if (bitDepth === 16) {
    data = new Uint16Array(count);
    for (let i = 0; i < count; i++) data[i] = (pixels[2 * i] << 8) | pixels[2 * i + 1];
  } else {
    data = new Uint8Array(count);
    const perByte = 8 / bitDepth;
    const mask = (1 << bitDepth) - 1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const byte = pixels[y * rowBytes + Math.floor(x / perByte)];
        const shift = 8 - bitDepth * ((x % perByte) + 1);
        data[y * width + x] = (byte >> shift) & mask;
      }
    }
  }
  return { width, height, bitDepth, colorType, channels, palette, data };
}

function paeth(a, b, c) {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/**
 * Converts a decoded PNG to tightly packed 8-bit RGB (PIXEL_FORMAT_RGB24): alpha is dropped, grey is
 * replicated, palette indices are looked up, 16-bit samples keep their high byte and lower bit
 * depths are scaled up to 0..255.
 */
export function toRgb24(png) {
  const { width, height, channels, colorType, bitDepth, palette, data } = png;
  const n = width * height;
  const out = Buffer.alloc(n * 3);
  const to8 =
    bitDepth === 16 ? (v) => v >>> 8 : bitDepth === 8 ? (v) => v : (v) => Math.round((v * 255) / ((1 << bitDepth) - 1));
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    if (colorType === 3) {
      palette.copy(out, i * 3, data[s] * 3, data[s] * 3 + 3);
    } else if (colorType === 0 || colorType === 4) {
      out.fill(to8(data[s]), i * 3, i * 3 + 3);
    } else {
      out[i * 3] = to8(data[s]);
      out[i * 3 + 1] = to8(data[s + 1]);
      out[i * 3 + 2] = to8(data[s + 2]);
    }
  }
  return out;
}
