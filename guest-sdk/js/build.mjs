#!/usr/bin/env node
// Builds a JavaScript Tessera plugin into a WebAssembly component
// (wasm32-wasip2, WASI 0.2) with componentize-js, called directly.
//
//   node guest-sdk/js/build.mjs [--engine qjs] ENTRY.js WIT_DIR WORLD OUT.wasm
//
// ENTRY.js is the plugin's module: it `export default`s what the SDK's
// `composition({metadata, expand})` or `policy({metadata, validate})` returns
// and imports the SDK as `tessera-sdk`. WORLD is `composition` or `policy`
// (of WIT_DIR, normally wit/). The build
//   1. bundles a generated entry (which re-exports the plugin's functions as
//      the world's exports `metadata` and `expand` / `validate`) with the
//      plugin and the SDK into one ES module, with rolldown — the one
//      componentize-js's own install brings (through jco) — `tessera-sdk`
//      resolved to this directory, `tessera:plugin/*` left as imports;
//   2. turns that module into a component with componentize-js's
//      `componentize()`.
// componentize-js comes from the tools cache scripts/build-js-guest installs
// into: the directory in $TESSERA_COMPONENTIZE_JS, else the script is run to
// find (and, the first time, install) it. Nothing is installed globally, and
// nothing is written into the repository (the bundle goes to a temporary
// directory, removed afterwards).
//
// The engine is built with the `http` and `fetch-event` features disabled:
// the host links WASI 0.2 without wasi:http. `stdio`, `random` and `clocks`
// stay (the host grants stdio captured, a seeded random and the clocks).
// (componentize-js 0.23.0's `debug.bindings` option is broken: it writes
// binary.wasm into the working directory, then fails on an undefined object
// before returning, so this script does not offer it.)
//
// `--engine qjs` (experimental) builds the same bundle with componentize-qjs
// (QuickJS; the version jco brings into the same tools cache, its non-async
// runtime) instead: its WIT imports are default-exported interface objects
// and an exported result is "return ok / throw err", which the generated
// modules below adapt to.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');

function usage(message) {
  if (message) console.error(`build.mjs: ${message}`);
  console.error('usage: node guest-sdk/js/build.mjs [--engine componentize-js|qjs] ENTRY.js WIT_DIR WORLD OUT.wasm');
  process.exit(2);
}

const args = process.argv.slice(2);
let engine = 'componentize-js';
const e = args.indexOf('--engine');
if (e >= 0) {
  engine = args[e + 1];
  args.splice(e, 2);
  if (engine !== 'componentize-js' && engine !== 'qjs') usage(`--engine must be componentize-js or qjs, got ${JSON.stringify(engine)}`);
}
if (args.length !== 4) usage();
const [entry, witDir, world, out] = args;
if (world !== 'composition' && world !== 'policy') {
  usage(`WORLD must be composition or policy, got ${JSON.stringify(world)}`);
}

function toolsDir() {
  if (process.env.TESSERA_COMPONENTIZE_JS) return process.env.TESSERA_COMPONENTIZE_JS;
  const printed = execFileSync(join(repo, 'scripts/build-js-guest'), {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = printed.split('\n').find((l) => l.startsWith('TESSERA_COMPONENTIZE_JS='));
  if (!line) throw new Error('scripts/build-js-guest printed no TESSERA_COMPONENTIZE_JS= line');
  return line.slice('TESSERA_COMPONENTIZE_JS='.length);
}

const tools = toolsDir();
const pkg = join(tools, 'node_modules/@bytecodealliance/componentize-js');
const { componentize, version } =
  engine === 'qjs'
    ? await import(pathToFileURL(join(tools, 'node_modules/componentize-qjs/index.js')).href).then((m) => ({
        componentize: (m.default ?? m).componentize,
        version: JSON.parse(readFileSync(join(tools, 'node_modules/componentize-qjs/package.json'), 'utf8')).version,
      }))
    : await import(pathToFileURL(join(pkg, 'src/componentize.js')).href);
const { rolldown } = await import(pathToFileURL(join(tools, 'node_modules/rolldown/dist/index.mjs')).href);

const exportsOf = { composition: ['metadata', 'expand'], policy: ['metadata', 'validate'] };
const start = Date.now();
const work = await mkdtemp(join(tmpdir(), 'tessera-js-build-'));
const built = await build()
  .catch((e) => {
    // The toolchain's own diagnostics, without this script's stack.
    console.error(diagnostics(e));
    return false;
  })
  .finally(() => rm(work, { recursive: true, force: true }));
if (!built) process.exit(1);
const size = (await stat(out)).size;
console.error(
  `build.mjs: ${engine === 'qjs' ? 'componentize-qjs' : 'componentize-js'} ${version}: ${entry} (world ${world}) -> ${out}, ` +
    `${(size / 1048576).toFixed(1)} MiB in ${((Date.now() - start) / 1000).toFixed(1)}s`,
);

/** Bundles and componentizes; false (after saying why) when the entry is not a plugin. */
async function build() {
  // 1. One ES module: the generated entry, the plugin, the SDK.
  const entryPath = resolve(entry);
  const generated = [
    `import plugin from ${JSON.stringify(entryPath)};`,
    `if (!plugin || plugin.world !== ${JSON.stringify(world)}) {`,
    `  throw new Error(${JSON.stringify(`${entry} must \`export default\` what tessera-sdk's ${world}({...}) returns`)});`,
    `}`,
    ...(engine === 'qjs'
      ? [
          // The SDK's tagged results as "return ok / throw err".
          `const unwrap = (r) => { if (r.tag === 'ok') return r.val; if (r.crash) throw r.crash; throw r.val; };`,
          `export const metadata = () => plugin.metadata();`,
          // The non-async runtime cannot wait for a promise.
          `export const ${exportsOf[world][1]} = (x) => { const r = plugin.${exportsOf[world][1]}(x); if (typeof r.then === 'function') throw new Error('tessera-sdk: with componentize-qjs, ${exportsOf[world][1]} must not be async (it returned a promise)'); return unwrap(r); };`,
        ]
      : exportsOf[world].map((name) => `export const ${name} = plugin.${name};`)),
  ].join('\n');
  const host =
    engine === 'qjs'
      ? [
          `import host from 'tessera:plugin/host@0.1.0';`,
          `export const log = (level, message) => host.log(level, message);`,
          `export const getResource = (target) => host.getResource(target);`,
          `export const listResources = (a, k, n, s) => host.listResources(a, k, n, s);`,
        ].join('\n')
      : `export { log, getResource, listResources } from 'tessera:plugin/host@0.1.0';`;
  const credentials =
    world !== 'composition'
      ? `export function deriveSecret() { throw new Error('derive-secret is offered to composition plugins only'); }`
      : engine === 'qjs'
        ? `import c from 'tessera:plugin/credentials@0.1.0';\nexport const deriveSecret = (p, l) => c.deriveSecret(p, l);`
        : `export { deriveSecret } from 'tessera:plugin/credentials@0.1.0';`;
  const virtual = { '\0tessera-entry': generated, 'tessera-sdk:host': host, 'tessera-sdk:credentials': credentials };
  // Named after the entry: crash reports show `<name>.js:LINE` (lines of the bundle).
  const bundled = join(work, `${basename(entryPath).replace(/\.m?js$/, '')}.js`);
  try {
    const bundle = await rolldown({
      input: '\0tessera-entry',
      platform: 'neutral',
      external: [/^tessera:plugin\//, /^wasi:/],
      plugins: [
        {
          name: 'tessera',
          resolveId(id) {
            if (id in virtual) return id;
            if (id === 'tessera-sdk') return join(here, 'index.js');
            return null;
          },
          load(id) {
            return id in virtual ? virtual[id] : null;
          },
        },
      ],
    });
    // The source map turns the bundle's lines back into the sources' lines
    // when initialising the component fails (a top-level throw).
    await bundle.write({ file: bundled, format: 'es', sourcemap: true });
    await bundle.close();
  } catch (e) {
    if (/MISSING_EXPORT/.test(e.message) && /"default"/.test(e.message)) {
      console.error(`build.mjs: ${entry} has no default export: end it with \`export default ${world}({ ... })\` (tessera-sdk)`);
      return false;
    }
    // rolldown's report names each file relative to the working directory,
    // with the line, the column and a code frame.
    console.error(e.message.replace(/^Build failed with \d+ errors?:\s*/, ''));
    return false;
  }

  // 2. The component.
  const { component } =
    engine === 'qjs'
      ? await componentize({
          witPath: resolve(witDir),
          jsSource: readFileSync(bundled, 'utf8'),
          jsPath: bundled,
          moduleRoot: work,
          world,
          sync: true,
        })
      : await componentize({
          sourcePath: bundled,
          witPath: resolve(witDir),
          worldName: world,
          disableFeatures: ['http', 'fetch-event'],
        });
  await mkdir(dirname(resolve(out)), { recursive: true });
  await writeFile(out, component);
  return true;
}

/**
 * What a failed componentize says, with `<bundle>.js:LINE:COL` positions
 * mapped back to the plugin's own files (through the bundle's source map).
 * @param {unknown} e
 */
function diagnostics(e) {
  let text = e instanceof Error ? e.message : String(e);
  try {
    const bundled = `${basename(resolve(entry)).replace(/\.m?js$/, '')}.js`;
    const map = JSON.parse(readFileSync(join(work, `${bundled}.map`), 'utf8'));
    const lines = decodeMappings(map.mappings);
    const escaped = bundled.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    text = text.replace(new RegExp(`(?<![\\w/.-])${escaped}:(\\d+):(\\d+)`, 'g'), (whole, line, column) => {
      const found = original(lines, Number(line) - 1, Number(column) - 1);
      if (!found) return whole;
      const source = resolve(work, map.sourceRoot ?? '', map.sources[found.source]);
      return `${relativeToCwd(source)}:${found.line + 1}:${found.column + 1}`;
    });
  } catch {
    // No map (the bundle step failed): the message as it is.
  }
  return text.trimEnd();
}

/** A path relative to the working directory when it lies below it. @param {string} path */
function relativeToCwd(path) {
  const cwd = process.cwd() + '/';
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

/**
 * Source map v3 `mappings`, decoded: per generated line, its segments as
 * [generated column, source index, source line, source column] (absolute).
 * @param {string} mappings
 */
function decodeMappings(mappings) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let source = 0, sourceLine = 0, sourceColumn = 0;
  return mappings.split(';').map((group) => {
    let column = 0;
    const segments = [];
    for (const segment of group.split(',')) {
      if (!segment) continue;
      const fields = [];
      let value = 0, shift = 0;
      for (const char of segment) {
        const digit = alphabet.indexOf(char);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += fields[0];
      if (fields.length >= 4) {
        source += fields[1];
        sourceLine += fields[2];
        sourceColumn += fields[3];
        segments.push([column, source, sourceLine, sourceColumn]);
      }
    }
    return segments;
  });
}

/** The source position of a generated one (0-based), or undefined. */
function original(lines, line, column) {
  const segments = lines[line] ?? [];
  let best;
  for (const s of segments) if (s[0] <= column) best = s;
  best ??= segments[0];
  return best && { source: best[1], line: best[2], column: best[3] };
}
