// A small, literal reading of the repository's Dockerfile: instructions by stage, .dockerignore
// matching, and a "build" of one target on the local file system (each stage's root is a folder;
// COPY copies, RUN runs with bash, WORKDIR and ENV are kept). No Docker engine runs where CI runs,
// so this is how CI executes the Dockerfile's own commands rather than a copy of them.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Parses the Dockerfile into stages: { name, from, instructions: [{ op, args, line }] }. */
function parseDockerfile(file = path.join(ROOT, 'Dockerfile')) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const stages = [];
  let pending = '';
  let startLine = 0;
  lines.forEach((raw, index) => {
    const line = raw.trimEnd();
    if (!pending && (line.trim() === '' || line.trim().startsWith('#'))) return;
    if (!pending) startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      return;
    }
    const text = (pending + line).trim();
    pending = '';
    const [op, ...rest] = text.split(/\s+/);
    const args = text.slice(op.length).trim();
    if (op.toUpperCase() === 'FROM') {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      stages.push({ name: match[2] ?? String(stages.length), from: match[1], instructions: [], line: startLine });
    } else {
      stages.at(-1).instructions.push({ op: op.toUpperCase(), args, line: startLine, words: rest });
    }
  });
  return stages;
}

/** COPY sources and destination; --from names the stage they come from (null: the build context). */
function copyArgs(instruction) {
  const words = instruction.args.startsWith('[') ? JSON.parse(instruction.args) : instruction.args.split(/\s+/);
  let from = null;
  const rest = [];
  for (const word of words) {
    if (word.startsWith('--from=')) from = word.slice('--from='.length);
    else if (!word.startsWith('--')) rest.push(word);
  }
  return { from, sources: rest.slice(0, -1), dest: rest.at(-1) };
}

/** ENV instruction to pairs (the KEY=VALUE form). */
function envPairs(instruction) {
  const pairs = {};
  for (const match of instruction.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
    pairs[match[1]] = match[2].replace(/^"|"$/g, '');
  }
  return pairs;
}

/** A predicate telling whether a context-relative path is excluded by .dockerignore. */
function dockerignore(file = path.join(ROOT, '.dockerignore')) {
  const patterns = fs.readFileSync(file, 'utf8').split('\n')
    .map((p) => p.trim()).filter((p) => p && !p.startsWith('#'))
    .map((p) => p.replace(/^\//, '').replace(/\/$/, ''))
    .map((p) => new RegExp('^' + p.split('**/').map((part) => part.split('*').map(escape).join('[^/]*')).join('(?:.*/)?') + '$'));
  return (relative) => {
    const parts = relative.split('/');
    return parts.some((_, i) => patterns.some((re) => re.test(parts.slice(0, i + 1).join('/'))));
  };
}

function escape(text) {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

function copyInto(source, target, filter, relative) {
  const stat = fs.statSync(source);
  if (stat.isDirectory()) {
    fs.mkdirSync(target, { recursive: true });
    for (const entry of fs.readdirSync(source)) {
      const childRelative = relative === null ? null : path.posix.join(relative, entry);
      if (childRelative !== null && filter(childRelative)) continue;
      copyInto(path.join(source, entry), path.join(target, entry), filter, childRelative);
    }
  } else {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(source, target);
  }
}

/**
 * Builds `target` the way Docker would, in `workspace`: each stage gets a root folder, a stage FROM
 * another stage continues in that stage's folder. Returns { root, workdir, env, entrypoint, user, expose }
 * of the target stage; `log` receives each RUN command and how long it took.
 */
function build(target, workspace, log = () => {}) {
  const stages = parseDockerfile();
  const ignored = dockerignore();
  const built = new Map();

  function buildStage(name) {
    if (built.has(name)) return built.get(name);
    const stage = stages.find((s) => s.name === name);
    if (!stage) throw new Error(`no stage ${name}`);
    const parent = stages.some((s) => s.name === stage.from) ? buildStage(stage.from) : null;
    const state = parent
      ? { ...parent, env: { ...parent.env } }
      : { root: fs.mkdtempSync(path.join(workspace, `${name}-`)), workdir: '/', env: {}, entrypoint: null, user: null, expose: [] };
    const inRoot = (p) => path.join(state.root, p.startsWith('/') ? p : path.posix.join(state.workdir, p));
    for (const instruction of stage.instructions) {
      switch (instruction.op) {
        case 'WORKDIR':
          state.workdir = path.posix.resolve(state.workdir, instruction.args);
          fs.mkdirSync(inRoot(state.workdir), { recursive: true });
          break;
        case 'COPY': {
          const { from, sources, dest } = copyArgs(instruction);
          const fromRoot = from ? buildStage(from).root : ROOT;
          const intoDirectory = dest.endsWith('/') || sources.length > 1 || dest === '.' || dest === './';
          for (const source of sources) {
            const absolute = path.join(fromRoot, source);
            const isDirectory = fs.statSync(absolute).isDirectory();
            const destination = intoDirectory && !isDirectory ? path.join(inRoot(dest), path.basename(source)) : inRoot(dest);
            copyInto(absolute, destination, from ? () => false : ignored, from ? null : source.replace(/\/$/, ''));
          }
          break;
        }
        case 'RUN': {
          const started = process.hrtime.bigint();
          execFileSync('bash', ['-c', instruction.args], { cwd: inRoot(state.workdir), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...state.env }, maxBuffer: 64 * 1024 * 1024 });
          log(`${name}: RUN ${instruction.args} (${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s)`);
          break;
        }
        case 'ENV':
          Object.assign(state.env, envPairs(instruction));
          break;
        case 'ENTRYPOINT':
          state.entrypoint = JSON.parse(instruction.args);
          break;
        case 'USER':
          state.user = instruction.args;
          break;
        case 'EXPOSE':
          state.expose.push(...instruction.words);
          break;
        default:
          break;
      }
    }
    built.set(name, state);
    return state;
  }

  return buildStage(target);
}

/** True when a .NET assembly carries ReadyToRun code (COR20 flag ILLIBRARY, 0x4). */
function isReadyToRun(file) {
  const image = fs.readFileSync(file);
  const pe = image.readUInt32LE(0x3c);
  const sections = image.readUInt16LE(pe + 6);
  const optionalSize = image.readUInt16LE(pe + 20);
  const optional = pe + 24;
  const directories = optional + (image.readUInt16LE(optional) === 0x20b ? 112 : 96);
  const corRva = image.readUInt32LE(directories + 14 * 8);
  for (let i = 0; i < sections; i++) {
    const section = optional + optionalSize + i * 40;
    const rva = image.readUInt32LE(section + 12);
    const size = image.readUInt32LE(section + 8);
    if (corRva >= rva && corRva < rva + size) {
      const cor = corRva - rva + image.readUInt32LE(section + 20);
      return (image.readUInt32LE(cor + 16) & 0x4) !== 0;
    }
  }
  return false;
}

module.exports = { ROOT, parseDockerfile, copyArgs, envPairs, dockerignore, build, isReadyToRun };
