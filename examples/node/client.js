// Shared helpers for the MaskFormer Serve Node examples: the generated client, connecting, and
// choosing the frames of a folder.
import { X509Certificate } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
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

// How every refusal of an address begins, in every client here.
const ADDRESS_RULE = '--server (or MASKFORMER_ADDRESS) takes host:port or http(s)://host[:port]; ';

/**
 * What every client here says of a host without a port or scheme, in the same words: grpc-js would take port 443
 * (even for cleartext), an http:// URL port 80, neither of them the service's.
 */
export function noPortMessage(address) {
  return (
    `${ADDRESS_RULE}${address} has no port ` +
    '(the service listens on 5081 unless told otherwise)'
  );
}

/**
 * What every client here says of a port that is not one (empty, not a number, 0, above 65535), in the same words,
 * before anything is tried: left to grpc-js it was a late connect error, or another message per client.
 */
export function badPortMessage(address, port) {
  return (
    `${ADDRESS_RULE}${address} has port "${port}", ` +
    'which is not a number from 1 to 65535'
  );
}

/**
 * What every client here says of a scheme other than http:// and https:// ("grpc://", "unix://"), in the same
 * words: each client used to say something else of it, some of them about its port.
 */
export function schemeMessage(address, scheme) {
  return (
    `${ADDRESS_RULE}${address} has scheme "${scheme}", ` +
    'which is not http or https'
  );
}

/**
 * What every client here says of an address with a path ("host:5081/api"), in the same words: a gRPC call's path
 * is its method's (/maskformer.v1.SegmentationService/Segment), so the server's address has none.
 */
export function pathMessage(address, path) {
  return (
    `${ADDRESS_RULE}${address} has path "${path}", ` +
    'which a gRPC address cannot have'
  );
}

/** What every client here says of an address without a host (":5081", "http://:5081"), in the same words. */
export function noHostMessage(address) {
  return `${ADDRESS_RULE}${address} has no host`;
}

/**
 * What every client here says of a URL whose host has a ':' outside brackets ("http://::1:5081"), in the same words:
 * left to each client's parsing it was another message per client, or a connection to another address.
 */
export function unbracketedHostMessage(address, host) {
  return (
    `${ADDRESS_RULE}${address} has host "${host}": ` +
    'an IPv6 host goes in brackets ([::1]:5081)'
  );
}

// The host and the text after its colon (null without one): an IPv6 address takes its port after brackets
// ("[::1]:5081"); without them ("::1") it is a host alone.
function splitHostPort(hostAndPort) {
  if (hostAndPort.startsWith('[')) {
    const end = hostAndPort.indexOf(']:');
    return end < 0 ? [hostAndPort, null] : [hostAndPort.slice(0, end + 1), hostAndPort.slice(end + 2)];
  }
  const parts = hostAndPort.split(':');
  return parts.length === 2 ? parts : [hostAndPort, null];
}

/**
 * host:port from host:port, http://host[:port] or https://host[:port], the forms MASKFORMER_ADDRESS takes across
 * all clients; a URL without a port gets its scheme's (80, 443), as a URL does; slashes at the end are no path.
 * Throws, in reading order, for a scheme other than http and https, a path, a host without a port or scheme
 * ("127.0.0.1", "[::1]"), no host, a URL's host with a ':' outside brackets ("http://::1"), and a port that is not
 * a number from 1 to 65535.
 */
export function hostPort(address) {
  // "://" after another "/" is in a path, not after a scheme.
  const schemeEnd = address.indexOf('://');
  const scheme = schemeEnd >= 0 && address.indexOf('/') === schemeEnd + 1 ? address.slice(0, schemeEnd) : null;
  if (scheme !== null && scheme !== 'http' && scheme !== 'https') throw new Error(schemeMessage(address, scheme));
  const rest = (scheme === null ? address : address.slice(schemeEnd + 3)).replace(/\/+$/, '');
  if (rest.includes('/')) throw new Error(pathMessage(address, rest.slice(rest.indexOf('/'))));
  const [host, port] = splitHostPort(rest);
  if (port === null && scheme === null) throw new Error(noPortMessage(address));
  if (host === '' || host === '[]') throw new Error(noHostMessage(address));
  if (port === null && host.includes(':') && !(host.startsWith('[') && host.endsWith(']'))) {
    throw new Error(unbracketedHostMessage(address, host));
  }
  if (port === null) return `${rest}:${scheme === 'https' ? 443 : 80}`;
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) throw new Error(badPortMessage(address, port));
  return rest;
}

/** What the usage of segment.js and stream.js says of --server ADDRESS. */
export const ADDRESS_USAGE =
  'ADDRESS: host:port or http(s)://host[:port], https:// for TLS (default $MASKFORMER_ADDRESS, else 127.0.0.1:5081);\n' +
  "a URL without a port takes its scheme's (80, 443), an IPv6 host goes in brackets ([::1]:5081)";

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

/** What probe() found at an address. */
const PROBE = Object.freeze({
  NOTHING_LISTENING: 'nothing listening',
  TLS: 'speaks TLS',
  CLEARTEXT: 'speaks cleartext',
  SILENT: 'listening, said nothing',
});

/**
 * What listens at address, from the first two bytes it answers a TLS ClientHello with, as the C# CLI's TlsProbe:
 * TLS for a TLS record (handshake 0x16 or alert 0x15, then major version 3), CLEARTEXT for anything else (a
 * cleartext HTTP/2 server's frames), SILENT for a connection closed or silent before two bytes came,
 * NOTHING_LISTENING when none could be opened; timeoutMs at most in all. Made only after a failed connection,
 * since grpc-js's reason does not say: a TLS server ends a cleartext connection without a word, and a cleartext
 * answer to a ClientHello is a "wrong version number".
 */
function probe(address, timeoutMs) {
  const at = hostPort(address);
  const colon = at.lastIndexOf(':');
  return new Promise((resolve) => {
    let answer = Buffer.alloc(0);
    let connected = false;
    const socket = tcpConnect({ host: at.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(at.slice(colon + 1)) });
    // The TLS client writes its ClientHello through this stream to the socket; the answer is only looked at,
    // never given back to it, so its handshake never finishes.
    const hello = new Duplex({ read() {}, write: (chunk, _, callback) => socket.write(chunk, callback) });
    const client = tlsConnect({ socket: hello, rejectUnauthorized: false });
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      client.destroy();
      if (!connected) resolve(PROBE.NOTHING_LISTENING);
      else if (answer.length < 2) resolve(PROBE.SILENT);
      else resolve((answer[0] === 0x16 || answer[0] === 0x15) && answer[1] === 3 ? PROBE.TLS : PROBE.CLEARTEXT);
    };
    const timer = setTimeout(done, timeoutMs);
    socket.once('connect', () => {
      connected = true;
    });
    socket.on('data', (data) => {
      answer = Buffer.concat([answer, data]);
      if (answer.length >= 2) done();
    });
    socket.once('error', done);
    socket.once('close', done);
    client.on('error', () => {});
  });
}

/**
 * How the PEM client certificate at path certificate is out of date, as a line for the user, or null when it is
 * not (or cannot be read). Read when a connection failed, not before: a server that asks for no client
 * certificate answers a client holding an expired one.
 */
function outOfDate(certificate) {
  if (!certificate) return null;
  let x509;
  try {
    x509 = new X509Certificate(readFileSync(certificate));
  } catch {
    return null;
  }
  const utc = (text) => new Date(text).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  const now = Date.now();
  if (now > Date.parse(x509.validTo)) return `MASKFORMER_CLIENT_CERT ${certificate} expired at ${utc(x509.validTo)}; renew it`;
  if (now < Date.parse(x509.validFrom)) {
    return `MASKFORMER_CLIENT_CERT ${certificate} is not valid before ${utc(x509.validFrom)}; is this machine's clock right?`;
  }
  return null;
}

/**
 * What to check after a failed connection to address, as the C# CLI says it, as hint: " (...)" to end the error
 * with ('' when nothing answers there), and permanent: whether waiting cannot change it. The other scheme when
 * the server answers a TLS ClientHello (probe, timeoutMs at most) other than the address says; else, over TLS,
 * an out-of-date client certificate, or what to check.
 *
 * Waiting cannot help once a server answered the ClientHello, unless both it and the address are cleartext: the
 * schemes differ, or a TLS server refused the handshake (its certificate not trusted, or ours), which stays so
 * however often it is tried. Nothing listening, or a connection that said nothing (a proxy in front of a server
 * not up yet), may yet become a server.
 */
async function connectHint(address, timeoutMs) {
  const tls = address.startsWith('https://');
  const found = await probe(address, timeoutMs);
  const permanent = found === PROBE.TLS || (tls && found === PROBE.CLEARTEXT);
  const hint = (text) => ({ hint: text, permanent });
  if (!tls) {
    return hint(
      found === PROBE.TLS
        ? ` (the server there seems to speak TLS, it answered a TLS handshake: use https://${hostPort(address)}, with MASKFORMER_CA_CERT for a private CA)`
        : '',
    );
  }
  if (found === PROBE.CLEARTEXT) {
    return hint(` (the server there seems to speak cleartext, it answered a TLS handshake with something else: use http://${hostPort(address)})`);
  }
  if (found === PROBE.NOTHING_LISTENING) return hint('');
  const outdated = outOfDate(process.env.MASKFORMER_CLIENT_CERT);
  if (outdated) return hint(` (the TLS handshake failed: a server that asks for a client certificate refuses one out of date: ${outdated})`);
  return hint(
    " (it accepts connections, so the TLS handshake failed: is the server's certificate issued by a CA in " +
      "MASKFORMER_CA_CERT, or the system's, and does the server want a client certificate, MASKFORMER_CLIENT_CERT " +
      'and MASKFORMER_CLIENT_KEY, from a CA it trusts?)',
  );
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

// How long connect() waits at most: for an attempt that neither succeeds nor fails (packets dropped), or, with
// waitForServer, for a server that is not listening yet.
export const CONNECT_TIMEOUT_S = 15;

/** The parseArgs options segment.js and stream.js take for connecting: --connect-timeout, --wait-for-server. */
export const CONNECTION_OPTIONS = {
  'connect-timeout': { type: 'string', default: String(CONNECT_TIMEOUT_S) },
  'wait-for-server': { type: 'boolean', default: false },
};

// The wait after an UNAVAILABLE without a RetryInfo delay (a stream's, segment.js's unary call), and between
// attempts to connect with waitForServer: this, doubling each time, at most the longest.
export const FIRST_BACKOFF_MS = 250;
export const LONGEST_BACKOFF_MS = 4000;

/** The wait after `failures` failures in a row (from 0), in ms. */
export const backoffMs = (failures) => Math.min(LONGEST_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** Math.min(failures, 8));

/**
 * Opens a client (credentialsFor says over what) and waits until it is connected; rejects, naming the
 * address, when it cannot, or when the address (hostPort) or the TLS settings cannot be used. The first attempt to connect that fails
 * (nothing listens at the address; the TLS handshake failed) rejects at once, with grpc-js's reason and what to
 * check (connectHint). With waitForServer, a failed attempt is made again, 0.25 s doubling to 4 s later, until
 * timeoutMs has passed: for a server that is still starting, at the cost of waiting that long for one that is
 * not coming. Except when two attempts in a row reached a server and failed for a reason waiting cannot change
 * (connectHint: the other scheme, a certificate refused): that rejects at once. timeoutMs also bounds an
 * attempt that neither succeeds nor fails. With MASKFORMER_TOKEN set, every call carries "authorization: Bearer
 * <token>" (a server with MaskFormer:Security:TokensFile answers UNAUTHENTICATED without it).
 */
export async function connect(address, { timeoutMs = CONNECT_TIMEOUT_S * 1000, waitForServer = false } = {}) {
  const token = process.env.MASKFORMER_TOKEN;
  const target = hostPort(address);
  const credentials = credentialsFor(address);
  const options = {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    // A stream window larger than an answer: with the default 64 KiB, Kestrel loses an answer now and
    // then (dotnet/aspnetcore#53736; the main README, Troubleshooting).
    'grpc-node.flow_control_window': 16 * 1024 * 1024,
    // A server that went away is tried again at least every 4 s (grpc-js waits up to 120 s by default),
    // so a stream reconnecting with its own backoff (stream.js) finds a replacement soon after it is up.
    'grpc.max_reconnect_backoff_ms': 4000,
    interceptors: token ? [bearerToken(token)] : [],
  };
  const deadline = Date.now() + timeoutMs;
  let permanentBefore = false;
  for (let failures = 0; ; failures++) {
    // A new client for each attempt: grpc-js's channel stays in TRANSIENT_FAILURE across its own attempts, so a
    // later attempt's failure, the one to diagnose when the server has come up since, could not be seen.
    const client = new SegmentationService(target, credentials, options);
    const state = await firstAttempt(client, deadline);
    if (state === grpc.connectivityState.READY) return client;
    const reason = state === grpc.connectivityState.TRANSIENT_FAILURE ? await connectError(client) : null;
    client.close();
    const leftMs = deadline - Date.now();
    if (reason === null || leftMs <= 0) {
      throw new Error(`cannot reach the MaskFormer server at ${address} within ${timeoutMs / 1000} s`); // the deadline came first
    }
    const { hint, permanent } = await connectHint(address, Math.min(2000, leftMs));
    // Twice in a row: a server that began listening between the attempt and the probe would be taken for one
    // that refused the handshake; the next attempt reaches it.
    if (!waitForServer || (permanent && permanentBefore)) {
      throw new Error(`cannot reach the MaskFormer server at ${address}: ${reason}${hint}`);
    }
    permanentBefore = permanent;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(backoffMs(failures), deadline - Date.now()))));
  }
}

/** How the client's first attempt to connect ended: READY or TRANSIENT_FAILURE, or null when deadline came first. */
async function firstAttempt(client, deadline) {
  const channel = client.getChannel();
  const { READY, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;
  for (let state = channel.getConnectivityState(true); state !== SHUTDOWN; state = channel.getConnectivityState(true)) {
    if (state === READY || state === TRANSIENT_FAILURE) return state;
    const changed = await new Promise((resolve) => channel.watchConnectivityState(state, deadline, (err) => resolve(!err)));
    if (!changed) break;
  }
  return null;
}

/**
 * grpc-js's reason for the channel's failed attempt to connect. The channel does not tell it, but a call
 * made (without waitForReady) while the channel is in TRANSIENT_FAILURE fails at once with it in its details.
 */
function connectError(client) {
  return new Promise((resolve) => {
    client.makeUnaryRequest('/grpc.health.v1.Health/Check', (b) => b, (b) => b, Buffer.alloc(0), { deadline: Date.now() + 2000 }, (err) =>
      resolve(
        err?.code === grpc.status.UNAVAILABLE && err.details
          ? err.details.replace(/\s*Resolution note:\s*$/, '').replace(/\s+/g, ' ').trim()
          : 'the connection failed',
      ),
    );
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

/**
 * The frames of a folder, as full paths sorted by file name. A frame's name whose file cannot be found (a
 * broken symbolic link) throws, naming it, so that the stream is refused before a frame is sent rather than
 * going without it; one that names a folder is not a frame.
 */
export function listFrames(folder) {
  const frames = [];
  for (const name of readdirSync(folder)) {
    if (!isFrameName(name)) continue;
    const path = join(folder, name);
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) {
      const link = lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink();
      throw new Error(`${path} is ${link ? `a broken symbolic link (to ${readlinkSync(path)})` : 'gone'}`);
    }
    if (stats.isFile()) frames.push(path);
  }
  return frames.sort();
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

