// A Kubernetes object as JSON, with the accessors plugins need
// (guest-sdk/src/object.rs).

import { PluginError } from './errors.js';
import * as utf8 from './utf8.js';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const own = (o, k) => isObject(o) && Object.prototype.hasOwnProperty.call(o, k);

/**
 * A Kubernetes object: a JSON object with `apiVersion`, `kind` and
 * `metadata`. Key order is kept as built, so output is deterministic. The
 * `with*` builders change the object and return it.
 */
export class KubeObject {
  /** A new object with `apiVersion`, `kind` and `metadata.name`. */
  constructor(apiVersion, kind, name) {
    this._value = { apiVersion, kind, metadata: { name: String(name) } };
  }

  /** Wraps a JSON value; it must be an object (`what` names it in the error). */
  static fromValue(what, value) {
    if (!isObject(value)) throw new PluginError(`${what} must be a JSON object`);
    const o = Object.create(KubeObject.prototype);
    o._value = value;
    return o;
  }

  /** @internal parses JSON text from the host */
  static parse(what, text) {
    let value;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new PluginError(`${what} is not valid JSON: ${e.message}`);
    }
    return KubeObject.fromValue(what, value);
  }

  /** The JSON value (not a copy). */
  asValue() {
    return this._value;
  }

  /** For `JSON.stringify`. */
  toJSON() {
    return this._value;
  }

  _strAt(outer, key) {
    const o = own(this._value, outer) ? this._value[outer] : undefined;
    const v = own(o, key) ? o[key] : undefined;
    return typeof v === 'string' ? v : undefined;
  }

  /** `apiVersion`, or `""`. */
  apiVersion() {
    const v = this._value.apiVersion;
    return typeof v === 'string' ? v : '';
  }

  /** `kind`, or `""`. */
  kind() {
    const v = this._value.kind;
    return typeof v === 'string' ? v : '';
  }

  /** `metadata.name`, or `""`. */
  name() {
    return this._strAt('metadata', 'name') ?? '';
  }

  /** `metadata.namespace`, when set and not empty. */
  namespace() {
    const ns = this._strAt('metadata', 'namespace');
    return ns ? ns : undefined;
  }

  _stringMap(which) {
    const m = own(this._value, 'metadata') ? this._value.metadata : undefined;
    const map = own(m, which) ? m[which] : undefined;
    if (!isObject(map)) return [];
    return Object.entries(map).filter(([, v]) => typeof v === 'string');
  }

  /** `metadata.labels` with string values, as `[key, value]` pairs in order. */
  labels() {
    return this._stringMap('labels');
  }

  /** `metadata.annotations` with string values, as `[key, value]` pairs in order. */
  annotations() {
    return this._stringMap('annotations');
  }

  /** One label's value. */
  label(key) {
    return this._lookup('labels', key);
  }

  /** One annotation's value. */
  annotation(key) {
    return this._lookup('annotations', key);
  }

  _lookup(which, key) {
    const m = own(this._value, 'metadata') ? this._value.metadata : undefined;
    const map = own(m, which) ? m[which] : undefined;
    const v = own(map, key) ? map[key] : undefined;
    return typeof v === 'string' ? v : undefined;
  }

  _metadata() {
    if (!isObject(this._value.metadata)) this._value.metadata = {};
    return this._value.metadata;
  }

  _metadataMap(which) {
    const m = this._metadata();
    if (!isObject(m[which])) m[which] = {};
    return m[which];
  }

  /** Sets `metadata.namespace`. */
  withNamespace(namespace) {
    this._metadata().namespace = namespace;
    return this;
  }

  /** Sets a label. */
  withLabel(key, value) {
    this._metadataMap('labels')[key] = value;
    return this;
  }

  /** Sets an annotation. */
  withAnnotation(key, value) {
    this._metadataMap('annotations')[key] = value;
    return this;
  }

  /** Sets a top-level field such as `spec`, `data` or `type`. */
  with(key, value) {
    this._value[key] = value;
    return this;
  }

  /** Sets `data` of a Secret from plain strings (base64-encoded here). */
  withSecretData(entries) {
    const pairs = Symbol.iterator in Object(entries) ? Array.from(entries) : Object.entries(entries);
    const data = {};
    for (const [k, v] of pairs) data[k] = base64Encode(utf8.encode(v));
    return this.with('data', data);
  }
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 with padding, as Kubernetes uses for Secret `data`. */
export function base64Encode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + '==';
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + '=';
  }
  return out;
}

/**
 * Decodes standard base64 as the Rust SDK does: any run of trailing `=`,
 * nonzero unused bits in the last character accepted; `undefined` when the
 * text is not base64.
 */
export function base64Decode(text) {
  const s = text.replace(/=+$/, '');
  if (s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let j = 0;
  for (let i = 0; i < s.length; i++) {
    const d = ALPHABET.indexOf(s[i]);
    if (d < 0) return undefined;
    acc = ((acc << 6) | d) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, j);
}
