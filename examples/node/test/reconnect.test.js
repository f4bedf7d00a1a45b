// stream.js across a server that goes away mid-stream (a real SIGTERM drain, or SIGKILL) and another started
// on its port, as a rollout replaces a pod: the client rule of docs/deploy.md (Drain). The mirror of
// tests/MaskFormer.Server.Tests/CliReconnectTests.cs.
//
// These tests start their own servers: `dotnet $MASKFORMER_SERVER_DLL` (default: the Release build under
// src/MaskFormer.Server/bin) serving $MASKFORMER_MODELS (default: the repository's models/). Without the
// DLL they fail; none is skipped.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect, grpc, listFrames, SegmentationService } from '../client.js';
import { decodeComplete } from '../delta.js';
import { segment, unavailableFromServer } from '../segment.js';
import { retryDelayMs, streamFrames, streamWithDeltas, summaryLine, TASKS } from '../stream.js';

const repository = (relative) => fileURLToPath(new URL(`../../../${relative}`, import.meta.url));
const SERVER_DLL = process.env.MASKFORMER_SERVER_DLL || repository('src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll');
const MODELS = process.env.MASKFORMER_MODELS || repository('models');
// The clip's frames, not the ground truth kept beside them (frame_000_semantic.png).
const CLIP_FRAMES = listFrames(repository('models/tiny-shapes/clip')).filter((p) => /^frame_\d{3}\.png$/.test(basename(p)));
// The machine may be small and shared: a server's start and a model's first run may take a while.
const READY_TIMEOUT_MS = 90_000;

const HELDOUT_IMAGE = repository('models/tiny-shapes/heldout/0000.png');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what` when the promise has not settled within ms. */
function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(what)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A TCP port nothing listens on now. */
function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves once server's log says it listens on port (before its models are loaded); rejects if it exits first. */
function untilListening(server, port) {
  return within(
    (async () => {
      while (!server.log().includes('Now listening on:')) {
        assert.ok(server.process.exitCode === null, `the server exited before it listened:\n${server.log()}`);
        await sleep(20);
      }
    })(),
    READY_TIMEOUT_MS,
    `the server on port ${port} did not listen within ${READY_TIMEOUT_MS / 1000} s`,
  );
}

const servers = new Set();
after(() => {
  // Whatever a test left running (a failed assertion, a timeout) goes with the suite.
  for (const server of servers) server.kill('SIGKILL');
});

/**
 * Starts a server on 127.0.0.1:port; { process, log(), ready, exited, kill(signal) }. `ready` resolves once
 * its log says "Inference engine ready" and rejects if it exits first.
 */
function startServer(port, ...args) {
  assert.ok(existsSync(SERVER_DLL), `the server is not built: ${SERVER_DLL} does not exist (dotnet build -c Release, or set MASKFORMER_SERVER_DLL)`);
  const child = spawn('dotnet', [
    SERVER_DLL,
    `--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:${port}`,
    `--MaskFormer:Models:Path=${MODELS}`,
    '--MaskFormer:Inference:WarmUp=false',
    ...args,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const read = (chunk) => {
      log += chunk;
      if (log.includes('Inference engine ready')) resolve();
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.once('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`the server exited (${signal ?? code}) before it was ready:\n${log}`)));
  });
  ready.catch(() => {});
  // Awaited by the tests that need it; a server killed before it was ready is no failure of the others.
  const readyWithin = within(ready, READY_TIMEOUT_MS, `the server on port ${port} was not ready within ${READY_TIMEOUT_MS / 1000} s`);
  readyWithin.catch(() => {});
  const server = {
    process: child,
    log: () => log,
    ready: readyWithin,
    exited,
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
  servers.add(server);
  exited.then(() => servers.delete(server));
  return server;
}

/** The clip's frames as a camera at `fps`: one every 1/fps s; those from `held` on wait for `until` first. */
async function* camera(fps, { held = Infinity, until = null } = {}) {
  for (const [i, path] of CLIP_FRAMES.entries()) {
    if (i > 0) await sleep(1000 / fps);
    if (i >= held) await until;
    yield [i + 1, path];
  }
}

/** Resolves once `count` answers have been passed on; rejects if the stream ends first. */
function answersSeen(count, streaming, answered) {
  return within(
    (async () => {
      while (answered() < count) {
        const ended = await Promise.race([streaming.then(() => true, () => true), sleep(50).then(() => false)]);
        assert.ok(!ended || answered() >= count, 'the stream ended before the server was replaced');
      }
    })(),
    60_000,
    `fewer than ${count} answers within 60 s`,
  );
}

describe('a stream across a server replaced mid-stream (servers started here)', () => {
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    test(`${signal}: every frame is answered once, in order, with a result, and the stream reconnects`, async (t) => {
      assert.equal(CLIP_FRAMES.length, 16, `expected the 16 clip frames, got ${CLIP_FRAMES}`);
      const port = await freePort();
      // Batches of 8 that 4 frames a second never fill wait the full queue delay: frames are still in the
      // first server's engine when it goes.
      const first = startServer(
        port,
        '--MaskFormer:Streaming:DrainTimeout=00:00:05',
        '--MaskFormer:Inference:MaxBatchSize=8',
        '--MaskFormer:Inference:MaxQueueDelay=00:00:01',
      );
      await first.ready;
      const client = await connect(`127.0.0.1:${port}`, { waitForServer: true }); // ready may come before it listens
      let second = null;
      let firstGone;
      const gone = new Promise((resolve) => { firstGone = resolve; });
      try {
        const answeredAt = new Map(); // frame id -> when it was passed on
        const notes = [];
        // With deltas and every task: the rebuilder must take each new call's first (complete) result as its base.
        // The last 8 frames wait until the first server is gone: on a small, busy machine its answers may
        // come so late that the whole clip is sent (and answered) before it is told to go.
        const streaming = streamWithDeltas(client, camera(4, { held: 8, until: gone }), {
          check: false,
          tasks: Object.values(TASKS),
          onFrame: (response) => answeredAt.set(response.frame_id, Date.now()),
          onReconnect: (note) => notes.push(note),
        });
        streaming.catch(() => {});
        await answersSeen(2, streaming, () => answeredAt.size);
        first.kill(signal);
        await within(first.exited, 30_000, `the first server did not exit within 30 s of ${signal}`);
        firstGone();
        const answeredBeforeTheSecond = answeredAt.size;

        const secondStarted = Date.now();
        second = startServer(port);
        const { summary, rebuilt } = await within(streaming, 120_000, "the stream did not finish within 120 s of the second server's start")
          .catch((error) => assert.fail(`${error.message} (${notes.join('; ')})\nthe second server's log:\n${second.log()}`));

        t.diagnostic(`${summaryLine(summary)}; ${answeredBeforeTheSecond} answered before the second server; ${notes.join('; ')}`);
        const ids = CLIP_FRAMES.map((_, i) => String(i + 1));
        assert.deepEqual(summary.problems, [], 'stream contract violations');
        assert.deepEqual(summary.responses.map((r) => r.frame_id), ids, 'one answer per frame, in frame order');
        assert.deepEqual(summary.responses.filter((r) => r.outcome !== 'result').map((r) => `${r.frame_id}: ${r.outcome}`), [], 'every frame has a result');
        assert.equal(answeredAt.size, ids.length, 'each frame passed on once');
        assert.ok(answeredBeforeTheSecond < ids.length, `${answeredBeforeTheSecond} of ${ids.length} frames were answered before the second server started`);
        assert.ok([...answeredAt.values()].some((at) => at > secondStarted), 'no frame was answered after the second server started');
        assert.ok(summary.reconnects > 0 && notes.length > 0, `the stream says nothing of reconnecting: ${summary.reconnects} reconnects, notes ${notes}`);
        if (signal === 'SIGKILL') {
          // Frames in the killed server's engine got no answer: they went again to the second one.
          assert.ok(summary.framesSentAgain > 0, `no frame was sent again (${notes.join('; ')})`);
        }

        // Every frame rebuilt; the semantic maps (which tracking does not touch) equal a complete stream's.
        const complete = await streamFrames(client, CLIP_FRAMES.map((p, i) => [i + 1, p]), { tasks: [TASKS.semantic] });
        assert.deepEqual(complete.problems, []);
        for (const response of complete.responses) {
          const frame = rebuilt.get(response.frame_id);
          assert.ok(frame, `frame ${response.frame_id} was not rebuilt`);
          assert.deepEqual(frame.semantic, decodeComplete(response.result).semantic, `frame ${response.frame_id}: rebuilt semantic map`);
        }
      } finally {
        firstGone();
        client.close();
        first.kill('SIGKILL');
        second?.kill('SIGKILL');
        await Promise.all([first.exited, second?.exited]);
      }
    });
  }

  test('no frame in flight when the server drains: the stream half-closes on a status message marked draining', async (t) => {
    const port = await freePort();
    // A drain far longer than the test: while the stream is open the first server can end before it only
    // when the stream half-closes.
    const first = startServer(port, '--MaskFormer:Streaming:DrainTimeout=00:03:00');
    await first.ready;
    const client = await connect(`127.0.0.1:${port}`, { waitForServer: true }); // ready may come before it listens
    let second = null;
    let firstGone;
    const gone = new Promise((resolve) => { firstGone = resolve; });
    try {
      const notes = [];
      let answered = 0;
      // Frame 2 comes once the first server is gone: no answer between the two can say that it drains.
      async function* twoFramesApart() {
        yield ['1', CLIP_FRAMES[0]];
        await gone;
        yield ['2', CLIP_FRAMES[1]];
      }
      const streaming = streamFrames(client, twoFramesApart(), { onResponse: () => answered++, onReconnect: (note) => notes.push(note) });
      streaming.catch(() => {});
      await answersSeen(1, streaming, () => answered);

      // The stream's status messages (one a second) say draining: it half-closes, its call ends OK and the
      // server exits, long before frame 2 would have told it.
      first.kill('SIGTERM');
      await within(first.exited, 20_000, 'the first server did not exit within 20 s of SIGTERM')
        .catch((error) => assert.fail(`${error.message} (${notes.join('; ')})\nits log:\n${first.log()}`));
      firstGone();
      second = startServer(port);
      const summary = await within(streaming, 150_000, "the stream did not finish within 150 s of the second server's start")
        .catch((error) => assert.fail(`${error.message} (${notes.join('; ')})\nthe second server's log:\n${second.log()}`));

      t.diagnostic(`${summaryLine(summary)}; ${summary.statuses} status message(s); ${notes.join('; ')}`);
      assert.deepEqual(summary.problems, [], 'stream contract violations');
      assert.deepEqual(summary.responses.map((r) => `${r.frame_id}: ${r.outcome}`), ['1: result', '2: result'], 'one result per frame, in frame order');
      assert.equal(summaryLine(summary).split(';')[0], 'sent 2, results 2, errors 0, skipped 0');
      assert.ok(summary.statuses > 0, 'no status message came');
      assert.ok(summary.reconnects > 0 && notes.includes('the server is draining: continuing on a new stream'), `the stream did not go on after the drain: ${notes}`);
    } finally {
      firstGone();
      client.close();
      first.kill('SIGKILL');
      second?.kill('SIGKILL');
      await Promise.all([first.exited, second?.exited]);
    }
  });

  test('no server comes back: the stream gives up with UNAVAILABLE after reconnectFor', async (t) => {
    const port = await freePort();
    // Slow batches, 4 frames a second and the last 8 held until the kill: the clip is not over when the server goes.
    const first = startServer(port, '--MaskFormer:Inference:MaxBatchSize=8', '--MaskFormer:Inference:MaxQueueDelay=00:00:01');
    await first.ready;
    const client = await connect(`127.0.0.1:${port}`, { waitForServer: true }); // ready may come before it listens
    let firstKilled;
    const killed = new Promise((resolve) => { firstKilled = resolve; });
    try {
      let answered = 0;
      const streaming = streamFrames(client, camera(4, { held: 8, until: killed }), { reconnectFor: 3, onResponse: () => answered++ });
      streaming.catch(() => {});
      await answersSeen(2, streaming, () => answered);
      first.kill('SIGKILL');
      firstKilled();
      const started = Date.now();
      const failure = await within(streaming.then(() => null, (error) => error), 60_000, 'the stream did not end within 60 s');
      const seconds = (Date.now() - started) / 1000;
      t.diagnostic(`${seconds} s: ${failure?.message}`);

      assert.ok(failure, 'the stream succeeded without a server');
      assert.equal(failure.code, grpc.status.UNAVAILABLE, `${failure.message} after ${seconds} s`);
      assert.match(failure.details, /gave up/);
      assert.ok(seconds >= 1 && seconds < 30, `gave up after ${seconds} s`);
    } finally {
      firstKilled();
      client.close();
      first.kill('SIGKILL');
      await first.exited;
    }
  });
});

test("a RetryInfo in the status details (grpc-status-details-bin) sets the reconnection's delay", () => {
  // google.rpc.Status { code 14, message "x", details [Any { RetryInfo { retry_delay 1.5 s } }] }, encoded by hand.
  const field = (number, bytes) => Buffer.concat([Buffer.from([(number << 3) | 2, bytes.length]), bytes]);
  const duration = Buffer.from([0x08, 0x01, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]); // seconds 1, nanos 500000000
  const any = Buffer.concat([field(1, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), field(2, field(1, duration))]);
  const status = Buffer.concat([Buffer.from([0x08, 14]), field(2, Buffer.from('x')), field(3, any)]);
  const trailers = new grpc.Metadata();
  trailers.set('grpc-status-details-bin', status);

  assert.equal(retryDelayMs(trailers), 1500);
  // A delay of 0, or a negative one (its varint decodes huge), is no delay: the backoff decides.
  for (const zero of [Buffer.alloc(0), Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])]) {
    const none = new grpc.Metadata();
    none.set('grpc-status-details-bin', Buffer.concat([Buffer.from([0x08, 14]), field(3, Buffer.concat([field(1, Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), field(2, field(1, zero))]))]));
    assert.equal(retryDelayMs(none), null);
  }
  assert.equal(retryDelayMs(new grpc.Metadata()), null);
  const other = new grpc.Metadata();
  other.set('grpc-status-details-bin', Buffer.concat([Buffer.from([0x08, 14]), field(3, field(1, Buffer.from('type.googleapis.com/google.rpc.BadRequest')))]));
  assert.equal(retryDelayMs(other), null);
});

describe('a unary Segment call while the server is not ready (a server started here)', () => {
  test('segment.js made as soon as the server listens, with warm-up: refused UNAVAILABLE while loading, then answered', async (t) => {
    const port = await freePort();
    // Later arguments win: warm-up on (the default), so the models load for a while after the port opens.
    const server = startServer(port, '--MaskFormer:Inference:WarmUp=true');
    try {
      await untilListening(server, port);
      assert.ok(!server.log().includes('Inference engine ready'), 'the server was ready before the call: nothing to retry');
      const result = await promisify(execFile)(process.execPath, ['segment.js', HELDOUT_IMAGE, '--server', `127.0.0.1:${port}`], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        timeout: 120_000,
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
      t.diagnostic(result.stderr.trim());
      assert.equal(result.code, 0, `segment.js failed:\n${result.stderr}\nthe server's log:\n${server.log()}`);
      assert.match(result.stdout, /semantic label map: 123x183/);
      assert.match(result.stderr, /UNAVAILABLE \("The models are still loading; retry shortly\."\): trying again/);
      // The request log line may come just after the answer.
      await within((async () => { while (!server.log().includes('SegmentationService/Segment OK')) await sleep(50); })(), 10_000, 'no Segment OK in the log')
        .catch(() => {});
      assert.match(server.log(), /SegmentationService\/Segment Unavailable/, 'the first call was not refused while loading');
      assert.match(server.log(), /SegmentationService\/Segment OK/, 'no call was answered');
    } finally {
      server.kill('SIGKILL');
      await server.exited;
    }
  });

  test('segment.js --wait-for-server finds a server started after it, and ends once it finds one of the other scheme', async () => {
    // Two clients wait for a server not started yet: the cleartext one is answered once it is up; the one with
    // https:// ends when an attempt finds it speaks cleartext, not at --connect-timeout.
    const port = await freePort();
    const waiting = (server) =>
      promisify(execFile)(process.execPath, ['segment.js', HELDOUT_IMAGE, '--wait-for-server', '--connect-timeout', '60', '--server', server], {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        timeout: 120_000,
      }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr, at: Date.now() }),
        (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr, at: Date.now() }),
      );
    const cleartext = waiting(`127.0.0.1:${port}`);
    const tls = waiting(`https://127.0.0.1:${port}`);
    let tlsEnded = false;
    tls.then(() => { tlsEnded = true; });
    const server = startServer(port);
    try {
      await untilListening(server, port);
      const listening = Date.now();
      assert.ok(!tlsEnded, 'the https:// client ended before the server listened');
      const refused = await tls;
      assert.equal(refused.code, 2, refused.stdout + refused.stderr);
      assert.ok(
        refused.stderr.includes(`the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://127.0.0.1:${port})`),
        refused.stderr,
      );
      assert.ok(refused.at - listening < 20_000, `took ${refused.at - listening} ms to fail once the server listened`);
      const answered = await cleartext;
      assert.equal(answered.code, 0, answered.stdout + answered.stderr);
      assert.ok(answered.stdout.includes('classes:'), answered.stdout);
    } finally {
      server.kill('SIGKILL');
      await server.exited;
    }
  });

  test('an UNAVAILABLE grpc-js makes (no server listening) is not tried again', async () => {
    const port = await freePort();
    const client = new SegmentationService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const retries = [];
      const started = Date.now();
      const failure = await segment(client, Buffer.from('not an image'), '1', { deadlineMs: 20_000, onRetry: (r) => retries.push(r) })
        .then(() => null, (error) => error);
      assert.ok(failure, 'the call succeeded without a server');
      assert.equal(failure.code, grpc.status.UNAVAILABLE, failure.message);
      assert.equal(unavailableFromServer(failure), false, failure.message);
      assert.deepEqual(retries, []);
      assert.ok(Date.now() - started < 5_000, `failed only after ${Date.now() - started} ms`);
    } finally {
      client.close();
    }
  });
});
