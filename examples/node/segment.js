// Segments one image with a unary Segment call (semantic + panoptic) and prints the result.
//
//   node segment.js IMAGE [--server host:port]
//
// The server address defaults to $MASKFORMER_ADDRESS, else 127.0.0.1:5081.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEFAULT_SERVER, connect, grpc, isMain } from './client.js';

const DEADLINE_MS = 30_000;

/** Sends one encoded image; resolves with the SegmentResponse. frameId is a string or number. */
export function segment(client, imageBytes, frameId = '1') {
  const request = {
    image: { encoded: imageBytes },
    tasks: ['SEGMENTATION_TASK_SEMANTIC', 'SEGMENTATION_TASK_PANOPTIC'],
    frame_id: String(frameId),
  };
  return new Promise((resolve, reject) => {
    client.Segment(request, { deadline: Date.now() + DEADLINE_MS }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

/** A SegmentResponse in a human-readable form, as lines. */
export function formatResponse(r) {
  const lines = [];
  lines.push(`model:   ${r.model} (version ${r.model_version || '-'}) on ${r.device || '?'}`);
  lines.push(`size:    ${r.width}x${r.height}`);
  if (r.semantic) {
    const lm = r.semantic.label_map;
    lines.push(
      `semantic label map: ${lm.width}x${lm.height}, ${lm.bits_per_pixel}-bit, ${lm.encoding}, ${lm.data.length} bytes`,
    );
    lines.push('classes:');
    const total = r.width * r.height || 1;
    for (const c of r.semantic.classes) {
      const pct = ((100 * Number(c.area)) / total).toFixed(1);
      lines.push(`  ${String(c.label_id).padStart(3)} ${c.label_name.padEnd(16)} ${c.area.padStart(8)} px  ${pct.padStart(5)}%`);
    }
  }
  if (r.panoptic) {
    lines.push(`panoptic segments (${r.panoptic.segments.length}):`);
    for (const s of r.panoptic.segments) {
      const b = s.bbox ?? { x: 0, y: 0, width: 0, height: 0 };
      lines.push(
        `  id ${String(s.id).padStart(3)} ${s.label_name.padEnd(16)} ${s.is_thing ? 'thing' : 'stuff'}  ` +
          `score ${s.score.toFixed(3)}  area ${s.area.padStart(6)}  bbox [${b.x}, ${b.y}, ${b.width}, ${b.height}]`,
      );
    }
  }
  const t = r.timings ?? {};
  const ms = (v) => (v ?? 0).toFixed(2);
  lines.push(
    `timings (ms): decode ${ms(t.decode_ms)}, preprocess ${ms(t.preprocess_ms)}, queue ${ms(t.queue_ms)}, ` +
      `inference ${ms(t.inference_ms)} (batch ${t.batch_size ?? 0}), postprocess ${ms(t.postprocess_ms)}, ` +
      `encode ${ms(t.encode_ms)}, total ${ms(t.total_ms)}`,
  );
  return lines;
}

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { server: { type: 'string', default: DEFAULT_SERVER } },
  });
  if (positionals.length !== 1) {
    console.error('usage: node segment.js IMAGE [--server host:port]');
    return 2;
  }
  const [imagePath] = positionals;
  let imageBytes;
  try {
    imageBytes = readFileSync(imagePath);
  } catch (e) {
    console.error(`error: cannot read ${imagePath}: ${e.message}`);
    return 2;
  }
  let client;
  try {
    client = await connect(values.server);
  } catch (e) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    const response = await segment(client, imageBytes);
    console.log(`image:   ${imagePath}`);
    for (const line of formatResponse(response)) console.log(line);
    return 0;
  } catch (e) {
    console.error(`error: Segment failed with ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
    return 1;
  } finally {
    client.close();
  }
}

if (isMain(import.meta.url)) process.exitCode = await main();
