// Shared helpers for the MaskFormer Serve Node examples: the generated client, connecting, and
// choosing the frames of a folder.
import { readdirSync, statSync } from 'node:fs';
import { join, parse } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

export { grpc };

export const DEFAULT_SERVER = process.env.MASKFORMER_ADDRESS || '127.0.0.1:5081';
export const PROTO_ROOT = fileURLToPath(new URL('../../protos', import.meta.url));
export const PROTO_FILE = 'maskformer/v1/segmentation.proto';

const packageDefinition = protoLoader.loadSync(PROTO_FILE, {
  includeDirs: [PROTO_ROOT],
  keepCase: true, // field names as in the .proto: frame_id, label_map, ...
  longs: String, // uint64 fields (frame_id, area) are strings
  enums: String, // enum values are their names, e.g. 'SEGMENTATION_TASK_PANOPTIC'
  defaults: true, // unset scalars read as 0 / '' / false, unset messages as null
  oneofs: true, // the name of the set oneof field, e.g. response.outcome === 'result'
});
// Each stream response remembers its size on the wire (non-enumerable `wire_bytes`), so the stream
// example can report what deltas save.
const streamMethod = packageDefinition['maskformer.v1.SegmentationService'].SegmentStream;
const deserializeResponse = streamMethod.responseDeserialize;
streamMethod.responseDeserialize = (bytes) => {
  const message = deserializeResponse(bytes);
  Object.defineProperty(message, 'wire_bytes', { value: bytes.length });
  return message;
};
const proto = grpc.loadPackageDefinition(packageDefinition);

/** The generated client constructor: new SegmentationService('host:port', credentials). */
export const SegmentationService = proto.maskformer.v1.SegmentationService;

/** host:port from host:port or http://host:port, the forms MASKFORMER_ADDRESS takes across all clients. */
export function hostPort(address) {
  return address.replace(/^http:\/\//, '').replace(/\/+$/, '');
}

/** An interceptor adding "authorization: Bearer <token>" to every call. */
function bearerToken(token) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * Opens a plaintext client and waits until it is connected; rejects when it cannot within timeoutMs.
 * With MASKFORMER_TOKEN set, every call carries "authorization: Bearer <token>" (a server with
 * MaskFormer:Security:TokensFile answers UNAUTHENTICATED without it).
 */
export function connect(address, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const token = process.env.MASKFORMER_TOKEN;
    const client = new SegmentationService(hostPort(address), grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // A stream window larger than an answer: with the default 64 KiB, Kestrel loses an answer now and
      // then (dotnet/aspnetcore#53736; the main README, Troubleshooting).
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
      interceptors: token ? [bearerToken(token)] : [],
    });
    client.waitForReady(Date.now() + timeoutMs, (err) => {
      if (!err) return resolve(client);
      client.close();
      reject(new Error(`cannot reach the MaskFormer server at ${address} within ${timeoutMs} ms: ${err.message}`));
    });
  });
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tga', '.tif', '.tiff', '.webp']);

/** True for an image name that is a frame: not ground truth (_semantic, _panoptic) or a prediction (_pred). */
export function isFrameName(name) {
  const { name: stem, ext } = parse(name);
  return (
    IMAGE_EXTENSIONS.has(ext.toLowerCase()) &&
    !stem.endsWith('_semantic') &&
    !stem.endsWith('_panoptic') &&
    !stem.includes('_pred')
  );
}

/** The frames of a folder, as full paths sorted by file name. */
export function listFrames(folder) {
  return readdirSync(folder)
    .filter((name) => isFrameName(name) && statSync(join(folder, name)).isFile())
    .sort()
    .map((name) => join(folder, name));
}

/** (width, height) from a PNG's IHDR chunk. */
export function pngSize(bytes) {
  if (bytes.length < 24 || bytes.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** True when the module with this import.meta.url is the script node was started with. */
export function isMain(metaUrl) {
  return process.argv[1] !== undefined && metaUrl === pathToFileURL(process.argv[1]).href;
}

