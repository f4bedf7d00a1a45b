// Segments one image with a unary Segment call (semantic + panoptic) and prints the result.
//
//   node segment.js IMAGE [--server ADDRESS] [--model NAME] [--deadline SECONDS]
//                   [--connect-timeout SECONDS] [--wait-for-server]
//
// ADDRESS is host:port or http(s)://host[:port] (https:// for TLS; a URL without a port takes its scheme's,
// an IPv6 host goes in brackets: [::1]:5081), default $MASKFORMER_ADDRESS, else 127.0.0.1:5081; --model names the model
// (default: the server's default model). A failed connection (nothing listening, a failed TLS handshake)
// ends the command at once, exit 2, unless --wait-for-server: then it is tried again until --connect-timeout
// (default 15 s). An UNAVAILABLE the server sends (models still loading, draining), or a RESOURCE_EXHAUSTED
// with a RetryInfo (overloaded), is tried again within the call's deadline (--deadline, default 30 s; see
// segment()).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ADDRESS_USAGE, CONNECTION_OPTIONS, DEFAULT_SERVER, backoffMs, connect, grpc, isMain } from './client.js';
import { retryDelayMs, retryInfoMs } from './stream.js';

// The whole call, every attempt included.
const DEADLINE_MS = 30_000;
// At most this many attempts for a RESOURCE_EXHAUSTED (counting every attempt of the call).
export const MAX_ATTEMPTS = 5;

/**
 * Sends one encoded image to model (empty: the server's default); resolves with the SegmentResponse.
 * frameId is a string or number.
 *
 * An UNAVAILABLE the server sent (its models are still loading; it is draining and a new connection goes
 * to another instance) is tried again after the server's google.rpc.RetryInfo delay, or a backoff of
 * 0.25 s doubling to 4 s, as long as the wait ends before the deadline (deadlineMs from now, for all the
 * attempts together). A RESOURCE_EXHAUSTED with a google.rpc.RetryInfo (the server was overloaded: a full
 * queue, admission control, its call limit) is tried again after that delay (0 or more), the same way, as
 * long as the call has made fewer than MAX_ATTEMPTS attempts in all. onRetry({ attempt, error, delayMs }) is
 * called before each wait. An UNAVAILABLE grpc-js made itself (no server at the address, a dropped
 * connection), a RESOURCE_EXHAUSTED without a RetryInfo, and every other failure reject at once.
 */
export async function segment(client, imageBytes, frameId = '1', { deadlineMs = DEADLINE_MS, onRetry, model = '' } = {}) {
  const request = {
    image: { encoded: imageBytes },
    tasks: ['SEGMENTATION_TASK_SEMANTIC', 'SEGMENTATION_TASK_PANOPTIC'],
    frame_id: String(frameId),
    model,
  };
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    let answered = false; // whether the server sent response headers on this attempt
    try {
      return await new Promise((resolve, reject) => {
        const call = client.Segment(request, { deadline }, (err, response) => (err ? reject(err) : resolve(response)));
        call.on('metadata', () => { answered = true; });
      });
    } catch (error) {
      const delayMs = retryDelay(error, answered, attempt);
      if (delayMs === null || Date.now() + delayMs >= deadline) throw error;
      onRetry?.({ attempt, error, delayMs });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

/** How long to wait before trying a failed call again (its attempt-th), in ms, or null when it is not retried. */
function retryDelay(error, answered, attempt) {
  if (error?.code === grpc.status.RESOURCE_EXHAUSTED) return attempt < MAX_ATTEMPTS ? retryInfoMs(error.metadata) : null;
  if (!unavailableFromServer(error, answered)) return null;
  return retryDelayMs(error.metadata) ?? backoffMs(attempt - 1);
}

/**
 * Whether a failed call is an UNAVAILABLE the server sent, not one grpc-js made. grpc-js gives every
 * status it makes itself (no connection established, connection dropped, stream refused, name resolution,
 * channel closed) an empty Metadata; a status the server sends comes in its trailers, and when it refuses
 * a call before answering (a trailers-only response, how this server says "still loading" or "shutting
 * down") those trailers are its response headers too: content-type, date, server, so the status's
 * metadata is never empty. A server that had answered with headers first (then trailers that may hold
 * only grpc-status and grpc-message) is known by the call's 'metadata' event (`answered`).
 */
export function unavailableFromServer(error, answered = false) {
  if (error?.code !== grpc.status.UNAVAILABLE) return false;
  return answered || Object.keys(error.metadata?.getMap?.() ?? {}).length > 0;
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
  const usage =
    'usage: node segment.js IMAGE [--server ADDRESS] [--model NAME] [--deadline SECONDS]\n' +
    '                       [--connect-timeout SECONDS] [--wait-for-server]\n' +
    ADDRESS_USAGE;
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        server: { type: 'string', default: DEFAULT_SERVER },
        model: { type: 'string', default: '' },
        deadline: { type: 'string', default: String(DEADLINE_MS / 1000) },
        ...CONNECTION_OPTIONS,
      },
    });
  } catch (e) {
    // An unknown option (--help too): the usage, as stream.js gives it, not a stack trace.
    console.error(`${e.message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = args;
  const deadline = Number(values.deadline);
  const connectTimeout = Number(values['connect-timeout']);
  if (positionals.length !== 1 || !(deadline > 0) || !(connectTimeout > 0)) {
    console.error(usage);
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
    client = await connect(values.server, { timeoutMs: connectTimeout * 1000, waitForServer: values['wait-for-server'] });
  } catch (e) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    const response = await segment(client, imageBytes, '1', {
      model: values.model,
      deadlineMs: deadline * 1000,
      onRetry: ({ error, delayMs }) =>
        console.error(`segment: the server answered ${grpc.status[error.code]} ("${error.details}"): trying again in ${delayMs / 1000} s`),
    });
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
