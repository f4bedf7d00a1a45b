// Shared helpers for the MaskFormer Serve Node examples: the generated client, connecting, and
// choosing the frames of a folder.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
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

/** host:port from host:port, http://host:port or https://host:port, the forms MASKFORMER_ADDRESS takes across all clients. */
export function hostPort(address) {
  return address.replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

/** The variables every client reads for TLS: CA certificates, client certificate, its key (PEM files). */
export const TLS_VARIABLES = ['MASKFORMER_CA_CERT', 'MASKFORMER_CLIENT_CERT', 'MASKFORMER_CLIENT_KEY'];

/**
 * The channel credentials for address: cleartext for host:port or http://, TLS for https://, checked
 * against MASKFORMER_CA_CERT's CA certificates instead of the system's when set, presenting
 * MASKFORMER_CLIENT_CERT with MASKFORMER_CLIENT_KEY (mutual TLS) when set. Throws, naming the problem,
 * for settings that do not fit together or a file that cannot be read.
 */
export function credentialsFor(address) {
  const [ca, certificate, key] = TLS_VARIABLES.map((name) => process.env[name] || null);
  if ((certificate === null) !== (key === null)) {
    throw new Error('MASKFORMER_CLIENT_CERT and MASKFORMER_CLIENT_KEY go together; only one is set');
  }
  if (!address.startsWith('https://')) {
    if (ca !== null || certificate !== null) {
      throw new Error(`a CA or client certificate needs an https:// server address; ${address} is cleartext`);
    }
    return grpc.credentials.createInsecure();
  }
  const read = (path) => {
    if (path === null) return null;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`cannot read ${path}: ${e.message}`);
    }
  };
  const roots = read(ca);
  if (roots !== null && !roots.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`MASKFORMER_CA_CERT ${ca} holds no PEM CA certificate`);
  }
  try {
    return grpc.credentials.createSsl(roots, read(key), read(certificate));
  } catch (e) {
    throw new Error(`MASKFORMER_CLIENT_KEY ${key} is not the PEM private key of MASKFORMER_CLIENT_CERT ${certificate} (${e.message})`);
  }
}

/** Whether something accepts TCP connections at address (a TLS client that never got ready then failed in its handshake). */
function listening(address) {
  const at = hostPort(address);
  const colon = at.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: at.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(at.slice(colon + 1)), timeout: 2000 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
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
 * Opens a client (credentialsFor says over what) and waits until it is connected; rejects when it cannot
 * within timeoutMs, or when the TLS settings cannot be used. With MASKFORMER_TOKEN set, every call carries "authorization: Bearer <token>" (a server with
 * MaskFormer:Security:TokensFile answers UNAUTHENTICATED without it).
 */
export function connect(address, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const token = process.env.MASKFORMER_TOKEN;
    const credentials = credentialsFor(address);
    const client = new SegmentationService(hostPort(address), credentials, {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // A stream window larger than an answer: with the default 64 KiB, Kestrel loses an answer now and
      // then (dotnet/aspnetcore#53736; the main README, Troubleshooting).
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
      // A server that went away is tried again at least every 4 s (grpc-js waits up to 120 s by default),
      // so a stream reconnecting with its own backoff (stream.js) finds a replacement soon after it is up.
      'grpc.max_reconnect_backoff_ms': 4000,
      interceptors: token ? [bearerToken(token)] : [],
    });
    client.waitForReady(Date.now() + timeoutMs, async (err) => {
      if (!err) return resolve(client);
      client.close();
      const hint =
        address.startsWith('https://') && (await listening(address))
          ? " (it accepts connections, so the TLS handshake failed: is the server's certificate issued by a CA in " +
            "MASKFORMER_CA_CERT, or the system's, and does the server want a client certificate, MASKFORMER_CLIENT_CERT " +
            'and MASKFORMER_CLIENT_KEY, from a CA it trusts?)'
          : '';
      reject(new Error(`cannot reach the MaskFormer server at ${address} within ${timeoutMs} ms: ${err.message}${hint}`));
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

