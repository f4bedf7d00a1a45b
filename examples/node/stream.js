// Streams a folder of frames through SegmentStream (panoptic, with tracking) and prints each outcome.
//
//   node stream.js FOLDER [--server ADDRESS] [--policy queue|drop-oldest|latest-only] [--in-flight N]
//                  [--tasks semantic,instance,panoptic] [--keyframe-interval N] [--no-delta] [--no-check]
//                  [--reconnect-for SECONDS] [--model NAME] [--connect-timeout SECONDS] [--wait-for-server]
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
// The stream outlives a server that drains or goes away (docs/deploy.md, Drain): on an answer or a status
// message marked draining it half-closes and goes on with a new call (it asks for a status message every
// second, so that a stream with no frame in flight hears of a drain too); when a call ends UNAVAILABLE it
// reconnects (after the server's RetryInfo delay, or a backoff of 0.25 s doubling to 4 s) and sends again
// every frame that got no result, until a frame has waited --reconnect-for seconds (60) with no call
// answering (a pause in the input does not count). Answers still come once each, in frame order; each
// change of call is a "stream: ..." line, and the last line then adds "; reconnected N time(s), M frame(s)
// sent again". Track ids start again on each new call.
//
// Exit status: 0 when every frame was answered once, in order, and none failed; 1 otherwise (or when
// the call fails); 2 when the server cannot be reached.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { ADDRESS_USAGE, CONNECTION_OPTIONS, DEFAULT_SERVER, backoffMs, connect, grpc, isMain, listFrames } from './client.js';
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
// A stream with no frame in flight (a paused camera) gets no answer to carry draining = true: a status message
// this often (StreamConfig.status_interval_ms) tells it of a drain all the same, so it half-closes then rather
// than holding the server until its drain time runs out.
export const STATUS_INTERVAL_MS = 1000;
// A stream that loses its call reconnects until a frame has waited this long with no call answering (seconds).
export const RECONNECT_FOR_S = 60;

/**
 * Streams frames, an iterable or async iterable of [frameId, image] where image is a path or a Buffer of
 * encoded bytes (an async generator that waits for each frame is a camera). Frame ids must be unique.
 * onResponse(response) is called for each frame's answer, once each and in frame order, whatever call it
 * came on; onAnswer(response) as each kept answer arrives, in the order of its call (a DeltaRebuilder
 * fed there always has its base: a new call's first result is complete). `delta` is a DeltaOptions
 * ({ enabled, keyframe_interval }) or null for complete results; `statusIntervalMs` asks for a StreamStatus
 * that often (null: STATUS_INTERVAL_MS; 0: never); `model` names the model (StreamConfig.model;
 * empty: the server's default). A stream whose frames wait
 * `answerTimeoutMs` without an answer is cancelled and reported in `problems`.
 *
 * One stream outlives the server's drain (docs/deploy.md, Drain): on an answer or a status message marked
 * `draining` it half-closes the call and goes on with a new one; when a call ends UNAVAILABLE it opens a new
 * one after the server's RetryInfo delay or a backoff (0.25 s doubling to 4 s) and sends again every frame that got
 * no result (no answer, or skipped as draining). It gives up, rejecting with UNAVAILABLE, when a frame taken
 * from the input has waited `reconnectFor` seconds with no call answering; while no frame waits (a paused
 * camera) a server that is away costs nothing and is tried again. Other failures are not retried.
 * onReconnect(note) says why at each change of call. A new call starts a new server-side stream: track ids
 * and delta bases start again.
 * Resolves with { sentIds, responses, results, errors, skipped, statuses, bytes, problems, reconnects (new
 * calls), framesSentAgain (frames sent on more than one call) }; rejects when a call fails otherwise.
 * `bytes` sums the passed-on answers' sizes on the wire (status messages are only counted, in `statuses`).
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
    reconnectFor = RECONNECT_FOR_S,
    model = '',
    onResponse,
    onAnswer,
    onReconnect,
  } = {},
) {
  if (!(reconnectFor > 0)) throw new RangeError(`reconnectFor must be more than 0 seconds, not ${reconnectFor}`);
  const summary = {
    sentIds: [], responses: [], results: 0, errors: 0, skipped: 0, statuses: 0, bytes: 0, problems: [],
    reconnects: 0, framesSentAgain: 0,
  };
  const config = {
    model, tasks, overload_policy: policy, max_in_flight: maxInFlight, delta,
    status_interval_ms: statusIntervalMs ?? STATUS_INTERVAL_MS,
  };

  // The input is shared by the calls: a next() one call was waiting for when it ended is taken by the next.
  const input = frames[Symbol.asyncIterator]?.() ?? frames[Symbol.iterator]();
  let nextFrame = null;
  // When the input gave the frame in nextFrame, while no call has taken it yet: it waits from then, even
  // between calls. Null while the input is still making the next frame (a camera between frames).
  let heldSince = null;
  let inputDone = false;
  // Frames taken from the input and not yet passed on, in frame order, by id: their answer once it came
  // (kept until every earlier frame's has been passed on), or null while the frame must be answered (again);
  // `since` is when the input gave it, kept when it is sent again.
  const pending = new Map();
  let call = null; // the call running, if any
  let fatal = null; // a failure of the input or of a callback: ends the stream with it
  let wake = null; // ends a backoff early

  // When the oldest frame still waiting began to wait: the last answer, the send that found none waiting,
  // or the start of the call (the watchdog times a call; between calls, reconnecting, it waits).
  let waitingSince = Date.now();
  let between = false;
  let timedOut = null;
  const watchdog = setInterval(() => {
    const waiting = summary.sentIds.length - summary.responses.length;
    if (waiting > 0 && !between && Date.now() - waitingSince > answerTimeoutMs) {
      timedOut = `no answer for ${answerTimeoutMs / 1000} s while ${waiting} frame(s) waited: stream cancelled`;
      clearInterval(watchdog);
      call?.cancel();
      wake?.();
    }
  }, Math.min(1000, answerTimeoutMs / 4));

  const stop = (error) => {
    fatal ??= error;
    call?.cancel();
  };

  // Passes on every answer whose earlier frames' have all been passed on.
  function passOn() {
    for (const [id, frame] of pending) {
      if (frame.answer === null) return;
      pending.delete(id);
      const response = frame.answer;
      summary.responses.push(response);
      summary.bytes += response.wire_bytes ?? 0;
      if (response.outcome === 'result') summary.results++;
      else if (response.outcome === 'error') summary.errors++;
      else if (response.outcome === 'skipped') summary.skipped++;
      else summary.problems.push(`response for frame_id ${response.frame_id} has no outcome`);
      onResponse?.(response);
    }
  }

  // One call: the frames still to answer first, then new ones until the input ends or the server drains.
  async function runCall(attempt) {
    const current = client.SegmentStream();
    call = current;
    // The answer timeout times this call, not the reconnecting before it.
    waitingSince = Date.now();
    if (attempt > 0) summary.reconnects++;
    const written = []; // frame ids in the order this call sent them: its answers come in this order
    let answers = 0;
    let halfClosed = false;
    let ended = false;
    const status = new Promise((resolve) => current.on('status', resolve));
    const end = status.then(() => { ended = true; });
    let drained;
    let draining = false; // an answer or a status message said that the server drains
    const drainSeen = new Promise((resolve) => {
      drained = () => {
        draining = true;
        resolve();
      };
    });
    const stopTaking = Promise.race([end, drainSeen]).then(() => STOP);

    async function writeAll() {
      const write = async (message) => {
        // Once the call has ended, 'drain' never comes: the frame stays pending and goes on the next call.
        if (!current.write(message)) await Promise.race([once(current, 'drain').catch(() => {}), end]);
      };
      await write({ config });
      const again = [...pending.values()].filter((frame) => frame.answer === null);
      for (const frame of again) {
        if (ended) return;
        if (frame.sends++ === 1) summary.framesSentAgain++; // frames, not sends: a refused call may take them again
        written.push(frame.id);
        await write({ frame: { frame_id: frame.id, image: { encoded: frame.data } } });
      }
      while (!inputDone) {
        nextFrame ??= Promise.resolve(input.next()).then((taken) => {
          if (!taken.done) heldSince = Date.now();
          return taken;
        });
        const next = await Promise.race([nextFrame, stopTaking]);
        if (next === STOP) break;
        nextFrame = null;
        const since = heldSince;
        heldSince = null;
        if (next.done) {
          inputDone = true;
          break;
        }
        const [frameId, image] = next.value;
        let data;
        try {
          data = typeof image === 'string' ? await readFile(image) : image;
        } catch (error) {
          // Half-close after the frames sent so far: they are still answered, and the call ends.
          summary.problems.push(`frame ${frameId}: cannot read ${image}: ${error.message}; nothing sent after it`);
          inputDone = true;
          input.return?.()?.catch?.(() => {});
          break;
        }
        // Pending before it is written: a frame taken here is answered on this call or sent again.
        const id = String(frameId);
        if (summary.sentIds.length === summary.responses.length) waitingSince = Date.now();
        summary.sentIds.push(id);
        const frame = { id, data, answer: null, sends: 0, since };
        pending.set(id, frame);
        if (ended) return;
        frame.sends++;
        written.push(id);
        await write({ frame: { frame_id: id, image: { encoded: data } } });
      }
      if (ended) return;
      halfClosed = true;
      current.end(); // half-close: the server answers the frames it holds and ends the call with OK
    }
    // A failing input ends the stream with its error, as does a write that fails on a call still running;
    // once the call has ended its status says what happened.
    const writing = writeAll().catch((error) => {
      if (!ended) stop(error);
    });

    let answered = false;
    try {
      for await (const response of current) {
        if (response.outcome === 'status') {
          // How the stream is doing, not an answer to a frame: outside the one-answer-per-frame order.
          // Marked draining, it half-closes the call as an answer would.
          summary.statuses++;
          if (response.draining) drained();
          continue;
        }
        // A frame skipped as draining got no result: it goes again, and does not count as progress.
        answered ||= !(response.outcome === 'skipped' && response.skipped.reason === 'SKIP_REASON_DRAINING');
        waitingSince = Date.now();
        if (response.draining) drained();
        const index = answers++;
        if (written[index] === undefined) {
          summary.problems.push(`response ${index} of call ${attempt + 1} (frame_id ${response.frame_id}) answers no frame sent on it`);
          continue;
        }
        if (response.frame_id !== written[index]) {
          summary.problems.push(`response ${index} of call ${attempt + 1} has frame_id ${response.frame_id}, expected ${written[index]}`);
        }
        const frame = pending.get(response.frame_id);
        if (frame === undefined || frame.answer !== null) continue;
        // Skipped as draining: no result, the frame goes again on the next call.
        if (response.outcome === 'skipped' && response.skipped.reason === 'SKIP_REASON_DRAINING') continue;
        frame.answer = response;
        try {
          onAnswer?.(response);
          passOn();
        } catch (error) {
          stop(error);
        }
      }
    } catch {
      // The call failed: its status says how.
    }
    const { code, details, metadata } = await status;
    call = null;
    await writing;
    // The server said it drains while no frame was on the call (only a status message can then).
    const drainedIdle = draining && written.length === 0;
    return { code, details, metadata, answered, drainedIdle, halfClosed };
  }

  // When the oldest frame taken from the input and still without a result began to wait, or null if none
  // waits: those pending unanswered (sent, or skipped as draining) and the one held between calls.
  function oldestWaiting() {
    let oldest = heldSince;
    for (const frame of pending.values()) {
      if (frame.answer === null && (oldest === null || frame.since < oldest)) oldest = frame.since;
    }
    return oldest;
  }

  try {
    let lastAnswer = Date.now(); // of a call that answered, or the stream's start
    let failures = 0;
    for (let attempt = 0; ; attempt++) {
      const { code, details, metadata, answered, drainedIdle, halfClosed } = await runCall(attempt);
      if (fatal !== null) throw fatal;
      if (timedOut !== null) break;
      if (answered) {
        lastAnswer = Date.now();
        failures = 0;
      }

      // Every frame answered and no more to come: the call's end is not ours to retry.
      const finished = inputDone && pending.size === 0;
      if (finished && (code === grpc.status.OK || code === grpc.status.UNAVAILABLE)) break;
      if (code === grpc.status.OK && !halfClosed) {
        // This server ends a call only after the half-close, or on a drain: another server ended it early.
        summary.problems.push('the server ended the call before every frame was sent');
        input.return?.()?.catch?.(() => {});
        break;
      }
      if (code === grpc.status.OK && (answered || drainedIdle)) {
        // Half-closed on a drain (an answer or a status message said so): the server answered everything it
        // held; go on at once. A call whose every frame was skipped as draining is no progress: it backs off,
        // as one refused.
        onReconnect?.('the server is draining: continuing on a new stream');
        continue;
      }
      // An OK call that answered nothing is retried as an unavailable one, within the same time.
      if (code !== grpc.status.OK && code !== grpc.status.UNAVAILABLE) throw callError(code, details, metadata);

      // Time without answers counts only while a frame waits for one: a paused camera's silence does not.
      const since = oldestWaiting();
      const quiet = since === null ? 0 : Date.now() - Math.max(lastAnswer, since);
      const delay = retryDelayMs(metadata) ?? backoffMs(failures++);
      if (quiet + delay > reconnectFor * 1000) {
        input.return?.()?.catch?.(() => {});
        throw callError(grpc.status.UNAVAILABLE, `${details} (no answer for ${Math.round(quiet / 1000)} s of reconnecting; gave up)`, metadata);
      }
      onReconnect?.(`the stream ended ${grpc.status[code]} ("${details}"): reconnecting in ${delay / 1000} s`);
      between = true;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = null;
      between = false;
      if (timedOut !== null) break;
    }
  } finally {
    clearInterval(watchdog);
  }
  if (timedOut !== null) summary.problems.push(timedOut);

  const sent = summary.sentIds.length;
  if (summary.responses.length !== sent) {
    summary.problems.push(`${sent} frames sent but ${summary.responses.length} responses received`);
  }
  if (summary.results + summary.errors + summary.skipped !== sent) {
    summary.problems.push('results + errors + skipped != sent');
  }
  return summary;
}

const STOP = Symbol('stop');
/** An Error like grpc-js's for a failed call: code, details, metadata. */
function callError(code, details, metadata) {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata });
}

/**
 * The delay a google.rpc.RetryInfo in the status details (trailer grpc-status-details-bin) asks for, in ms,
 * or null: none, or one of 0 or less (then the backoff decides: a delay of 0 would retry without a pause).
 */
export function retryDelayMs(metadata) {
  const delay = retryInfoMs(metadata);
  return delay !== null && delay > 0 ? delay : null;
}

/**
 * The delay of a google.rpc.RetryInfo in the status details (trailer grpc-status-details-bin), in ms, 0
 * included; null when there is none, or it is negative. Decoded by hand: Status.details (3) are Any
 * (type_url 1, value 2); RetryInfo.retry_delay (1) is a Duration (seconds 1, nanos 2).
 */
export function retryInfoMs(metadata) {
  const [bytes] = metadata?.get?.('grpc-status-details-bin') ?? [];
  if (!Buffer.isBuffer(bytes)) return null;
  try {
    for (const any of fields(bytes).filter((f) => f.number === 3)) {
      const parts = fields(any.value);
      const type = parts.find((f) => f.number === 1)?.value.toString();
      if (type !== 'type.googleapis.com/google.rpc.RetryInfo') continue;
      const info = parts.find((f) => f.number === 2)?.value ?? Buffer.alloc(0);
      const duration = fields(info).find((f) => f.number === 1)?.value ?? Buffer.alloc(0);
      const part = (n) => Number(fields(duration).find((f) => f.number === n)?.value ?? 0);
      const delay = part(1) * 1000 + part(2) / 1e6;
      // A negative field decodes here as a huge varint, hence the upper bound.
      return delay >= 0 && delay < 3_600_000 ? delay : null;
    }
  } catch {
    // Details that do not decode ask for nothing.
  }
  return null;
}

/** A protobuf message's fields: { number, value } with varints as numbers, length-delimited as Buffers. */
function fields(bytes) {
  const out = [];
  let at = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      if (at >= bytes.length) throw new Error('truncated varint');
      const byte = bytes[at++];
      value += (byte & 0x7f) * shift;
      if (byte < 0x80) return value;
    }
  };
  while (at < bytes.length) {
    const key = varint();
    const [number, type] = [Math.floor(key / 8), key % 8];
    if (type === 0) out.push({ number, value: varint() });
    else if (type === 2) {
      const length = varint();
      if (at + length > bytes.length) throw new Error('truncated field');
      out.push({ number, value: bytes.subarray(at, (at += length)) });
    } else if (type === 1) at += 8;
    else if (type === 5) at += 4;
    else throw new Error(`wire type ${type}`);
  }
  return out;
}

/** The final line: counts of frames sent and of each outcome, and the reconnections when there were any. */
export function summaryLine(s) {
  const reconnected = s.reconnects > 0 ? `; reconnected ${s.reconnects} time(s), ${s.framesSentAgain} frame(s) sent again` : '';
  return `sent ${s.sentIds.length}, results ${s.results}, errors ${s.errors}, skipped ${s.skipped}${reconnected}`;
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
    // Rebuilt as they arrive, call by call: a delta's base is the previous result on its call, which in
    // frame order may come later (a frame sent again on a new call, whose first result is complete).
    onAnswer: (response) => {
      if (response.outcome === 'result') rebuilt.set(response.frame_id, rebuilder.apply(response.result));
    },
    onResponse: (response) => onFrame?.(response, rebuilt.get(response.frame_id) ?? null),
  });
  // A stream cancelled for want of answers (or that broke the stream contract) has failed already: a second
  // stream to compare it with would only wait as long again. One without a result (every frame failed, as for
  // a model the server does not serve) has nothing to check.
  if (!check || summary.problems.length > 0 || summary.results === 0) return { summary, rebuilt, deltas: rebuilder.deltas, check: null };

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
  if (summary.reconnects > 0 || complete.reconnects > 0) {
    // A new call starts tracking again: track ids, and the segment ids they order, differ from one stream's.
    const notComparable =
      `a stream went on new calls (with deltas ${summary.reconnects} time(s), without ${complete.reconnects}), ` +
      'which start their track ids again';
    return { summary, rebuilt, deltas: rebuilder.deltas, check: { notComparable, passed: true } };
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
    'usage: node stream.js FOLDER [--server ADDRESS] [--policy queue|drop-oldest|latest-only] [--in-flight N]\n' +
    '                      [--tasks semantic,instance,panoptic] [--keyframe-interval N] [--no-delta] [--no-check]\n' +
    '                      [--reconnect-for SECONDS] [--model NAME] [--connect-timeout SECONDS] [--wait-for-server]\n' +
    ADDRESS_USAGE;
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
        'reconnect-for': { type: 'string', default: String(RECONNECT_FOR_S) },
        model: { type: 'string', default: '' },
        ...CONNECTION_OPTIONS,
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${usage}`);
    return 2;
  }
  const { values, positionals } = args;
  const inFlight = Number(values['in-flight']);
  const keyframeInterval = Number(values['keyframe-interval']);
  const reconnectFor = Number(values['reconnect-for']);
  const connectTimeout = Number(values['connect-timeout']);
  const tasks = values.tasks.split(',').map((t) => TASKS[t.trim()]);
  const counts = [inFlight, keyframeInterval];
  if (positionals.length !== 1 || !(values.policy in POLICIES) || !counts.every((n) => Number.isInteger(n) && n >= 0) || !tasks.every(Boolean) || !(reconnectFor > 0) || !(connectTimeout > 0)) {
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
    client = await connect(values.server, { timeoutMs: connectTimeout * 1000, waitForServer: values['wait-for-server'] });
  } catch (e) {
    console.error(`error: ${e.message}`);
    return 2;
  }
  try {
    const options = {
      policy: POLICIES[values.policy],
      maxInFlight: inFlight,
      tasks,
      reconnectFor,
      model: values.model,
      onReconnect: (note) => console.log(`stream: ${note}`),
    };
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
