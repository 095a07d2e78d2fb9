// The registration functions: they turn an author's functions into the
// exports the WIT world wants. componentize-js binds the entry module's named
// exports `metadata` and `expand` / `validate`; a plugin's entry module
// `export default`s what `composition()` / `policy()` return, and the entry
// guest-sdk/js/build.mjs generates re-exports its functions under those names.
//
// How componentize-js 0.23.0 maps an exported `result<T, E>` (read in its
// generated bindings and measured against the host):
// - the function's return value (or what its promise resolves to) is `ok`,
//   unless it is an object with `tag: 'ok' | 'err'`, which is taken as the
//   result itself (`{tag: 'err', val: E}` is `err`);
// - a thrown value with an own `payload` property is `err(payload)`;
// - any other thrown value is `err(value)`. The bindings mean to re-throw
//   `Error`s (`e instanceof Error`), but they run in another realm, so the
//   check fails for the plugin's errors: an uncaught TypeError becomes
//   `err({message, field: undefined})`, a *refusal*, not a crash;
// - an exception inside the bindings themselves (lowering a value of the
//   wrong shape) escapes the export: StarlingMonkey prints it and its stack
//   to stderr and aborts, a wasm `unreachable` trap, which the host reports
//   as a crash with the plugin's stderr in the message.
// So these wrappers make the answer explicit: `{tag: 'ok'}` for an answer,
// `{tag: 'err'}` for a PluginError, and for anything else a bounded crash
// report on stderr (type, message, stack) followed by a value whose lowering
// throws: a trap, as a Rust panic is.

import { PluginError } from './errors.js';
import { startEvaluation } from './host.js';
import { CompositionRequest, Expansion, Metadata, Review, Verdict } from './types.js';

const MAX_STACK_FRAMES = 8;
const MAX_REPORT_CHARS = 2048;

/** @internal one bounded line-set describing an uncaught exception */
export function crashReport(phase, e) {
  let type;
  let message;
  let stack = [];
  if (e instanceof Error) {
    type = e.name || e.constructor?.name || 'Error';
    message = e.message;
    stack = String(e.stack ?? '')
      .split('\n')
      .map((l) => l.trim().replace(/^at /, '')) // QuickJS writes `at f (...)`, SpiderMonkey `f@...`
      .filter(Boolean)
      .slice(0, MAX_STACK_FRAMES);
  } else {
    type = e === null ? 'null' : typeof e === 'object' ? e.constructor?.name || 'object' : typeof e;
    try {
      message = typeof e === 'string' ? e : JSON.stringify(e) ?? String(e);
    } catch {
      message = String(e);
    }
  }
  let text = `tessera-sdk: uncaught ${type} in ${phase}: ${message}`;
  if (stack.length) text += `\n${stack.map((l) => `  at ${l}`).join('\n')}`;
  if (text.length > MAX_REPORT_CHARS) text = text.slice(0, MAX_REPORT_CHARS - 3) + '...';
  return text;
}

/**
 * Reports `e` on stderr and returns the `err` whose lowering throws, outside
 * the bindings' try: StarlingMonkey aborts, the host sees a trap.
 */
function crash(phase, e) {
  const summary = report(crashReport(phase, e), `tessera-sdk: ${phase} crashed, see the report above`);
  return {
    tag: 'err',
    // For engines whose entry throws instead (build.mjs, componentize-qjs).
    crash: new Error(summary),
    val: {
      get message() {
        throw new Error(summary);
      },
    },
  };
}

/**
 * Writes the crash report to stderr where there is a console (StarlingMonkey)
 * and returns `short`; without one (QuickJS, which prints the uncaught
 * error's message and stack as it traps) returns the report itself.
 */
function report(text, short) {
  if (typeof console !== 'undefined' && typeof console.error === 'function') {
    console.error(text);
    return short;
  }
  return text;
}

function refusal(e) {
  return { tag: 'err', val: e.toWit() };
}

function metadataExport(metadata) {
  return function tesseraMetadata() {
    try {
      const meta = typeof metadata === 'function' ? metadata() : metadata;
      if (meta instanceof Metadata) return meta.toWit();
      // A plain object `{name, version, description?, kinds?, settingsSchema?}`.
      const built = new Metadata(meta.name, meta.version).description(meta.description ?? '');
      for (const { apiVersion, kind } of meta.kinds ?? []) built.handles(apiVersion, kind);
      if (meta.settingsSchema !== undefined) built.settingsSchema(meta.settingsSchema);
      return built.toWit();
    } catch (e) {
      // `metadata` returns no result: anything thrown out of it traps.
      throw new Error(report(crashReport('metadata', e), 'tessera-sdk: metadata crashed, see the report above'));
    }
  };
}

/**
 * Runs one evaluation; returns the tagged result (synchronously, or a
 * promise when the author's function returns one).
 */
function evaluate(phase, makeInput, f, answerType) {
  startEvaluation();
  let input;
  try {
    input = makeInput();
  } catch (e) {
    return failed(phase, e);
  }
  let answer;
  try {
    answer = f(input);
  } catch (e) {
    return failed(phase, e);
  }
  const finish = (value) => {
    try {
      if (!(value instanceof answerType)) {
        throw new TypeError(`${phase} must return ${answerType === Expansion ? 'an Expansion' : 'a Verdict'}, got ${value === null ? 'null' : typeof value}`);
      }
      return { tag: 'ok', val: value.toWit() };
    } catch (e) {
      return crash(phase, e);
    }
  };
  return answer !== null && typeof answer === 'object' && typeof answer.then === 'function'
    ? answer.then(finish, (e) => failed(phase, e))
    : finish(answer);
}

function failed(phase, e) {
  return e instanceof PluginError ? refusal(e) : crash(phase, e);
}

/**
 * Registers a composition plugin. `metadata` is a Metadata (or a function
 * returning one); `expand(request: CompositionRequest)` returns (or resolves
 * to) an Expansion and throws a PluginError to refuse. The entry module's
 * default export:
 *
 *     export default composition({ metadata, expand });
 */
export function composition({ metadata, expand }) {
  if (typeof expand !== 'function') throw new TypeError('composition: expand must be a function');
  return {
    world: 'composition',
    metadata: metadataExport(metadata),
    expand: (request) => evaluate('expand', () => new CompositionRequest(request), expand, Expansion),
  };
}

/**
 * Registers a policy plugin. `validate(review: Review)` returns (or resolves
 * to) a Verdict and throws a PluginError to refuse. The entry module's
 * default export:
 *
 *     export default policy({ metadata, validate });
 */
export function policy({ metadata, validate }) {
  if (typeof validate !== 'function') throw new TypeError('policy: validate must be a function');
  return {
    world: 'policy',
    metadata: metadataExport(metadata),
    validate: (review) => evaluate('validate', () => new Review(review), validate, Verdict),
  };
}
