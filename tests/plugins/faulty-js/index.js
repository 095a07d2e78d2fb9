// A composition plugin for tests that misbehaves on request, in JavaScript:
// the JS rows of the hostile-case table in SECURITY.md (the Rust one is
// tests/plugins/faulty). `settings.mode` picks the behaviour:
// - `ok`: one ConfigMap `ok`;
// - `loop`: an infinite loop (the deadline ends it);
// - `oom`: keeps 1 MiB buffers until memory runs out (the memory cap ends it);
// - `exception`: throws an uncaught TypeError (a trap whose message carries
//   the SDK's crash report);
// - `big-output`: one ConfigMap with 8 MiB of data, over the 4 MiB answer cap;
// - `read-file` / `socket`: tries to reach files / the network with what the
//   engine offers and returns one ConfigMap `attempts` whose `data` maps each
//   attempt to `"denied: <error>"` or `"allowed: <what it got>"`. The engine
//   (StarlingMonkey, built without wasi:http) has no file or socket API at
//   all: these record the ReferenceErrors of the APIs other engines offer;
// - `fetch` / `import`: calls `fetch()` / a dynamic `import()`, which the
//   engine has but which abort it (a trap with nothing on stderr) instead of
//   rejecting, so they cannot be recorded as attempts.

import { Expansion, Metadata, composition } from 'tessera-sdk';

const MODES = ['ok', 'loop', 'oom', 'exception', 'big-output', 'read-file', 'socket', 'fetch', 'import'];

function metadata() {
  return new Metadata('faulty-js', '0.1.0')
    .description('A composition plugin for tests, in JavaScript, that misbehaves on request (settings.mode).')
    .handles('test.tessera.dev/v1', 'Faulty')
    .settingsSchema({
      type: 'object',
      properties: { mode: { type: 'string', enum: MODES } },
      required: ['mode'],
    });
}

const describe = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : `${typeof e}: ${String(e)}`);

/** `allowed: <what it got>`, or `denied: <the error>`; waits for a promise. */
async function attempt(what) {
  try {
    return `allowed: ${await what()}`;
  } catch (e) {
    return `denied: ${describe(e)}`;
  }
}

// A specifier the bundler cannot see, so that the engine itself is asked.
const load = (specifier) => import(/* @vite-ignore */ String(specifier));

// `require` as the engine sees it, at run time (the bundler would take a
// plain `require('fs')` for an import of its own).
const runtimeRequire = (id) => new Function('id', 'return require(id)')(id);

async function fileAttempts() {
  return {
    'require fs, read /etc/passwd': await attempt(() => runtimeRequire('fs').readFileSync('/etc/passwd', 'utf8').length + ' chars'),
    'Deno.readTextFile /etc/passwd': await attempt(async () => (await Deno.readTextFile('/etc/passwd')).length + ' chars'),
    'Bun.file ./package.json': await attempt(async () => (await Bun.file('./package.json').text()).length + ' chars'),
    'process.env': await attempt(() => Object.keys(process.env).join(',')),
    'process.cwd': await attempt(() => process.cwd()),
  };
}

async function socketAttempts() {
  return {
    'WebSocket ws://127.0.0.1:80': await attempt(() => `opened ${new WebSocket('ws://127.0.0.1:80/').url}`),
    'XMLHttpRequest http://127.0.0.1:80': await attempt(() => {
      const x = new XMLHttpRequest();
      x.open('GET', 'http://127.0.0.1:80/', false);
      x.send();
      return `HTTP ${x.status}`;
    }),
    'navigator.sendBeacon': await attempt(() => `sent ${navigator.sendBeacon('http://127.0.0.1:80/', 'x')}`),
    'require net, connect 127.0.0.1:80': await attempt(() => `connected ${runtimeRequire('net').connect(80, '127.0.0.1')}`),
    'Deno.connect 127.0.0.1:80': await attempt(async () => `connected ${await Deno.connect({ hostname: '127.0.0.1', port: 80 })}`),
  };
}

function attemptsChild(request, data) {
  return new Expansion().child(request.child('v1', 'ConfigMap', 'attempts').with('data', data));
}

async function expand(request) {
  const mode = request.settings().oneOf('mode', MODES);
  switch (mode) {
    case 'loop': {
      let n = 0;
      for (;;) n = (n + 1) | 0;
    }
    case 'oom': {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
    }
    case 'exception':
      throw new TypeError('faulty plugin threw on purpose');
    case 'big-output':
      return new Expansion().child(request.child('v1', 'ConfigMap', 'big').with('data', { blob: 'x'.repeat(8 << 20) }));
    case 'read-file':
      return attemptsChild(request, await fileAttempts());
    case 'socket':
      return attemptsChild(request, await socketAttempts());
    case 'fetch':
      return attemptsChild(request, { fetch: await attempt(async () => `HTTP ${(await fetch('http://127.0.0.1:80/')).status}`) });
    case 'import':
      return attemptsChild(request, { import: await attempt(async () => Object.keys(await load('node:fs')).length + ' exports') });
    default:
      return new Expansion().child(request.child('v1', 'ConfigMap', 'ok').with('data', { key: 'value' }));
  }
}

export default composition({ metadata, expand });
