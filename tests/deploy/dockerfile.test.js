// The Dockerfile without a Docker engine: lint, pinned bases, COPY sources, and the cpu target built
// by running its own RUN commands on a copy of the build context, then started until SERVING.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync, spawn } = require('node:child_process');
const { ROOT, parseDockerfile, copyArgs, dockerignore, build, isReadyToRun } = require('./lib/dockerfile');

const stages = parseDockerfile();
const stageNames = new Set(stages.map((s) => s.name));
const appsettings = JSON.parse(fs.readFileSync(path.join(ROOT, 'src/MaskFormer.Server/appsettings.json'), 'utf8'));
const grpcPort = new URL(appsettings.Kestrel.Endpoints.Grpc.Url).port;

test('dockerfilelint finds no issue', () => {
  const bin = path.join(__dirname, 'node_modules', '.bin', 'dockerfilelint');
  const output = execFileSync(bin, ['-c', __dirname, '-j', path.join(ROOT, 'Dockerfile')], { encoding: 'utf8' });
  const report = JSON.parse(output);
  assert.deepEqual(report.files.flatMap((f) => f.issues), []);
});

test('targets gpu and cpu exist; every external base image is pinned to an exact version', () => {
  assert.ok(stageNames.has('gpu') && stageNames.has('cpu'));
  for (const stage of stages.filter((s) => !stageNames.has(s.from))) {
    assert.match(stage.from, /^[\w./-]+:\d+\.\d+\.\d+(-[\w.-]+)?$/, `line ${stage.line}: ${stage.from} is not pinned`);
  }
  assert.match(stages.find((s) => s.name === 'gpu').from, /^nvidia\/cuda:13\.\d+\.\d+-cudnn-runtime-/);
  const sdk = stages.find((s) => /dotnet\/sdk:/.test(s.from)).from;
  const globalJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'global.json'), 'utf8'));
  assert.equal(sdk.split(':')[1].split('.')[0], globalJson.sdk.version.split('.')[0], 'the SDK image and global.json name the same major version');
});

test('every path the Dockerfile copies from the context exists and is not excluded by .dockerignore', () => {
  const ignored = dockerignore();
  const copies = stages.flatMap((s) => s.instructions).filter((i) => i.op === 'COPY').map(copyArgs).filter((c) => !c.from);
  assert.ok(copies.length >= 5);
  for (const source of copies.flatMap((c) => c.sources)) {
    assert.ok(fs.existsSync(path.join(ROOT, source)), `COPY ${source}: no such path`);
    assert.equal(ignored(source.replace(/\/$/, '')), false, `COPY ${source} is excluded by .dockerignore`);
  }
  for (const copy of stages.flatMap((s) => s.instructions).filter((i) => i.op === 'COPY').map(copyArgs).filter((c) => c.from)) {
    assert.ok(stageNames.has(copy.from) || /:/.test(copy.from), `COPY --from=${copy.from}: no such stage`);
  }
  assert.equal(ignored('src/MaskFormer.Server/bin/Release/x.dll'), true, '.dockerignore keeps build outputs out of the context');
  assert.equal(ignored('src/MaskFormer.Engine/obj/project.assets.json'), true);
});

test('both images: linux-x64 ReadyToRun publishes that differ only in the ONNX Runtime flavour; non-root; embedded model', () => {
  const runs = (name) => stages.find((s) => s.name === name).instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
  const gpu = runs('publish-gpu');
  const cpu = runs('publish-cpu');
  assert.deepEqual(gpu.map((r) => r.replaceAll('OnnxRuntimeFlavor=gpu', 'OnnxRuntimeFlavor=cpu')), cpu);
  const publish = cpu.find((r) => r.startsWith('dotnet publish'));
  for (const flag of ['-r linux-x64', '-p:PublishReadyToRun=true', '--self-contained false', '-c Release', '-p:OnnxRuntimeFlavor=cpu']) {
    assert.ok(publish.includes(flag), `publish lacks ${flag}`);
  }
  for (const target of ['gpu', 'cpu']) {
    const instructions = stages.find((s) => s.name === target).instructions;
    const user = instructions.filter((i) => i.op === 'USER').at(-1)?.args;
    assert.match(user ?? '', /^[1-9]\d*$/, `${target}: USER must be a numeric non-root uid (Kubernetes runAsNonRoot checks it)`);
    const env = Object.assign({}, ...instructions.filter((i) => i.op === 'ENV').map((i) => Object.fromEntries(Array.from(i.args.matchAll(/(\w+)=(\S+)/g), (m) => [m[1], m[2]]))));
    assert.equal(new URL(env.Kestrel__Endpoints__Grpc__Url).port, grpcPort);
    assert.equal(env.MaskFormer__Models__Path, '/app/models');
    assert.ok(instructions.some((i) => i.op === 'EXPOSE' && i.args === grpcPort));
    assert.ok(instructions.some((i) => i.op === 'COPY' && i.args.includes('models/tiny-shapes/model.onnx')));
  }
});

test('the cpu target, built by its own RUN commands, has no CUDA provider, is ReadyToRun and serves the embedded model', { timeout: 900_000 }, async (t) => {
  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'maskformer-image-'));
  t.after(() => fs.rmSync(workspace, { recursive: true, force: true }));
  const image = build('cpu', workspace, (line) => t.diagnostic(line));
  const app = path.join(image.root, image.workdir);
  const files = fs.readdirSync(app);

  assert.ok(files.includes('MaskFormer.Server.dll'));
  assert.ok(files.includes('libonnxruntime.so'), 'the CPU ONNX Runtime is there');
  assert.deepEqual(files.filter((f) => /providers_(cuda|tensorrt)|\.exe$|\.dylib$|onnxruntime\.dll$/.test(f)), [], 'no CUDA/TensorRT provider, no Windows or macOS binaries');
  assert.equal(fs.existsSync(path.join(app, 'runtimes')), false, 'a linux-x64 publish carries no runtimes/ folder of other platforms');
  for (const assembly of ['MaskFormer.Server.dll', 'MaskFormer.Engine.dll', 'MaskFormer.Contracts.dll']) {
    assert.ok(isReadyToRun(path.join(app, assembly)), `${assembly} is not ReadyToRun`);
  }
  const megabytes = files.reduce((sum, f) => sum + fs.statSync(path.join(app, f)).size, 0) / 1048576;
  t.diagnostic(`cpu image /app: ${megabytes.toFixed(0)} MB`);

  // Run the ENTRYPOINT with the stage's environment; paths under / live in the stage's root here,
  // and the listen address moves to a free loopback port.
  const env = { ...process.env };
  for (const [key, value] of Object.entries(image.env)) env[key] = value.startsWith('/') ? path.join(image.root, value) : value;
  env.Kestrel__Endpoints__Grpc__Url = 'http://127.0.0.1:0';
  const [command, ...args] = image.entrypoint;
  const server = spawn(command, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const address = await new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const match = /Now listening on: (http:\/\/\S+)/.exec(output);
      if (match) resolve(match[1]);
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.on('exit', (code) => reject(new Error(`the published server exited with ${code}:\n${output}`)));
  });
  try {
    const cli = path.join(ROOT, 'src/MaskFormer.Cli/bin/Release/net10.0/maskformer.dll');
    assert.ok(fs.existsSync(cli), 'build the solution first (the CLI checks health)');
    execFileSync('dotnet', [cli, 'health', '--server', address, '--wait', '120'], { stdio: 'pipe' });
    const models = execFileSync('dotnet', [cli, 'models', '--server', address], { encoding: 'utf8' });
    assert.match(models, /tiny-shapes/);
  } finally {
    const exited = new Promise((resolve) => server.on('exit', resolve));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, `the server did not exit 0 on SIGTERM:\n${output}`);
  }
});
