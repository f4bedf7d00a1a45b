// Checks the Node examples against a running MaskFormer Serve server.
//
//   MASKFORMER_ADDRESS=127.0.0.1:5081 npm test
//
// Without MASKFORMER_ADDRESS, or when the server cannot be reached, every test fails; none is skipped.
// The server's default model must be the tiny-shapes model.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect, grpc, hostPort, listFrames, pngSize, SegmentationService, TLS_VARIABLES } from '../client.js';
import { decodePng, isPng } from '../png.js';
import { segment } from '../segment.js';
import { describe as describeResponse, streamFrames, streamWithDeltas, TASKS } from '../stream.js';

const here = (relative) => fileURLToPath(new URL(`../${relative}`, import.meta.url));
const HELDOUT_IMAGE = here('../../models/tiny-shapes/heldout/0000.png');
const CLIP = here('../../models/tiny-shapes/clip');
const SCRIPT_TIMEOUT_MS = 300_000;
const run = promisify(execFile);
// A failure "at once" is timed against a connect timeout far longer than the bound: a script that waited
// for the timeout instead would take 60 s, while a loaded machine (node --test runs the test files side by
// side, beside servers starting) may take seconds just to start node and load grpc-js.
const AT_ONCE_CONNECT_TIMEOUT_S = 60;
const AT_ONCE_MS = 20_000;

/**
 * Runs an example script against server; MASKFORMER_TOKEN is the given token, or unset, and the TLS
 * variables those in tls, the others unset.
 */
async function runExample(args, { server, token = null, tls = {} }) {
  const env = { ...process.env };
  for (const name of ['MASKFORMER_TOKEN', ...TLS_VARIABLES]) delete env[name];
  if (token !== null) env.MASKFORMER_TOKEN = token;
  Object.assign(env, tls);
  try {
    const { stdout, stderr } = await run(process.execPath, [...args, '--server', server], {
      cwd: here('.'),
      env,
      timeout: SCRIPT_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    if (typeof e.code !== 'number') throw e;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** runExample with --connect-timeout AT_ONCE_CONNECT_TIMEOUT_S, also giving how long it took: { elapsed } in ms. */
async function runTimed(args, options) {
  const started = Date.now();
  const result = await runExample([...args, '--connect-timeout', String(AT_ONCE_CONNECT_TIMEOUT_S)], options);
  return { ...result, elapsed: Date.now() - started };
}

describe('MaskFormer Serve Node examples', () => {
  const address = process.env.MASKFORMER_ADDRESS;
  let client; // a promise of a connected client, made by the first test that needs it

  function requireAddress() {
    assert.ok(
      address,
      'MASKFORMER_ADDRESS is not set: start the server and run e.g. `MASKFORMER_ADDRESS=127.0.0.1:5081 npm test`',
    );
    return address;
  }

  function getClient() {
    client ??= Promise.resolve().then(() => connect(requireAddress()));
    return client;
  }

  after(async () => {
    if (client) (await client.catch(() => null))?.close();
  });

  /** Runs an example script with node; resolves with { code, stdout, stderr }. */
  const runScript = (...args) => runExample(args, { server: requireAddress() });

  test('Segment returns a semantic label map of the image size', async () => {
    const image = readFileSync(HELDOUT_IMAGE);
    const { width, height } = pngSize(image);
    const r = await segment(await getClient(), image, '42');

    assert.equal(r.frame_id, '42', 'frame_id is echoed');
    assert.ok(r.model, 'the response names no model');
    assert.deepEqual([r.width, r.height], [width, height], 'response size');
    assert.ok(r.semantic, 'semantic result missing');
    const lm = r.semantic.label_map;
    assert.deepEqual([lm.width, lm.height], [width, height], 'label_map size');
    assert.equal(lm.encoding, 'LABEL_MAP_ENCODING_PNG', 'label_map.encoding');
    assert.equal(lm.bits_per_pixel, 8, 'label_map.bits_per_pixel');
    assert.ok(isPng(lm.data), 'label_map.data is not a PNG');
    const png = decodePng(lm.data);
    assert.deepEqual([png.width, png.height, png.channels, png.bitDepth], [width, height, 1, 8], 'label map PNG');
    // The classes listed are exactly those in the map, with their pixel counts.
    const counts = new Map();
    for (const v of png.data) counts.set(v, (counts.get(v) ?? 0) + 1);
    assert.deepEqual(
      Object.fromEntries(r.semantic.classes.map((c) => [c.label_id, Number(c.area)])),
      Object.fromEntries(counts),
      'semantic.classes areas',
    );
    assert.ok(r.panoptic, 'panoptic result missing');
    assert.ok(r.panoptic.segments.length > 0, 'no panoptic segments');
    for (const s of r.panoptic.segments) assert.equal(s.track_id, 0, 'track_id is 0 on unary calls');
    assert.ok(r.timings.total_ms > 0, 'timings.total_ms');
  });

  test('segment.js exits 2 naming an image it cannot read', async () => {
    const { code, stderr } = await runScript('segment.js', 'no-such-image.png');
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes('cannot read no-such-image.png'), stderr);
  });

  test('segment.js exits 2 with its usage for an option it does not know, without a stack trace', async () => {
    const { code, stderr } = await runScript('segment.js', '--bogus', HELDOUT_IMAGE);
    assert.equal(code, 2, stderr);
    assert.ok(stderr.includes('usage: node segment.js IMAGE'), stderr);
    assert.ok(!stderr.includes('    at '), stderr);
  });

  test('segment.js --model tiny-shapes --deadline 60 is answered by that model', async () => {
    const { code, stdout, stderr } = await runScript('segment.js', HELDOUT_IMAGE, '--model', 'tiny-shapes', '--deadline', '60');
    assert.equal(code, 0, stdout + stderr);
    assert.ok(stdout.includes('model:   tiny-shapes '), stdout);
  });

  test("segment.js --model of a model the server does not serve fails with its NOT_FOUND, exit 1", async () => {
    const { code, stdout, stderr } = await runScript('segment.js', HELDOUT_IMAGE, '--model', 'no-such-model');
    assert.equal(code, 1, stdout + stderr);
    assert.ok(stderr.includes("error: Segment failed with NOT_FOUND: Model 'no-such-model' is not served."), stderr);
    assert.ok(!stderr.includes('    at '), stderr);
  });

  test("stream.js --model of a model the server does not serve: every frame NOT_FOUND, no check, exit 1", async () => {
    const { code, stdout, stderr } = await runScript('stream.js', CLIP, '--model', 'no-such-model');
    assert.equal(code, 1, stdout + stderr);
    const lines = stdout.trim().split('\n');
    assert.equal(lines.filter((l) => l.includes("ERROR NOT_FOUND: Model 'no-such-model' is not served.")).length, 16, stdout);
    assert.ok(!stdout.includes('check:'), `a stream with no result has nothing to check:\n${stdout}`);
    assert.equal(lines.at(-1), 'sent 16, results 0, errors 16, skipped 0', stdout);
  });

  test('segment.js --deadline 0.001 fails DEADLINE_EXCEEDED, exit 1', async () => {
    const { code, stdout, stderr } = await runScript('segment.js', HELDOUT_IMAGE, '--deadline', '0.001');
    assert.equal(code, 1, stdout + stderr);
    assert.ok(stderr.includes('error: Segment failed with DEADLINE_EXCEEDED'), stderr);
  });

  test('segment.js and stream.js over TLS to the cleartext server fail at once (exit 2), saying it speaks cleartext', async () => {
    const hostPort = requireAddress().replace(/^https?:\/\//, '');
    const server = `https://${hostPort}`;
    for (const args of [['segment.js', HELDOUT_IMAGE], ['stream.js', CLIP]]) {
      const { code, stdout, stderr, elapsed } = await runTimed(args, { server });
      assert.equal(code, 2, stdout + stderr);
      assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${server}: `), stderr);
      assert.ok(
        stderr.includes(`the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://${hostPort})`),
        stderr,
      );
      assert.ok(elapsed < AT_ONCE_MS, `${args[0]} took ${elapsed} ms to fail`);
    }
  });

  test('segment.js --wait-for-server over TLS to the cleartext server ends at once (exit 2), saying it speaks cleartext', async () => {
    // Waiting cannot change the server's scheme: the same error and hint as without --wait-for-server.
    const hostPort = requireAddress().replace(/^https?:\/\//, '');
    const server = `https://${hostPort}`;
    const { code, stdout, stderr, elapsed } = await runTimed(['segment.js', HELDOUT_IMAGE, '--wait-for-server'], { server });
    assert.equal(code, 2, stdout + stderr);
    assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${server}: `), stderr);
    assert.ok(
      stderr.includes(`the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://${hostPort})`),
      stderr,
    );
    assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms to fail`);
  });

  test('stream.js refuses a folder with a broken symbolic link among its frames, naming it, before sending', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'frames-'));
    try {
      copyFileSync(HELDOUT_IMAGE, join(folder, 'a.png'));
      copyFileSync(HELDOUT_IMAGE, join(folder, 'c.png'));
      symlinkSync(join(folder, 'missing.png'), join(folder, 'b.png'));
      const { code, stdout, stderr } = await runScript('stream.js', folder);
      assert.equal(code, 1, stdout + stderr);
      assert.ok(stderr.includes(`b.png is a broken symbolic link (to ${join(folder, 'missing.png')})`), stderr);
      assert.ok(!stdout.includes('streaming'), `nothing is sent:\n${stdout}`);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test('segment.js prints the result', async () => {
    const { code, stdout, stderr } = await runScript('segment.js', HELDOUT_IMAGE);
    assert.equal(code, 0, `segment.js failed:\n${stdout}\n${stderr}`);
    const { width, height } = pngSize(readFileSync(HELDOUT_IMAGE));
    for (const expected of [`size:    ${width}x${height}`, 'classes:', 'panoptic segments', 'timings (ms):']) {
      assert.ok(stdout.includes(expected), `output lacks "${expected}":\n${stdout}`);
    }
  });

  test('SegmentStream answers every clip frame once, in order, with tracked panoptic things', async () => {
    const paths = listFrames(CLIP);
    assert.equal(paths.length, 16, `expected the 16 clip frames, got ${paths}`);
    const frames = paths.map((p, i) => [String(100 + i), p]);
    const summary = await streamFrames(await getClient(), frames, { policy: 'OVERLOAD_POLICY_QUEUE' });

    assert.deepEqual(summary.problems, [], 'stream contract violations');
    assert.deepEqual(
      summary.responses.map((r) => r.frame_id),
      frames.map(([id]) => id),
      'one response per frame, in frame order',
    );
    const notResults = summary.responses.filter((r) => r.outcome !== 'result');
    assert.deepEqual(
      notResults.map((r) => describeResponse(r)),
      [],
      'every frame has a result under OVERLOAD_POLICY_QUEUE',
    );
    let things = 0;
    for (const r of summary.responses) {
      assert.equal(r.result.frame_id, r.frame_id, 'result.frame_id matches the response');
      assert.ok(r.result.panoptic, `frame ${r.frame_id}: panoptic result missing`);
      for (const s of r.result.panoptic.segments) {
        if (!s.is_thing) continue;
        things++;
        assert.notEqual(s.track_id, 0, `frame ${r.frame_id}: thing segment ${s.id} (${s.label_name}) has track_id 0`);
      }
    }
    assert.ok(things > 0, 'no thing segments in the whole clip');
  });

  test('SegmentStream with StreamStatus messages still answers every frame once, in order', async () => {
    const frames = listFrames(CLIP).map((p, i) => [String(300 + i), p]);
    const summary = await streamFrames(await getClient(), frames, { statusIntervalMs: 20 });

    assert.deepEqual(summary.problems, [], 'StreamStatus messages taken for answers');
    assert.equal(summary.results, frames.length);
    assert.ok(summary.statuses >= 1, 'no StreamStatus (the final one comes when an interval is set)');
  });

  test('A frame file that cannot be read is named, the frames before it answered, and the call ends', async () => {
    const frames = [['1', HELDOUT_IMAGE], ['2', join(tmpdir(), `maskformer-missing-${process.pid}.png`)], ['3', HELDOUT_IMAGE]];
    const summary = await streamFrames(await getClient(), frames);

    assert.equal(summary.results, 1, 'the frame before the unreadable one is answered');
    assert.equal(summary.problems.length, 1, summary.problems.join('; '));
    assert.ok(summary.problems[0].includes('maskformer-missing-'), summary.problems[0]);
  });

  test('Delta results rebuild to exactly the complete answers (maps pixel for pixel, masks, segments)', async () => {
    const paths = listFrames(CLIP);
    // Frame 5 twice in a row: the second is unchanged, so its maps are deltas without patches.
    const sequence = [...paths.slice(0, 6), paths[5], ...paths.slice(6)];
    const frames = sequence.map((p, i) => [String(200 + i), p]);
    const { summary, deltas, check } = await streamWithDeltas(await getClient(), frames, {
      tasks: Object.values(TASKS),
      maxInFlight: 4,
    });

    assert.deepEqual(summary.problems, [], 'stream contract violations');
    assert.equal(summary.results, frames.length, 'every frame has a result under OVERLOAD_POLICY_QUEUE');
    assert.deepEqual(check.differences, [], 'rebuilt frames that differ from the complete answers');
    assert.equal(check.compared, frames.length, 'every frame compared');
    assert.equal(check.equal, frames.length, 'every rebuilt frame equal');
    assert.ok(deltas >= frames.length / 2, `only ${deltas} of ${frames.length} results were deltas`);
    const first = summary.responses[0].result;
    assert.ok(first.semantic.label_map && first.panoptic.segment_id_png.length > 0, 'the first result is complete');
    const repeated = summary.responses[6].result;
    assert.deepEqual(repeated.semantic.label_map_delta?.patches, [], 'a repeated frame: semantic map unchanged');
    assert.deepEqual(repeated.panoptic.segment_id_delta?.patches, [], 'a repeated frame: panoptic map unchanged');
    assert.ok(repeated.instance.instances.some((i) => i.mask_unchanged), 'a repeated frame: masks by track id');
    assert.ok(check.bytes.delta < check.bytes.complete, `deltas took ${check.bytes.delta} bytes, complete results ${check.bytes.complete}`);
  });

  test('stream.js streams the clip with deltas, checks the rebuilt frames and counts every frame', async () => {
    const { code, stdout, stderr } = await runScript('stream.js', CLIP, '--policy', 'queue', '--in-flight', '2');
    assert.equal(code, 0, `stream.js failed:\n${stdout}\n${stderr}`);
    const lines = stdout.trim().split('\n');
    assert.ok(lines.includes('check: 16 of 16 rebuilt frames equal the complete answers'), stdout);
    assert.match(stdout, /^bytes: [\d,]+ with deltas, [\d,]+ without \([\d.]+ % saved\)$/m);
    assert.equal(lines.at(-1), 'sent 16, results 16, errors 0, skipped 0', stdout);
  });

  test('stream.js --no-delta streams complete results', async () => {
    const { code, stdout, stderr } = await runScript('stream.js', CLIP, '--no-delta', '--tasks', 'semantic,panoptic');
    assert.equal(code, 0, `stream.js failed:\n${stdout}\n${stderr}`);
    assert.ok(!stdout.includes('check:'), stdout);
    assert.equal(stdout.trim().split('\n').at(-1), 'sent 16, results 16, errors 0, skipped 0', stdout);
  });

  test('A stream paced longer than the answer timeout answers every frame', async () => {
    // A camera's frames, one every 0.5 s: the stream outlives the answer timeout, each frame does not.
    const image = readFileSync(HELDOUT_IMAGE);
    async function* camera() {
      for (let frameId = 1; frameId <= 8; frameId++) {
        if (frameId > 1) await new Promise((resolve) => setTimeout(resolve, 500));
        yield [frameId, image];
      }
    }

    const summary = await streamFrames(await getClient(), camera(), { answerTimeoutMs: 2000 });

    assert.deepEqual(summary.problems, []);
    assert.equal(summary.results, 8);
  });

  test('Delta results from a camera generator are checked frame by frame', async () => {
    // The check streams the frames again: a generator's are kept as the first stream takes them.
    const image = readFileSync(HELDOUT_IMAGE);
    async function* camera() {
      for (let frameId = 1; frameId <= 4; frameId++) yield [frameId, image];
    }

    const { summary, check } = await streamWithDeltas(await getClient(), camera());

    assert.deepEqual(summary.problems, []);
    assert.equal(check.compared, 4);
    assert.equal(check.equal, 4, check.differences.join('; '));
  });
});

describe('a server that ends a call early (one made here: the real server waits for the half-close)', () => {
  test('the stream reports it instead of waiting for its writer', async () => {
    const { client: early, close } = await fakeServer({
      // Ends the call with OK as soon as the config arrives, answering nothing.
      SegmentStream(call) {
        call.once('data', () => call.end());
        call.on('error', () => {});
      },
    });
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    async function* camera() {
      yield [1, readFileSync(HELDOUT_IMAGE)];
      await released; // the next frame never comes while the test runs
    }
    try {
      const outcome = await Promise.race([
        streamFrames(early, camera()),
        new Promise((resolve) => setTimeout(() => resolve('still waiting after 20 s'), 20_000).unref()),
      ]);

      assert.notEqual(outcome, 'still waiting after 20 s');
      assert.ok(outcome.problems.includes('the server ended the call before every frame was sent'), outcome.problems.join('; '));
    } finally {
      release();
      close();
    }
  });
});

describe('a server that stops answering (one made here: the real server cannot be made to)', () => {
  // Reads every frame and answers none; ends only when the client cancels.
  const silentServer = () =>
    fakeServer({
      SegmentStream(call) {
        call.on('data', () => {});
        call.on('error', () => {});
      },
    });

  test('the stream is cancelled once frames wait the answer timeout', async () => {
    const { client: silent, close } = await silentServer();
    try {
      const started = Date.now();
      const summary = await streamFrames(silent, [[1, readFileSync(HELDOUT_IMAGE)]], { answerTimeoutMs: 1000 });

      assert.ok(summary.problems.includes('no answer for 1 s while 1 frame(s) waited: stream cancelled'), summary.problems.join('; '));
      assert.ok(Date.now() - started < 30_000, 'the stream was not cancelled soon after the answer timeout');
    } finally {
      close();
    }
  });

  test('a delta stream cancelled for want of answers makes no check stream', async () => {
    const { client: silent, close } = await silentServer();
    try {
      // The delta stream has failed already: a check stream would only wait out the timeout again.
      const { summary, check } = await streamWithDeltas(silent, [[1, readFileSync(HELDOUT_IMAGE)]], { answerTimeoutMs: 1000 });

      assert.ok(summary.problems.includes('no answer for 1 s while 1 frame(s) waited: stream cancelled'), summary.problems.join('; '));
      assert.equal(check, null, 'a check stream ran after the delta stream was cancelled');
    } finally {
      close();
    }
  });

  test('the answer timeout times each call, not the reconnecting between calls', async () => {
    const { client: leaving, close } = await fakeServer({
      // Answers nothing and ends each call UNAVAILABLE after 0.3 s, as a server that keeps going away.
      SegmentStream(call) {
        call.on('data', () => {});
        setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'going away' }), 300);
      },
    });
    try {
      // Reconnecting for longer than the answer timeout: it is reconnectFor that ends the stream.
      const outcome = await streamFrames(leaving, [[1, readFileSync(HELDOUT_IMAGE)]], { answerTimeoutMs: 1000, reconnectFor: 4 })
        .then((summary) => summary.problems.join('; '), (error) => error);

      assert.equal(outcome.code, grpc.status.UNAVAILABLE, String(outcome));
      assert.match(outcome.details, /gave up/);
    } finally {
      close();
    }
  });
});

/** Serves `implementation` on a free local port; resolves with { client, close() }. */
async function fakeServer(implementation) {
  const server = new grpc.Server();
  server.addService(SegmentationService.service, implementation);
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  const client = new SegmentationService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return { client, close: () => { client.close(); server.forceShutdown(); } };
}

/** Trailers with a google.rpc.Status whose details hold a RetryInfo of `ms` (under 1 s), encoded by hand. */
function retryInfoTrailers(code, ms) {
  const field = (number, bytes) => Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
  const varint = (n) => { const out = []; do { out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n = Math.floor(n / 128); } while (n > 0); return Buffer.from(out); };
  const duration = Buffer.concat([Buffer.from([0x10]), varint(ms * 1e6)]); // nanos
  const any = Buffer.concat([field(1, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), field(2, field(1, duration))]);
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.concat([Buffer.from([0x08, code]), field(3, any)]));
  return metadata;
}

describe('a server that is overloaded (one made here: the real server cannot be made to refuse deterministically)', () => {
  test('segment() retries RESOURCE_EXHAUSTED with a RetryInfo after its delay', async () => {
    let calls = 0;
    const { client, close } = await fakeServer({
      Segment(call, callback) {
        if (++calls <= 2) {
          callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'The queue is full.', metadata: retryInfoTrailers(grpc.status.RESOURCE_EXHAUSTED, 200) });
        } else {
          callback(null, { model: 'fake', frame_id: call.request.frame_id });
        }
      },
    });
    try {
      const retries = [];
      const started = Date.now();
      const response = await segment(client, Buffer.from('an image'), '7', { deadlineMs: 10_000, onRetry: (r) => retries.push(r) });
      const waited = Date.now() - started;

      assert.equal(response.model, 'fake');
      assert.equal(calls, 3);
      assert.deepEqual(retries.map((r) => [r.attempt, r.error.code, r.delayMs]), [[1, grpc.status.RESOURCE_EXHAUSTED, 200], [2, grpc.status.RESOURCE_EXHAUSTED, 200]]);
      assert.ok(waited >= 400 && waited < 5_000, `took ${waited} ms`);
    } finally {
      close();
    }
  });

  test('segment() fails at once on RESOURCE_EXHAUSTED without a RetryInfo', async () => {
    let calls = 0;
    const { client, close } = await fakeServer({
      Segment(call, callback) {
        calls++;
        callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'The queue is full.' });
      },
    });
    try {
      const retries = [];
      const started = Date.now();
      const failure = await segment(client, Buffer.from('an image'), '1', { deadlineMs: 10_000, onRetry: (r) => retries.push(r) })
        .then(() => null, (error) => error);

      assert.ok(failure, 'the call succeeded');
      assert.equal(failure.code, grpc.status.RESOURCE_EXHAUSTED, failure.message);
      assert.equal(calls, 1);
      assert.deepEqual(retries, []);
      assert.ok(Date.now() - started < 2_000, `failed only after ${Date.now() - started} ms`);
    } finally {
      close();
    }
  });

  test('segment() makes at most 5 attempts on RESOURCE_EXHAUSTED with a RetryInfo', async () => {
    let calls = 0;
    const { client, close } = await fakeServer({
      Segment(call, callback) {
        calls++;
        callback({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'The queue is full.', metadata: retryInfoTrailers(grpc.status.RESOURCE_EXHAUSTED, 10) });
      },
    });
    try {
      const failure = await segment(client, Buffer.from('an image'), '1', { deadlineMs: 10_000 }).then(() => null, (error) => error);

      assert.equal(failure?.code, grpc.status.RESOURCE_EXHAUSTED, String(failure));
      assert.equal(calls, 5);
    } finally {
      close();
    }
  });

  test('a stream whose every answer is a skip as draining gives up after reconnectFor', async () => {
    const { client, close } = await fakeServer({
      // Skips every frame as draining and ends the call OK on the half-close, as a server that never gets further.
      SegmentStream(call) {
        call.on('data', (request) => {
          if (request.frame) call.write({ frame_id: request.frame.frame_id, skipped: { reason: 'SKIP_REASON_DRAINING' }, draining: true });
        });
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    try {
      const started = Date.now();
      const outcome = await Promise.race([
        streamFrames(client, [[1, readFileSync(HELDOUT_IMAGE)]], { reconnectFor: 1 }).then((summary) => summary.problems.join('; '), (error) => error),
        new Promise((resolve) => setTimeout(() => resolve('still going after 15 s'), 15_000).unref()),
      ]);

      assert.equal(outcome.code, grpc.status.UNAVAILABLE, String(outcome));
      assert.match(outcome.details, /gave up/);
      assert.ok(Date.now() - started < 10_000, `gave up after ${Date.now() - started} ms`);
    } finally {
      close();
    }
  });
});

describe('a server that goes away while frames wait or the camera pauses (one made here: on cue)', () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  test('a camera paused longer than reconnectFor across two restarts is not given up: no frame waited', async (t) => {
    // No RetryInfo: the backoff decides, and after call 0 one failure has been counted.
    const unavailable = { code: grpc.status.UNAVAILABLE, details: 'restarting' };
    const answer = (call, request) => call.write({ frame_id: request.frame.frame_id, result: { model: 'fake' } });
    let calls = 0;
    let opened;
    const callOneOpen = new Promise((resolve) => { opened = resolve; });
    let release;
    const callOneReleased = new Promise((resolve) => { release = resolve; });
    const { client, close } = await fakeServer({
      SegmentStream(call) {
        call.on('error', () => {});
        const n = calls++;
        if (n === 0) {
          // Answers frame 1, then goes away.
          call.on('data', (request) => {
            if (!request.frame) return;
            answer(call, request);
            call.emit('error', unavailable);
          });
        } else if (n === 1) {
          // Reads the config, then goes away when the test says: no frame waits on it meanwhile.
          call.once('data', () => {
            opened();
            callOneReleased.then(() => call.emit('error', unavailable));
          });
        } else {
          call.on('data', (request) => { if (request.frame) answer(call, request); });
          call.on('end', () => call.end());
        }
      },
    });
    async function* camera() {
      yield [1, readFileSync(HELDOUT_IMAGE)];
      await callOneOpen;
      await sleep(1500); // paused longer than reconnectFor
      release();
      yield [2, readFileSync(HELDOUT_IMAGE)];
    }
    const notes = [];
    try {
      const outcome = await Promise.race([
        streamFrames(client, camera(), { reconnectFor: 1, onReconnect: (note) => notes.push(note) }).catch((error) => error),
        new Promise((resolve) => setTimeout(() => resolve('still going after 20 s'), 20_000).unref()),
      ]);

      assert.ok(!(outcome instanceof Error), `${outcome.message} (${notes.join('; ')})`);
      assert.notEqual(outcome, 'still going after 20 s');
      t.diagnostic(notes.join('; '));
      assert.deepEqual(outcome.problems, []);
      assert.deepEqual(outcome.responses.map((r) => `${r.frame_id}: ${r.outcome}`), ['1: result', '2: result']);
      assert.equal(outcome.results, 2);
      assert.equal(outcome.reconnects, 2, notes.join('; '));
    } finally {
      release();
      close();
    }
  });

  test('a frame that waits reconnectFor while every call is refused gives up, though no server read it', async () => {
    const { client, close } = await fakeServer({
      // Refuses every call at once, reading nothing, with a RetryInfo of 0.1 s, as a server not up yet.
      SegmentStream(call) {
        call.on('error', () => {});
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'not up yet', metadata: retryInfoTrailers(grpc.status.UNAVAILABLE, 100) });
      },
    });
    let release;
    const released = new Promise((resolve) => { release = resolve; });
    async function* camera() {
      yield [1, readFileSync(HELDOUT_IMAGE)];
      await released; // then pauses: frame 1 is still waiting
    }
    try {
      const started = Date.now();
      const outcome = await Promise.race([
        streamFrames(client, camera(), { reconnectFor: 1 }).then((summary) => summary.problems.join('; '), (error) => error),
        new Promise((resolve) => setTimeout(() => resolve('still going after 15 s'), 15_000).unref()),
      ]);
      const waited = Date.now() - started;

      assert.equal(outcome.code, grpc.status.UNAVAILABLE, String(outcome));
      assert.match(outcome.details, /gave up/);
      assert.ok(waited >= 800 && waited < 10_000, `gave up after ${waited} ms`);
    } finally {
      release();
      close();
    }
  });
});

describe('a server that needs a bearer token (tools/test-all.sh starts one)', () => {
  test('segment.js sends MASKFORMER_TOKEN', async () => {
    const server = process.env.MASKFORMER_TOKEN_SERVER;
    const token = process.env.MASKFORMER_TOKEN_SERVER_TOKEN;
    assert.ok(
      server && token,
      'MASKFORMER_TOKEN_SERVER and MASKFORMER_TOKEN_SERVER_TOKEN are not set: start a server with ' +
        '--MaskFormer:Security:TokensFile=FILE (FILE holding the token) and set both (tools/test-all.sh does)',
    );
    const without = await runExample(['segment.js', HELDOUT_IMAGE], { server });
    const right = await runExample(['segment.js', HELDOUT_IMAGE], { server, token });

    assert.equal(without.code, 1, without.stdout + without.stderr);
    assert.ok(without.stderr.includes('UNAUTHENTICATED'), without.stderr);
    assert.equal(right.code, 0, right.stdout + right.stderr);
    assert.ok(right.stdout.includes('classes:'), right.stdout);
  });
});

describe('a failed connection (nothing listening: needs no server)', () => {
  /** A port nothing listens on: one the system gave and took back. */
  const freePort = () =>
    new Promise((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });

  test('segment.js and stream.js fail at once (exit 2), naming the address and the refused connection', async () => {
    const server = `127.0.0.1:${await freePort()}`;
    for (const args of [['segment.js', HELDOUT_IMAGE], ['stream.js', CLIP]]) {
      const { code, stdout, stderr, elapsed } = await runTimed(args, { server });
      assert.equal(code, 2, stdout + stderr);
      assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${server}: `), stderr);
      assert.ok(stderr.includes('ECONNREFUSED'), stderr);
      assert.ok(elapsed < AT_ONCE_MS, `${args[0]} took ${elapsed} ms to fail`);
    }
  });

  test('--wait-for-server tries again until --connect-timeout', async () => {
    const server = `127.0.0.1:${await freePort()}`;
    const started = Date.now();
    const { code, stdout, stderr } = await runExample(['segment.js', HELDOUT_IMAGE, '--wait-for-server', '--connect-timeout', '2'], { server });
    const elapsed = Date.now() - started;
    assert.equal(code, 2, stdout + stderr);
    assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${server} within 2 s`), stderr);
    // Under the default connect timeout (15 s), with room for a loaded machine: the 2 s was kept.
    assert.ok(elapsed > 1_900 && elapsed < 12_000, `took ${elapsed} ms`);
  });
});

describe('an address (--server, MASKFORMER_ADDRESS: needs no server of the suite)', () => {
  const refused = (address, problem) => `--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; ${address} ${problem}`;
  const noPort = (address) => refused(address, 'has no port (the service listens on 5081 unless told otherwise)');

  // Runs the script with --server SERVER, waiting for a server for 60 s (a script that tried the
  // address would take that long), and checks it is refused at once (exit 2) with MESSAGE.
  const assertRefusedAtOnce = async (args, server, message) => {
    const { code, stdout, stderr, elapsed } = await runTimed([...args, '--wait-for-server'], { server });
    assert.equal(code, 2, stdout + stderr);
    assert.equal(stderr.trim(), `error: ${message}`);
    assert.ok(elapsed < AT_ONCE_MS, `${args[0]} took ${elapsed} ms to fail`);
  };

  test('a URL without a port takes its scheme\'s; host:port and [IPv6]:port are kept', () => {
    assert.equal(hostPort('http://segment.example'), 'segment.example:80');
    assert.equal(hostPort('https://segment.example/'), 'segment.example:443');
    assert.equal(hostPort('https://segment.example:8443'), 'segment.example:8443');
    assert.equal(hostPort('http://[::1]'), '[::1]:80');
    assert.equal(hostPort('[::1]:5081'), '[::1]:5081');
    assert.equal(hostPort('127.0.0.1:5081'), '127.0.0.1:5081');
    for (const address of ['127.0.0.1', 'localhost/', '[::1]', '::1']) {
      assert.throws(() => hostPort(address), { message: noPort(address) });
    }
  });

  test('segment.js and stream.js refuse a host without a port at once (exit 2), saying so', async () => {
    for (const server of ['127.0.0.1', '[::1]']) {
      for (const args of [['segment.js', HELDOUT_IMAGE], ['stream.js', CLIP]]) {
        await assertRefusedAtOnce(args, server, noPort(server));
      }
    }
  });

  const badPort = (address, port) => refused(address, `has port "${port}", which is not a number from 1 to 65535`);

  test('a port that is not a number from 1 to 65535 is refused, saying so', () => {
    const bad = [
      ['127.0.0.1:', ''], ['127.0.0.1:abc', 'abc'], ['127.0.0.1:0', '0'], ['127.0.0.1:70000', '70000'], ['127.0.0.1:-1', '-1'],
      ['[::1]:', ''], ['[::1]:abc', 'abc'], ['http://127.0.0.1:', ''], ['http://127.0.0.1:abc', 'abc'],
      ['http://127.0.0.1:0', '0'], ['https://127.0.0.1:70000/', '70000'], ['https://[::1]:0', '0'],
    ];
    for (const [address, port] of bad) assert.throws(() => hostPort(address), { message: badPort(address, port) });
    assert.equal(hostPort('127.0.0.1:1'), '127.0.0.1:1');
    assert.equal(hostPort('https://[::1]:65535/'), '[::1]:65535');
  });

  test('segment.js and stream.js refuse a port that is not a number from 1 to 65535 at once (exit 2), saying so', async () => {
    const runs = [
      [['segment.js', HELDOUT_IMAGE], '127.0.0.1:', ''],
      [['segment.js', HELDOUT_IMAGE], '127.0.0.1:0', '0'],
      [['stream.js', CLIP], 'http://127.0.0.1:abc', 'abc'],
    ];
    for (const [args, server, port] of runs) await assertRefusedAtOnce(args, server, badPort(server, port));
  });

  const problems = [
    ['http://127.0.0.1:5081/api', 'has path "/api", which a gRPC address cannot have'],
    ['127.0.0.1:5081/x', 'has path "/x", which a gRPC address cannot have'],
    ['https://[::1]:5081/a/b/', 'has path "/a/b", which a gRPC address cannot have'],
    ['http://segment.example/api', 'has path "/api", which a gRPC address cannot have'],
    ['ftp://127.0.0.1:5081', 'has scheme "ftp", which is not http or https'],
    ['grpc://127.0.0.1:5081', 'has scheme "grpc", which is not http or https'],
    ['unix:///tmp/maskformer.sock', 'has scheme "unix", which is not http or https'],
    ['HTTP://127.0.0.1:5081', 'has scheme "HTTP", which is not http or https'],
    [':5081', 'has no host'],
    ['http://:5081', 'has no host'],
    ['[]:5081', 'has no host'],
    ['http://', 'has no host'],
    ['http://::1:5081', 'has host "::1:5081": an IPv6 host goes in brackets ([::1]:5081)'],
    ['https://::1', 'has host "::1": an IPv6 host goes in brackets ([::1]:5081)'],
    ['http://fe80::1/', 'has host "fe80::1": an IPv6 host goes in brackets ([::1]:5081)'],
    ['http://[::1', 'has host "[::1": an IPv6 host goes in brackets ([::1]:5081)'],
  ];
  test('an address with a path, another scheme or no host is refused, saying so', () => {
    for (const [address, problem] of problems) assert.throws(() => hostPort(address), { message: refused(address, problem) });
  });

  test('segment.js and stream.js refuse an address with a path, another scheme or no host at once (exit 2), saying so', async () => {
    const runs = [
      [['segment.js', HELDOUT_IMAGE], 'http://127.0.0.1:5081/api', 'has path "/api", which a gRPC address cannot have'],
      [['stream.js', CLIP], 'grpc://127.0.0.1:5081', 'has scheme "grpc", which is not http or https'],
      [['segment.js', HELDOUT_IMAGE], ':5081', 'has no host'],
    ];
    for (const [args, server, problem] of runs) await assertRefusedAtOnce(args, server, refused(server, problem));
  });

  test('an IPv6 address in brackets reaches its server', async () => {
    const server = new grpc.Server();
    const port = await new Promise((resolve, reject) =>
      server.bindAsync('[::1]:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    try {
      for (const address of [`[::1]:${port}`, `http://[::1]:${port}`]) {
        const client = await connect(address, { timeoutMs: AT_ONCE_CONNECT_TIMEOUT_S * 1000 });
        client.close();
      }
    } finally {
      server.forceShutdown();
    }
  });
});

describe('a server with TLS that wants a client certificate (tools/test-all.sh starts one)', () => {
  const server = process.env.MASKFORMER_TLS_SERVER;
  const folder = process.env.MASKFORMER_TLS_FILES;
  const full = () => {
    assert.ok(
      server && folder,
      'MASKFORMER_TLS_SERVER and MASKFORMER_TLS_FILES are not set: make certificates with tools/make-test-certs.sh DIR, ' +
        'start a server on https://127.0.0.1:PORT with DIR/server.pem, DIR/server.key and ' +
        'MaskFormer:Security:ClientCaPath=DIR/ca.pem, and set both to its address and DIR (tools/test-all.sh does)',
    );
    return Object.fromEntries(TLS_VARIABLES.map((name, i) => [name, join(folder, ['ca.pem', 'client.pem', 'client.key'][i])]));
  };

  test('segment.js and stream.js over mutual TLS', async () => {
    const tls = full();
    const segmented = await runExample(['segment.js', HELDOUT_IMAGE], { server, tls });
    const streamed = await runExample(['stream.js', CLIP, '--no-delta', '--tasks', 'semantic'], { server, tls });

    assert.equal(segmented.code, 0, segmented.stdout + segmented.stderr);
    assert.ok(segmented.stdout.includes('classes:'), segmented.stdout);
    assert.equal(streamed.code, 0, streamed.stdout + streamed.stderr);
    assert.equal(streamed.stdout.trim().split('\n').at(-1), 'sent 16, results 16, errors 0, skipped 0', streamed.stdout);
  });

  test('segment.js without a client certificate fails at once (exit 2)', async () => {
    const { MASKFORMER_CA_CERT } = full();
    const { code, stdout, stderr, elapsed } = await runTimed(['segment.js', HELDOUT_IMAGE], { server, tls: { MASKFORMER_CA_CERT } });

    assert.equal(code, 2, stdout + stderr);
    assert.ok(!stdout.includes('classes:'), stdout);
    assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${server}: `), stderr);
    assert.ok(stderr.includes('the TLS handshake failed'), stderr);
    assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms to fail`);
  });

  test('segment.js refuses a server whose certificate is not from MASKFORMER_CA_CERT at once (exit 2)', async () => {
    const tls = { ...full(), MASKFORMER_CA_CERT: join(folder, 'other-ca.pem') };
    const { code, stdout, stderr, elapsed } = await runTimed(['segment.js', HELDOUT_IMAGE], { server, tls });

    assert.equal(code, 2, stdout + stderr);
    assert.ok(!stdout.includes('classes:'), stdout);
    assert.ok(stderr.includes('the TLS handshake failed'), stderr);
    assert.ok(stderr.includes('unable to verify the first certificate'), stderr);
    assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms to fail`);
  });

  test('segment.js and stream.js at its address as host:port or http:// fail at once (exit 2), saying it speaks TLS', async () => {
    full();
    for (const [script, at] of [['segment.js', server.replace('https://', '')], ['stream.js', server.replace('https://', 'http://')]]) {
      const { code, stdout, stderr, elapsed } = await runTimed([script, script === 'segment.js' ? HELDOUT_IMAGE : CLIP], { server: at });

      assert.equal(code, 2, stdout + stderr);
      assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${at}: `), stderr);
      assert.ok(
        stderr.includes(`the server there seems to speak TLS, it answered a TLS handshake: use ${server}, with MASKFORMER_CA_CERT for a private CA)`),
        stderr,
      );
      assert.ok(elapsed < AT_ONCE_MS, `${script} took ${elapsed} ms to fail`);
    }
  });

  test('segment.js --wait-for-server ends at once (exit 2) when waiting cannot help: a scheme or certificate that does not fit', async () => {
    // A scheme or a certificate that does not fit stays so: --wait-for-server ends with the error and hint it
    // gives without, long before --connect-timeout.
    const tls = full();
    const cases = [
      ['a cleartext address', server.replace('https://', ''), {}, `the server there seems to speak TLS, it answered a TLS handshake: use ${server}, `],
      ['no client certificate', server, { MASKFORMER_CA_CERT: tls.MASKFORMER_CA_CERT }, 'it accepts connections, so the TLS handshake failed'],
      ['a server from another CA', server, { ...tls, MASKFORMER_CA_CERT: join(folder, 'other-ca.pem') }, 'unable to verify the first certificate'],
      [
        'an expired client certificate',
        server,
        { ...tls, MASKFORMER_CLIENT_CERT: join(folder, 'client-expired.pem'), MASKFORMER_CLIENT_KEY: join(folder, 'client-expired.key') },
        'refuses one out of date',
      ],
    ];
    for (const [what, at, settings, said] of cases) {
      const { code, stdout, stderr, elapsed } = await runTimed(['segment.js', HELDOUT_IMAGE, '--wait-for-server'], { server: at, tls: settings });
      assert.equal(code, 2, `${what}: ${stdout}${stderr}`);
      assert.ok(stderr.includes(`cannot reach the MaskFormer server at ${at}: `), `${what}: ${stderr}`);
      assert.ok(stderr.includes(said), `${what}: ${stderr}`);
      assert.ok(elapsed < AT_ONCE_MS, `${what}: took ${elapsed} ms to fail`);
    }
  });

  /** segment.js with client certificate name (tools/make-test-certs.sh) fails at once, saying said and a date between earliestDays and latestDays from now. */
  async function assertOutOfDate(name, said, earliestDays, latestDays) {
    const certificate = join(folder, `${name}.pem`);
    const tls = { ...full(), MASKFORMER_CLIENT_CERT: certificate, MASKFORMER_CLIENT_KEY: join(folder, `${name}.key`) };
    const { code, stdout, stderr, elapsed } = await runTimed(['segment.js', HELDOUT_IMAGE], { server, tls });

    assert.equal(code, 2, stdout + stderr);
    assert.ok(!stdout.includes('classes:'), stdout);
    const escaped = certificate.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const match = stderr.match(new RegExp(`MASKFORMER_CLIENT_CERT ${escaped} ${said} (\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ)`));
    assert.ok(match, stderr);
    assert.ok(!stderr.includes('does the server want a client certificate'), stderr);
    const days = (Date.parse(match[1].replace(' ', 'T')) - Date.now()) / 86_400_000;
    assert.ok(days > earliestDays && days < latestDays, `${match[1]} is ${days.toFixed(2)} days from now`);
    assert.ok(elapsed < AT_ONCE_MS, `took ${elapsed} ms to fail`);
    return stderr;
  }

  test('segment.js with an expired client certificate fails at once (exit 2), saying when it expired', async () => {
    const stderr = await assertOutOfDate('client-expired', 'expired at', -2, 0);
    assert.ok(stderr.includes('; renew it)'), stderr);
  });

  test('segment.js with a client certificate not yet valid fails at once (exit 2), saying from when', async () => {
    const stderr = await assertOutOfDate('client-not-yet-valid', 'is not valid before', 0, 2);
    assert.ok(stderr.includes("; is this machine's clock right?)"), stderr);
  });

  test('settings that do not fit are named', async () => {
    const tls = full();
    const cleartext = await runExample(['segment.js', HELDOUT_IMAGE], { server: server.replace('https://', 'http://'), tls });
    const { MASKFORMER_CLIENT_KEY: _, ...half } = tls;
    const halfRun = await runExample(['segment.js', HELDOUT_IMAGE], { server, tls: half });
    const missing = await runExample(['stream.js', CLIP], { server, tls: { ...tls, MASKFORMER_CA_CERT: '/no/such/ca.pem' } });
    const notACa = await runExample(['segment.js', HELDOUT_IMAGE], { server, tls: { ...tls, MASKFORMER_CA_CERT: tls.MASKFORMER_CLIENT_KEY } });
    const wrongKey = await runExample(['segment.js', HELDOUT_IMAGE], { server, tls: { ...tls, MASKFORMER_CLIENT_KEY: join(folder, 'server.key') } });

    assert.equal(cleartext.code, 2, cleartext.stderr);
    assert.ok(cleartext.stderr.includes('needs an https:// server address'), cleartext.stderr);
    assert.equal(halfRun.code, 2, halfRun.stderr);
    assert.ok(halfRun.stderr.includes('go together'), halfRun.stderr);
    assert.equal(missing.code, 2, missing.stderr);
    assert.ok(missing.stderr.includes('cannot read /no/such/ca.pem'), missing.stderr);
    assert.equal(notACa.code, 2, notACa.stderr);
    assert.ok(notACa.stderr.includes('holds no PEM CA certificate'), notACa.stderr);
    assert.equal(wrongKey.code, 2, wrongKey.stderr);
    assert.ok(wrongKey.stderr.includes('is not the PEM private key'), wrongKey.stderr);
  });
});
