// Integration tests against a running MaskFormer Serve server.
//
//   MASKFORMER_ADDRESS=127.0.0.1:5081 npm test
//
// The server must serve a default model trained on tiny-shapes; the held-out image and its ground
// truth come from models/tiny-shapes/heldout/.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { decodePng, isPng, toRgb24 } from '../../examples/node/png.js';

const repoPath = (relative) => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

const PROTO_ROOT = repoPath('protos');
const PROTO_FILE = 'maskformer/v1/segmentation.proto';
const HELDOUT_IMAGE = repoPath('models/tiny-shapes/heldout/0000.png');
const HELDOUT_TRUTH = repoPath('models/tiny-shapes/heldout/0000_semantic.png');

const CALL_DEADLINE_MS = 30_000;
const CONNECT_TIMEOUT_MS = 15_000;
const MIN_PIXEL_ACCURACY = 0.8;
const FRAME_ID = '42'; // uint64 fields come back as strings (longs: String)
const SEMANTIC = 'SEGMENTATION_TASK_SEMANTIC';

const packageDefinition = protoLoader.loadSync(PROTO_FILE, {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names as in the .proto: frame_id, label_map, ...
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const proto = grpc.loadPackageDefinition(packageDefinition);
const SegmentationService = proto.maskformer.v1.SegmentationService;

/** Reads a file the tests need, failing with a hint when it is missing. */
function readRequired(path, hint) {
  assert.ok(existsSync(path), `missing ${path}: ${hint}`);
  return readFileSync(path);
}

/** Calls a unary method with a deadline and returns a promise of the response. */
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + CALL_DEADLINE_MS }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

/** Asserts that a promise rejects with the given gRPC status code. */
async function assertStatus(promise, code, codeName) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected gRPC status ${codeName} (${code}), but the call succeeded`);
  if (typeof err.code !== 'number') throw err; // not a gRPC status (e.g. no server): report it as it is
  assert.equal(
    err.code,
    code,
    `expected gRPC status ${codeName} (${code}), got ${grpc.status[err.code]} (${err.code}): ${err.details}`,
  );
}

/** Decodes a LabelMap of the given size into one label id per pixel. */
function decodeLabelMap(labelMap, width, height) {
  assert.ok(labelMap, 'semantic.label_map is missing');
  assert.equal(labelMap.encoding, 'LABEL_MAP_ENCODING_PNG', 'label_map.encoding');
  assert.equal(labelMap.bits_per_pixel, 8, 'label_map.bits_per_pixel');
  assert.equal(labelMap.width, width, 'label_map.width');
  assert.equal(labelMap.height, height, 'label_map.height');
  assert.ok(isPng(labelMap.data), 'label_map.data is not a PNG');
  const png = decodePng(labelMap.data);
  assert.equal(png.colorType, 0, 'label map PNG colour type (0 = greyscale)');
  assert.equal(png.bitDepth, 8, 'label map PNG bit depth');
  assert.equal(png.channels, 1, 'label map PNG channels');
  assert.equal(png.width, width, 'label map PNG width');
  assert.equal(png.height, height, 'label map PNG height');
  return png.data;
}

/** A valid 8x8 mid-grey RGB24 frame, for calls whose image does not matter. */
function tinyFrame() {
  return { width: 8, height: 8, stride: 0, pixel_format: 'PIXEL_FORMAT_RGB24', data: Buffer.alloc(8 * 8 * 3, 128) };
}

describe('MaskFormer Serve (gRPC)', () => {
  const address = process.env.MASKFORMER_ADDRESS;
  let client; // a promise of a connected client, made by the first test that needs it
  let defaultModel;
  let heldout; // { bytes, png } of the held-out image
  let encodedResponse; // the Segment response for the encoded held-out image

  /** Connects to the server once; every test fails with a clear message when it cannot. */
  function connect() {
    client ??= new Promise((resolve, reject) => {
      if (!address) {
        reject(new Error(
          'MASKFORMER_ADDRESS is not set: start the server and run e.g. `MASKFORMER_ADDRESS=127.0.0.1:5081 npm test`',
        ));
        return;
      }
      // A stream window larger than an answer, as the examples' client: Kestrel can lose an answer when
      // the client's window runs out mid-answer (dotnet/aspnetcore#53736; README, Troubleshooting).
      const c = new SegmentationService(address, grpc.credentials.createInsecure(), {
        'grpc-node.flow_control_window': 16 * 1024 * 1024,
      });
      c.waitForReady(Date.now() + CONNECT_TIMEOUT_MS, (err) => {
        if (!err) return resolve(c);
        c.close();
        reject(new Error(`cannot reach the MaskFormer server at ${address} within ${CONNECT_TIMEOUT_MS} ms: ${err.message}`));
      });
    });
    return client;
  }

  /** Calls a unary method on the connected client. */
  async function rpc(method, request) {
    return call(await connect(), method, request);
  }

  after(async () => {
    if (client) (await client.catch(() => null))?.close();
  });

  /** The default model from ListModels (fetched once). */
  async function getDefaultModel() {
    if (!defaultModel) {
      const { models } = await rpc('ListModels', {});
      defaultModel = models.find((m) => m.is_default);
      assert.ok(defaultModel, 'ListModels marks no model as is_default');
    }
    return defaultModel;
  }

  /** The held-out image's encoded bytes and decoded pixels (read once). */
  function getHeldout() {
    if (!heldout) {
      const bytes = readRequired(HELDOUT_IMAGE, 'train the tiny-shapes model first (tools/model-zoo)');
      heldout = { bytes, png: decodePng(bytes) };
    }
    return heldout;
  }

  /** Segments the encoded held-out image (once). */
  async function segmentEncoded() {
    if (!encodedResponse) {
      encodedResponse = await rpc('Segment', {
        image: { encoded: getHeldout().bytes },
        tasks: [SEMANTIC],
        frame_id: FRAME_ID,
      });
    }
    return encodedResponse;
  }

  test('ListModels returns a default model with labels that can do semantic segmentation', async () => {
    const { models } = await rpc('ListModels', {});
    assert.ok(models.length >= 1, 'ListModels returned no models');
    const defaults = models.filter((m) => m.is_default);
    assert.equal(defaults.length, 1, `expected exactly one default model, got ${defaults.map((m) => m.name)}`);
    const [model] = defaults;
    assert.ok(model.name, 'the default model has no name');
    assert.ok(model.labels.length > 0, `model ${model.name} lists no labels`);
    assert.ok(
      model.supported_tasks.includes(SEMANTIC),
      `model ${model.name} does not support ${SEMANTIC}: ${model.supported_tasks}`,
    );
  });

  test('Segment (encoded PNG) labels the held-out image accurately', async () => {
    const model = await getDefaultModel();
    const { png } = getHeldout();
    const response = await segmentEncoded();

    assert.equal(response.frame_id, FRAME_ID, 'frame_id is echoed');
    assert.equal(response.model, model.name, 'the default model answered');
    assert.equal(response.width, png.width, 'response.width');
    assert.equal(response.height, png.height, 'response.height');
    assert.ok(response.timings, 'timings are missing');
    assert.ok(response.timings.total_ms > 0, `timings.total_ms = ${response.timings.total_ms}`);
    assert.ok(response.semantic, 'semantic result is missing');

    const predicted = decodeLabelMap(response.semantic.label_map, png.width, png.height);
    const truth = decodePng(readRequired(HELDOUT_TRUTH, 'the ground truth ships with the held-out image'));
    assert.equal(truth.channels, 1, 'ground truth must be a single-channel label map');
    assert.equal(truth.width, png.width, 'ground truth width');
    assert.equal(truth.height, png.height, 'ground truth height');

    let correct = 0;
    for (let i = 0; i < predicted.length; i++) if (predicted[i] === truth.data[i]) correct++;
    const accuracy = correct / predicted.length;
    assert.ok(
      accuracy >= MIN_PIXEL_ACCURACY,
      `pixel accuracy ${accuracy.toFixed(4)} is below ${MIN_PIXEL_ACCURACY} (${correct} of ${predicted.length} pixels)`,
    );
  });

  test('Segment (raw RGB24 frame) gives the same label map as the encoded image', async () => {
    const { png } = getHeldout();
    const encoded = await segmentEncoded();
    const response = await rpc('Segment', {
      image: {
        raw: {
          width: png.width,
          height: png.height,
          stride: png.width * 3,
          pixel_format: 'PIXEL_FORMAT_RGB24',
          data: toRgb24(png),
        },
      },
      tasks: [SEMANTIC],
      frame_id: FRAME_ID,
    });
    assert.equal(response.width, png.width, 'response.width');
    assert.equal(response.height, png.height, 'response.height');
    assert.ok(response.semantic, 'semantic result is missing');

    const fromRaw = decodeLabelMap(response.semantic.label_map, png.width, png.height);
    const fromEncoded = decodeLabelMap(encoded.semantic.label_map, png.width, png.height);
    let differing = 0;
    for (let i = 0; i < fromRaw.length; i++) if (fromRaw[i] !== fromEncoded[i]) differing++;
    assert.equal(differing, 0, `${differing} of ${fromRaw.length} pixels differ between the raw and encoded calls`);
  });

  test('Segment with an empty image fails with INVALID_ARGUMENT', async () => {
    await assertStatus(
      rpc('Segment', { image: {}, tasks: [SEMANTIC] }),
      grpc.status.INVALID_ARGUMENT,
      'INVALID_ARGUMENT',
    );
  });

  test('Segment with an unknown model fails with NOT_FOUND', async () => {
    await assertStatus(
      rpc('Segment', { model: 'no-such-model', image: { raw: tinyFrame() }, tasks: [SEMANTIC] }),
      grpc.status.NOT_FOUND,
      'NOT_FOUND',
    );
  });
});
