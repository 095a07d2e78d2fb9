// Reading fields of `spec` and settings with errors that name the field.
// Messages are those of the Rust SDK (guest-sdk/src/fields.rs), word for word.

import { PluginError } from './errors.js';

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInteger = (v) => typeof v === 'number' && Number.isSafeInteger(v);

/** Shows a value in an error: JSON, strings quoted, long values cut (60 characters). */
export function show(value) {
  const text = JSON.stringify(value) ?? String(value);
  const chars = Array.from(text);
  return chars.length > 60 ? chars.slice(0, 57).join('') + '...' : text;
}

/**
 * A read-only view of a JSON object at a dotted path (`spec`,
 * `spec.autoscaling`, `settings`). Every reader throws a {@link PluginError}
 * that names the full path of the field and shows the offending value.
 */
export class Fields {
  /** @param {string} path @param {unknown} value a JSON object, or undefined */
  constructor(path, value) {
    this._path = path;
    this._value = value;
  }

  /** The dotted path of this view. */
  path() {
    return this._path;
  }

  /** The dotted path of `key` in this view. */
  pathOf(key) {
    return `${this._path}.${key}`;
  }

  /** The raw value of `key`; `undefined` when absent or `null`. */
  get(key) {
    if (!isObject(this._value) || !Object.prototype.hasOwnProperty.call(this._value, key)) return undefined;
    const v = this._value[key];
    return v === null ? undefined : v;
  }

  _required(key) {
    const v = this.get(key);
    if (v === undefined) {
      const path = this.pathOf(key);
      throw PluginError.at(path, `${path} is required`);
    }
    return v;
  }

  _wrong(key, expected, got) {
    const path = this.pathOf(key);
    return PluginError.at(path, `${path} must be ${expected}, got ${show(got)}`);
  }

  /** A required string. */
  str(key) {
    const v = this._required(key);
    if (typeof v !== 'string') throw this._wrong(key, 'a string', v);
    return v;
  }

  /** An optional string. */
  optStr(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw this._wrong(key, 'a string', v);
    return v;
  }

  /** A required string that must be one of `allowed`. */
  oneOf(key, allowed) {
    const v = this.str(key);
    if (allowed.includes(v)) return v;
    const path = this.pathOf(key);
    throw PluginError.at(path, `${path} must be one of ${allowed.join(', ')}, got ${show(v)}`);
  }

  /** A required integer. */
  int(key) {
    const v = this._required(key);
    if (!isInteger(v)) throw this._wrong(key, 'an integer', v);
    return v;
  }

  /** An optional integer. */
  optInt(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isInteger(v)) throw this._wrong(key, 'an integer', v);
    return v;
  }

  /** An optional integer that must lie in `min..=max`. */
  optIntIn(key, min, max) {
    const n = this.optInt(key);
    if (n === undefined) return undefined;
    if (n >= min && n <= max) return n;
    const path = this.pathOf(key);
    throw PluginError.at(path, `${path} must be between ${min} and ${max}, got ${n}`);
  }

  /** A required integer that must lie in `min..=max`. */
  intIn(key, min, max) {
    this._required(key);
    return this.optIntIn(key, min, max);
  }

  /** An optional boolean. */
  optBool(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') throw this._wrong(key, 'true or false', v);
    return v;
  }

  /** A required Kubernetes quantity such as `20Gi` or `500m`. */
  quantity(key) {
    const v = this._required(key);
    if (typeof v === 'string' && isQuantity(v)) return v;
    throw this._wrong(key, 'a quantity such as 20Gi', v);
  }

  /** An optional list of strings. */
  optStrList(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw this._wrong(key, 'a list of strings', v);
    v.forEach((item, i) => {
      if (typeof item !== 'string') throw this._wrong(`${key}[${i}]`, 'a string', item);
    });
    return v.slice();
  }

  /** A view of an optional nested object. */
  optObject(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) throw this._wrong(key, 'an object', v);
    return new Fields(this.pathOf(key), v);
  }

  /** A nested object (its keys mapped to their values, in order). */
  optMap(key) {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (!isObject(v)) throw this._wrong(key, 'an object', v);
    return v;
  }
}

/**
 * Whether `text` is a DNS-1035 label of at most `maxLen` characters:
 * lowercase letters, digits and `-`, starting with a letter and ending with a
 * letter or digit (Kubernetes requires it of Service names, `maxLen` 63).
 */
export function isDns1035Label(text, maxLen) {
  return text.length > 0 && text.length <= maxLen && /^[a-z]([a-z0-9-]*[a-z0-9])?$/.test(text);
}

/**
 * Whether `text` is a Kubernetes resource quantity (`20Gi`, `1.5`, `500m`,
 * `1e3`): a signed decimal number followed by an optional binary suffix
 * (`Ki`..`Ei`), decimal suffix (`n u m k M G T P E`) or exponent.
 */
export function isQuantity(text) {
  const m = /^[+-]?([0-9]*)(?:\.([0-9]*))?(.*)$/s.exec(text);
  if (!m || (m[1] ?? '').length + (m[2] ?? '').length === 0) return false;
  const suffix = m[3];
  if (/^(|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)$/.test(suffix)) return true;
  return /^[eE][+-]?[0-9]+$/.test(suffix);
}
