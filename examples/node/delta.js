// Rebuilding complete stream results from delta results (StreamConfig.delta).
//
// With deltas on, a result may send its semantic label map (semantic.label_map_delta) and its
// panoptic segment-id map (panoptic.segment_id_delta) as the rectangles that changed since the
// previous result on the stream (each patch holds, per sample, what to add to the previous map modulo
// the sample's size: 0 where nothing changed), and an instance whose mask did not change as
// mask_unchanged with its track_id. A DeltaRebuilder holds the previous result's maps (as pixels) and masks (by track id)
// and turns every result, complete or delta, into a Frame: the maps as pixel arrays and every
// instance with its mask. Feed it every result of the stream, in order; errors and skipped frames
// do not change what it holds (the server's deltas never refer to them). A stream that went on a new call
// (stream.js reconnects) is fed call by call: the new call's first result is complete, and a complete
// result replaces everything the rebuilder held, so it is the new base.
import { isDeepStrictEqual } from 'node:util';
import { decodePng } from './png.js';

/** Pixels of a semantic label map's data (PNG or raw little-endian, 8 or 16 bits) as a Uint32Array. */
export function decodeLabelMap(data, encoding, bitsPerPixel) {
  if (encoding === 'LABEL_MAP_ENCODING_RAW') {
    if (bitsPerPixel === 8) return Uint32Array.from(data);
    const out = new Uint32Array(data.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = data[2 * i] | (data[2 * i + 1] << 8);
    return out;
  }
  const png = decodePng(data);
  if (png.channels !== 1) throw new Error(`label map PNG has ${png.channels} channels`);
  return Uint32Array.from(png.data);
}

/** Segment ids of a panoptic RGB PNG (COCO: id = R + 256 G + 65536 B) as a Uint32Array. */
export function decodeSegmentIds(data) {
  const png = decodePng(data);
  if (png.channels !== 3 || png.bitDepth !== 8) throw new Error('segment-id PNG is not 8-bit RGB');
  const ids = new Uint32Array(png.width * png.height);
  for (let i = 0; i < ids.length; i++) ids[i] = png.data[3 * i] + 256 * png.data[3 * i + 1] + 65536 * png.data[3 * i + 2];
  return ids;
}

/** Adds per byte (8-bit samples: 8-bit labels, the R, G and B of segment ids), each modulo 256. */
const addBytes = (old, change) =>
  (((old & 0xff) + (change & 0xff)) & 0xff) |
  ((((old >> 8) + (change >> 8)) & 0xff) << 8) |
  ((((old >> 16) + (change >> 16)) & 0xff) << 16);
/** Adds 16-bit samples (16-bit labels) modulo 65536. */
const addWords = (old, change) => (old + change) & 0xffff;

/** Adds a MapDelta's patches to a copy of `previous` (a map `width` pixels wide). */
function applyPatches(previous, width, delta, decode, add) {
  const pixels = previous.slice();
  for (const patch of delta.patches) {
    const values = decode(patch.data);
    if (values.length !== patch.width * patch.height) {
      throw new Error(`patch at (${patch.x}, ${patch.y}) has ${values.length} pixels, not ${patch.width}x${patch.height}`);
    }
    for (let y = 0; y < patch.height; y++) {
      for (let x = 0; x < patch.width; x++) {
        const at = (patch.y + y) * width + patch.x + x;
        pixels[at] = add(pixels[at], values[y * patch.width + x]);
      }
    }
  }
  return pixels;
}

/**
 * A complete result as pixels and masks:
 * { frameId, width, height, semantic: Uint32Array | null, panoptic: Uint32Array | null,
 *   instances: Instance[] (each with its mask), result } where `result` is the SegmentResponse as received.
 */
export class DeltaRebuilder {
  #frameId = null;
  #semantic = null;
  #semanticFormat = null; // { encoding, bits } of the last complete label map
  #panoptic = null;
  #masks = new Map(); // track id -> Rle, for track ids that name one instance
  /** Results that were (at least partly) deltas. */
  deltas = 0;

  /** Rebuilds one result (SegmentResponse) into a Frame. */
  apply(result) {
    const { width, height } = result;
    let delta = false;
    const checkBase = (d) => {
      if (d.base_frame_id !== this.#frameId) throw new Error(`delta on ${d.base_frame_id}, but the last result was ${this.#frameId}`);
      delta = true;
    };

    let semantic = null;
    if (result.semantic) {
      const d = result.semantic.label_map_delta;
      if (d) {
        checkBase(d);
        const { encoding, bits } = this.#semanticFormat;
        semantic = applyPatches(this.#semantic, width, d, (data) => decodeLabelMap(data, encoding, bits), bits === 16 ? addWords : addBytes);
      } else {
        const map = result.semantic.label_map;
        this.#semanticFormat = { encoding: map.encoding, bits: map.bits_per_pixel };
        semantic = decodeLabelMap(map.data, map.encoding, map.bits_per_pixel);
      }
    }

    let panoptic = null;
    if (result.panoptic) {
      const d = result.panoptic.segment_id_delta;
      if (d) {
        checkBase(d);
        panoptic = applyPatches(this.#panoptic, width, d, decodeSegmentIds, addBytes);
      } else {
        panoptic = decodeSegmentIds(result.panoptic.segment_id_png);
      }
    }

    const instances = (result.instance?.instances ?? []).map((instance) => {
      if (!instance.mask_unchanged) return instance;
      const mask = this.#masks.get(instance.track_id);
      if (!mask) throw new Error(`instance refers to track ${instance.track_id}, which the last result does not have`);
      delta = true;
      return { ...instance, mask, mask_unchanged: false };
    });

    const counts = new Map();
    for (const i of instances) counts.set(i.track_id, (counts.get(i.track_id) ?? 0) + 1);
    this.#masks = new Map(instances.filter((i) => i.track_id !== 0 && counts.get(i.track_id) === 1).map((i) => [i.track_id, i.mask]));
    this.#semantic = semantic;
    this.#panoptic = panoptic;
    this.#frameId = result.frame_id;
    if (delta) this.deltas++;
    return { frameId: result.frame_id, width, height, semantic, panoptic, instances, result };
  }
}

/** A complete result (from a stream without deltas) as a Frame. */
export function decodeComplete(result) {
  return new DeltaRebuilder().apply(result);
}

/**
 * The ways two Frames differ (an empty list when they are equal): sizes, every pixel of both maps,
 * every instance (masks included) and every other field of the result except timings.
 */
export function frameDifferences(a, b) {
  const differences = [];
  const same = (what, x, y) => {
    if (!isDeepStrictEqual(x, y)) differences.push(what);
  };
  same('size', [a.width, a.height], [b.width, b.height]);
  same('semantic map', a.semantic, b.semantic);
  same('panoptic map', a.panoptic, b.panoptic);
  same('instances', a.instances, b.instances);
  same('semantic classes', a.result.semantic?.classes, b.result.semantic?.classes);
  same('panoptic segments', a.result.panoptic?.segments, b.result.panoptic?.segments);
  return differences;
}
