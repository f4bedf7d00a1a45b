// Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.
//
//   node stream.js FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only] [--in-flight N]
//
// Frames are the folder's images sorted by name; files whose stem ends with _semantic or _panoptic or
// contains _pred (ground truth and predictions stored beside frames) are not sent. A writer sends a
// StreamConfig and then the frames (waiting for 'drain' when grpc-js buffers fill, so HTTP/2 flow
// control paces it) while the responses are read as they arrive. The server answers every frame
// exactly once, in order, with a result, an error or a skip notice. The last line counts them:
//
//   sent 16, results 16, errors 0, skipped 0
//
// Exit status: 0 when every frame was answered once, in order, and none failed; 1 otherwise (or when
// the call fails); 2 when the server cannot be reached.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SERVER, connect, grpc, isMain, listFrames } from './client.js';

export const POLICIES = {
  queue: 'OVERLOAD_POLICY_QUEUE',
  'drop-oldest': 'OVERLOAD_POLICY_DROP_OLDEST',
  'latest-only': 'OVERLOAD_POLICY_LATEST_ONLY',
};
const STREAM_DEADLINE_MS = 300_000;

/**
 * Streams frames, an array of [frameId, image] where image is a path or a Buffer of encoded bytes.
 * Frame ids must be unique. onResponse(response) is called for each response as it arrives.
 * Resolves with { sentIds, responses, results, errors, skipped, problems }; rejects when the call fails.
 */
export async function streamFrames(client, frames, { policy = 'OVERLOAD_POLICY_QUEUE', maxInFlight = 0, onResponse } = {}) {
  const summary = { sentIds: [], responses: [], results: 0, errors: 0, skipped: 0, problems: [] };
  const call = client.SegmentStream({ deadline: Date.now() + STREAM_DEADLINE_MS });

  // The writer runs concurrently with the reader below.
  async function writeAll() {
    const write = async (message) => {
      if (!call.write(message)) await once(call, 'drain');
    };
    await write({
      config: { tasks: ['SEGMENTATION_TASK_PANOPTIC'], overload_policy: policy, max_in_flight: maxInFlight },
    });
    for (const [frameId, image] of frames) {
      const data = typeof image === 'string' ? await readFile(image) : image;
      summary.sentIds.push(String(frameId));
      await write({ frame: { frame_id: String(frameId), image: { encoded: data } } });
    }
    call.end(); // half-close: the server flushes the pending frames and ends the call with OK
  }
  const writing = writeAll();
  writing.catch(() => {}); // a write error also fails the read loop; it is reported there

  for await (const response of call) {
    const index = summary.responses.length;
    summary.responses.push(response);
    const expected = summary.sentIds[index];
    if (expected === undefined) {
      summary.problems.push(`response ${index} (frame_id ${response.frame_id}) answers no sent frame`);
    } else if (response.frame_id !== expected) {
      summary.problems.push(`response ${index} has frame_id ${response.frame_id}, expected ${expected}`);
    }
    if (response.outcome === 'result') summary.results++;
    else if (response.outcome === 'error') summary.errors++;
    else if (response.outcome === 'skipped') summary.skipped++;
    else summary.problems.push(`response for frame_id ${response.frame_id} has no outcome`);
    onResponse?.(response);
  }
  await writing;

  const sent = summary.sentIds.length;
  if (summary.responses.length !== sent) {
    summary.problems.push(`${sent} frames sent but ${summary.responses.length} responses received`);
  }
  if (summary.results + summary.errors + summary.skipped !== sent) {
    summary.problems.push('results + errors + skipped != sent');
  }
  return summary;
}

/** The final line: counts of frames sent and of each outcome. */
export function summaryLine(s) {
  return `sent ${s.sentIds.length}, results ${s.results}, errors ${s.errors}, skipped ${s.skipped}`;
}

/** One line for one response: the outcome and, for a result, the panoptic segments' track ids. */
export function describe(response, names = new Map()) {
  const name = names.has(response.frame_id) ? ` ${names.get(response.frame_id)}` : '';
  const head = `frame ${response.frame_id}${name}:`;
  switch (response.outcome) {
    case 'result': {
      const r = response.result;
      const segments = r.panoptic?.segments ?? [];
      const fmt = (list) => list.map((s) => `${s.label_name}#${s.track_id}`).join(' ') || '-';
      return (
        `${head} result in ${(r.timings?.total_ms ?? 0).toFixed(1)} ms; ` +
        `things: ${fmt(segments.filter((s) => s.is_thing))}; stuff: ${fmt(segments.filter((s) => !s.is_thing))}`
      );
    }
    case 'error':
      return `${head} ERROR ${grpc.status[response.error.code] ?? response.error.code}: ${response.error.message}`;
    case 'skipped':
      return `${head} skipped (${response.skipped.reason})`;
    default:
      return `${head} no outcome`;
  }
}

async function main() {
  const usage = 'usage: node stream.js FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only] [--in-flight N]';
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        server: { type: 'string', default: DEFAULT_SERVER },
        policy: { type: 'string', default: 'queue' },
        'in-flight': { type: 'string', default: '0' },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = args;
  const inFlight = Number(values['in-flight']);
  if (positionals.length !== 1 || !(values.policy in POLICIES) || !Number.isInteger(inFlight) || inFlight < 0) {
    console.error(usage);
    return 2;
  }
  const [folder] = positionals;
  let paths;
  try {
    paths = listFrames(folder);
  } catch (e) {
    console.error(`error: cannot read ${folder}: ${e.message}`);
    return 1;
  }
  if (paths.length === 0) {
    console.error(`error: no frames in ${folder}`);
    return 1;
  }
  const frames = paths.map((p, i) => [String(i + 1), p]); // frame ids 1..N
  const names = new Map(frames.map(([id, p]) => [id, basename(p)]));
  console.log(
    `streaming ${frames.length} frames from ${folder} to ${values.server} ` +
      `(policy ${values.policy}, in-flight ${inFlight || 'server default'})`,
  );

  let client;
  try {
    client = await connect(values.server);
  } catch (e) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    const summary = await streamFrames(client, frames, {
      policy: POLICIES[values.policy],
      maxInFlight: inFlight,
      onResponse: (r) => console.log(describe(r, names)),
    });
    for (const problem of summary.problems) console.error(`error: ${problem}`);
    console.log(summaryLine(summary));
    return summary.problems.length === 0 && summary.errors === 0 ? 0 : 1;
  } catch (e) {
    console.error(`error: SegmentStream failed with ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
    return 1;
  } finally {
    client.close();
  }
}

if (isMain(import.meta.url)) process.exitCode = await main();
