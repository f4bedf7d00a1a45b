// Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.
//
//   node stream.js FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only] [--in-flight N]
//                  [--tasks semantic,instance,panoptic] [--keyframe-interval N] [--no-delta] [--no-check]
//
// Results come as deltas (StreamConfig.delta) unless --no-delta: a DeltaRebuilder (delta.js) turns each
// into the complete frame. Unless --no-check, the frames are then streamed again without deltas and every
// rebuilt frame is compared with its complete answer (maps pixel for pixel, masks, segments), and the
// bytes of both streams' responses are reported:
//
//   check: 16 of 16 rebuilt frames equal the complete answers
//   bytes: 34,244 with deltas, 37,606 without (8.9 % saved)
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
import { DeltaRebuilder, decodeComplete, frameDifferences } from './delta.js';

export const POLICIES = {
  queue: 'OVERLOAD_POLICY_QUEUE',
  'drop-oldest': 'OVERLOAD_POLICY_DROP_OLDEST',
  'latest-only': 'OVERLOAD_POLICY_LATEST_ONLY',
};
export const TASKS = {
  semantic: 'SEGMENTATION_TASK_SEMANTIC',
  instance: 'SEGMENTATION_TASK_INSTANCE',
  panoptic: 'SEGMENTATION_TASK_PANOPTIC',
};
// A stream has no deadline (a camera's may run for days); it is given up when frames have waited this long
// without a single answer, so that a server that stops answering cannot hold the client.
export const ANSWER_TIMEOUT_MS = 60_000;

/**
 * Streams frames, an iterable or async iterable of [frameId, image] where image is a path or a Buffer of
 * encoded bytes (an async generator that waits for each frame is a camera). Frame ids must be unique.
 * onResponse(response) is called for each response as it arrives. `delta` is a DeltaOptions
 * ({ enabled, keyframe_interval }) or null for complete results. A stream whose frames wait
 * `answerTimeoutMs` without an answer is cancelled and reported in `problems`.
 * Resolves with { sentIds, responses, results, errors, skipped, bytes, problems }; rejects when the call
 * fails otherwise. `bytes` sums the responses' sizes on the wire.
 */
export async function streamFrames(
  client,
  frames,
  {
    policy = 'OVERLOAD_POLICY_QUEUE',
    maxInFlight = 0,
    tasks = [TASKS.panoptic],
    delta = null,
    statusIntervalMs = null,
    answerTimeoutMs = ANSWER_TIMEOUT_MS,
    onResponse,
  } = {},
) {
  const summary = { sentIds: [], responses: [], results: 0, errors: 0, skipped: 0, statuses: 0, bytes: 0, problems: [] };
  const call = client.SegmentStream();

  // When the oldest frame still waiting began to wait: the last answer, or the send that found none waiting.
  let waitingSince = Date.now();
  let timedOut = null;
  const watchdog = setInterval(() => {
    const waiting = summary.sentIds.length - summary.responses.length;
    if (waiting > 0 && Date.now() - waitingSince > answerTimeoutMs) {
      timedOut = `no answer for ${answerTimeoutMs / 1000} s while ${waiting} frame(s) waited: stream cancelled`;
      clearInterval(watchdog);
      call.cancel();
    }
  }, Math.min(1000, answerTimeoutMs / 4));

  // The writer runs concurrently with the reader below.
  async function writeAll() {
    const write = async (message) => {
      if (!call.write(message)) await once(call, 'drain');
    };
    const config = { tasks, overload_policy: policy, max_in_flight: maxInFlight, delta };
    if (statusIntervalMs !== null) config.status_interval_ms = statusIntervalMs;
    await write({ config });
    for await (const [frameId, image] of frames) {
      let data;
      try {
        data = typeof image === 'string' ? await readFile(image) : image;
      } catch (error) {
        // Half-close after the frames sent so far: they are still answered, and the call ends.
        summary.problems.push(`frame ${frameId}: cannot read ${image}: ${error.message}; nothing sent after it`);
        break;
      }
      if (summary.sentIds.length === summary.responses.length) waitingSince = Date.now();
      summary.sentIds.push(String(frameId));
      await write({ frame: { frame_id: String(frameId), image: { encoded: data } } });
    }
    call.end(); // half-close: the server flushes the pending frames and ends the call with OK
  }
  const writing = writeAll();
  // A write error also fails the read loop, where it is reported; a failure before the half-close must
  // still end the call, or the read loop would wait for the answer timeout.
  writing.catch(() => call.cancel());

  try {
    for await (const response of call) {
      if (response.outcome === 'status') {
        // How the stream is doing, not an answer to a frame: outside the one-answer-per-frame order.
        summary.statuses++;
        continue;
      }
      const index = summary.responses.length;
      summary.responses.push(response);
      waitingSince = Date.now();
      summary.bytes += response.wire_bytes ?? 0;
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
  } catch (error) {
    if (timedOut === null) throw error;
  } finally {
    clearInterval(watchdog);
  }
  if (timedOut !== null) {
    summary.problems.push(timedOut);
    writing.catch(() => {});
  } else if (await settlesSoon(writing)) {
    await writing;
  } else {
    // The answers ended while the writer still waited ('drain', or a generator's next frame): it would wait
    // forever. This server ends a call only after the half-close, so another server ended it early.
    call.cancel();
    writing.catch(() => {});
    summary.problems.push('the server ended the call before every frame was sent');
  }

  const sent = summary.sentIds.length;
  if (summary.responses.length !== sent) {
    summary.problems.push(`${sent} frames sent but ${summary.responses.length} responses received`);
  }
  if (summary.results + summary.errors + summary.skipped !== sent) {
    summary.problems.push('results + errors + skipped != sent');
  }
  return summary;
}

// Whether the promise settles within a turn of the event loop.
async function settlesSoon(promise) {
  let settled = false;
  promise.then(() => { settled = true; }, () => { settled = true; });
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

/** The final line: counts of frames sent and of each outcome. */
export function summaryLine(s) {
  return `sent ${s.sentIds.length}, results ${s.results}, errors ${s.errors}, skipped ${s.skipped}`;
}

/**
 * Streams the frames with deltas, rebuilding each result, then (when `check`) again without deltas,
 * comparing every rebuilt frame with its complete answer. onFrame(response, frame) is called for each
 * delta-stream response (frame: the rebuilt Frame, or null for an error or skip). Resolves with
 * { summary, rebuilt, deltas, check: { compared, equal, differences, bytes } | null }.
 */
export async function streamWithDeltas(client, frames, { check = true, keyframeInterval = 0, onFrame, ...options } = {}) {
  const rebuilder = new DeltaRebuilder();
  const rebuilt = new Map(); // frame id -> Frame
  // The check streams the same frames again: a generator's (a camera's) are kept as the first stream takes them.
  const sent = Array.isArray(frames) || !check ? frames : [];
  async function* keep(source) {
    for await (const frame of source) {
      sent.push(frame);
      yield frame;
    }
  }
  const summary = await streamFrames(client, sent === frames ? frames : keep(frames), {
    ...options,
    delta: { enabled: true, keyframe_interval: keyframeInterval },
    onResponse: (response) => {
      const frame = response.outcome === 'result' ? rebuilder.apply(response.result) : null;
      if (frame) rebuilt.set(response.frame_id, frame);
      onFrame?.(response, frame);
    },
  });
  if (!check) return { summary, rebuilt, deltas: rebuilder.deltas, check: null };

  const complete = await streamFrames(client, sent, { ...options, delta: null });
  const answered = (run) => run.responses.filter((r) => r.outcome === 'result').map((r) => r.frame_id);
  const [withDeltas, withoutDeltas] = [answered(summary), answered(complete)];
  if (withDeltas.join() !== withoutDeltas.join()) {
    // A skipping policy gave the two runs different frames: their tracks differ from the first gap on,
    // and their bytes count different answers. Without a skipped frame, a frame failed in one run only:
    // a failure, not a matter of policy.
    const skipping = summary.skipped > 0 || complete.skipped > 0;
    const notComparable =
      `the two streams answered different frames (${withDeltas.length} and ${withoutDeltas.length} results; ` +
      `the run without deltas: ${complete.errors} errors, ${complete.skipped} skipped)` +
      (skipping ? '; use --policy queue, or --no-check' : '');
    return { summary, rebuilt, deltas: rebuilder.deltas, check: { notComparable, passed: skipping } };
  }
  const result = { compared: 0, equal: 0, differences: [], bytes: { delta: summary.bytes, complete: complete.bytes } };
  for (const response of complete.responses) {
    const frame = rebuilt.get(response.frame_id);
    if (response.outcome !== 'result' || !frame) continue; // skipped or failed in one of the two runs
    result.compared++;
    const differences = frameDifferences(frame, decodeComplete(response.result));
    if (differences.length === 0) result.equal++;
    else result.differences.push(`frame ${response.frame_id}: ${differences.join(', ')} differ`);
  }
  result.passed = result.compared > 0 && result.equal === result.compared;
  return { summary, rebuilt, deltas: rebuilder.deltas, check: result };
}

/** The check's lines: rebuilt frames equal to complete answers, and the bytes both streams took. */
export function checkLines(check) {
  if (check.notComparable) return [`check: not made: ${check.notComparable}`];
  const { delta, complete } = check.bytes;
  const saved = complete > 0 ? ((100 * (complete - delta)) / complete).toFixed(1) : '0.0';
  return [
    `check: ${check.equal} of ${check.compared} rebuilt frames equal the complete answers`,
    `bytes: ${delta.toLocaleString('en-US')} with deltas, ${complete.toLocaleString('en-US')} without (${saved} % saved)`,
  ];
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

/** How a result came: " [complete]" or " [delta: N patches, M masks by track id]". */
function deltaNote(result) {
  const deltas = [result.semantic?.label_map_delta, result.panoptic?.segment_id_delta].filter(Boolean);
  const unchanged = (result.instance?.instances ?? []).filter((i) => i.mask_unchanged).length;
  if (deltas.length === 0 && unchanged === 0) return ' [complete]';
  const patches = deltas.reduce((n, d) => n + d.patches.length, 0);
  return ` [delta: ${patches} patches, ${unchanged} masks by track id]`;
}

async function main() {
  const usage =
    'usage: node stream.js FOLDER [--server host:port] [--policy queue|drop-oldest|latest-only] [--in-flight N]\n' +
    '                      [--tasks semantic,instance,panoptic] [--keyframe-interval N] [--no-delta] [--no-check]';
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        server: { type: 'string', default: DEFAULT_SERVER },
        policy: { type: 'string', default: 'queue' },
        'in-flight': { type: 'string', default: '0' },
        tasks: { type: 'string', default: 'panoptic' },
        'keyframe-interval': { type: 'string', default: '0' },
        'no-delta': { type: 'boolean', default: false },
        'no-check': { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = args;
  const inFlight = Number(values['in-flight']);
  const keyframeInterval = Number(values['keyframe-interval']);
  const tasks = values.tasks.split(',').map((t) => TASKS[t.trim()]);
  const counts = [inFlight, keyframeInterval];
  if (positionals.length !== 1 || !(values.policy in POLICIES) || !counts.every((n) => Number.isInteger(n) && n >= 0) || !tasks.every(Boolean)) {
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
      `(policy ${values.policy}, in-flight ${inFlight || 'server default'}, tasks ${values.tasks}, ` +
      `${values['no-delta'] ? 'complete results' : 'deltas'})`,
  );

  let client;
  try {
    client = await connect(values.server);
  } catch (e) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    const options = { policy: POLICIES[values.policy], maxInFlight: inFlight, tasks };
    if (values['no-delta']) {
      const summary = await streamFrames(client, frames, { ...options, onResponse: (r) => console.log(describe(r, names)) });
      for (const problem of summary.problems) console.error(`error: ${problem}`);
      console.log(summaryLine(summary));
      return summary.problems.length === 0 && summary.errors === 0 ? 0 : 1;
    }

    const { summary, check } = await streamWithDeltas(client, frames, {
      ...options,
      keyframeInterval,
      check: !values['no-check'],
      onFrame: (r, frame) => console.log(describe(r, names) + (frame ? deltaNote(frame.result) : '')),
    });
    for (const problem of summary.problems) console.error(`error: ${problem}`);
    for (const difference of check?.differences ?? []) console.error(`error: rebuilt ${difference}`);
    if (check) for (const line of checkLines(check)) console.log(line);
    console.log(summaryLine(summary));
    const checked = !check || check.passed;
    return summary.problems.length === 0 && summary.errors === 0 && checked ? 0 : 1;
  } catch (e) {
    console.error(`error: SegmentStream failed with ${grpc.status[e.code] ?? e.code}: ${e.details ?? e.message}`);
    return 1;
  } finally {
    client.close();
  }
}

if (isMain(import.meta.url)) process.exitCode = await main();
