// What the host offers a plugin: logging, reads of other resources (only
// those the plugin's binding allows), and derived secrets (guest-sdk/src/host.rs).
//
// The WIT imports come through two modules guest-sdk/js/build.mjs makes for
// the world and the engine: `tessera-sdk:host` (log, getResource,
// listResources of `tessera:plugin/host@0.1.0`) and `tessera-sdk:credentials`
// (deriveSecret of `tessera:plugin/credentials@0.1.0`, imported only by the
// composition world; for a policy a deriveSecret that throws).

import * as wit from 'tessera-sdk:host';
import { deriveSecret as witDeriveSecret } from 'tessera-sdk:credentials';
import { PluginError } from './errors.js';
import { KubeObject } from './object.js';
import * as utf8 from './utf8.js';

/** The host's log byte budget of one evaluation (see host.rs). */
const LOG_BUDGET = 64 << 10;
let logSent = 0;

/** @internal called as each evaluation starts: a fresh log budget. */
export function startEvaluation() {
  logSent = 0;
}

/** `text` cut to at most `maxBytes` UTF-8 bytes, on a character boundary. */
function truncateUtf8(text, maxBytes) {
  if (text.length * 3 <= maxBytes || utf8.byteLength(text) <= maxBytes) return text;
  const bytes = utf8.encode(text);
  let end = maxBytes;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return utf8.decode(bytes.subarray(0, end));
}

/**
 * Writes a log line through the host (`debug`, `info`, `warn`, `error`).
 * Like the Rust SDK it sends only what the host can still keep: at most the
 * first 64 KiB of a message, and once 64 KiB were sent in this evaluation an
 * empty line, which the host counts as dropped. Logging never fails.
 */
export function log(level, message) {
  const offered = logSent >= LOG_BUDGET ? '' : truncateUtf8(String(message), LOG_BUDGET);
  logSent += utf8.byteLength(offered);
  wit.log(level, offered);
}

export const debug = (message) => log('debug', message);
export const info = (message) => log('info', message);
export const warn = (message) => log('warn', message);

function hostError(e) {
  // An imported `result`'s err arrives as a thrown ComponentError whose
  // `payload` is the host's message; a refusal of the plugin's own, as in Rust.
  // (componentize-js); componentize-qjs throws the err value itself.
  if (e && Object.prototype.hasOwnProperty.call(e, 'payload')) return new PluginError(String(e.payload));
  if (typeof e === 'string') return new PluginError(e);
  return e;
}

function parse(what, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new PluginError(`host returned invalid JSON for ${what}: ${e.message}`);
  }
  return KubeObject.fromValue(what, value);
}

/**
 * Reads one object; `undefined` when it does not exist. Throws a
 * {@link PluginError} when the binding does not allow reading this kind.
 */
export function getResource(apiVersion, kind, namespace, name) {
  let found;
  try {
    found = wit.getResource({ apiVersion, kind, namespace: namespace ?? null, name });
  } catch (e) {
    throw hostError(e);
  }
  return found == null ? undefined : parse(`${kind} ${name}`, found);
}

/**
 * Lists objects of a kind, optionally in one namespace and filtered by a
 * label selector (`key=value,key2=value2`).
 */
export function listResources(apiVersion, kind, namespace, labelSelector) {
  let texts;
  try {
    texts = wit.listResources(apiVersion, kind, namespace ?? null, labelSelector ?? null);
  } catch (e) {
    throw hostError(e);
  }
  return texts.map((text) => parse(kind, text));
}

/**
 * A secret of `length` characters from `[A-Za-z0-9]`, derived by the host
 * from the key it holds, the identity of the composite being expanded and
 * `purpose`. Only composition plugins may call it.
 */
export function deriveSecret(purpose, length) {
  return witDeriveSecret(purpose, length);
}
