// The typed values a plugin reads and returns (guest-sdk/src/types.rs).

import { Fields } from './fields.js';
import { PluginError } from './errors.js';
import { KubeObject, base64Decode } from './object.js';
import { deriveSecret } from './host.js';
import * as utf8 from './utf8.js';

const SEVERITIES = ['info', 'warning', 'error'];
const STATUSES = ['true', 'false', 'unknown'];

/** One observation a plugin reports. `severity` is `info`, `warning` or `error`. */
export class Finding {
  constructor(severity, message, field) {
    if (!SEVERITIES.includes(severity)) throw new TypeError(`severity must be one of ${SEVERITIES.join(', ')}, got ${JSON.stringify(severity)}`);
    this.severity = severity;
    this.message = String(message);
    this.field = field ?? undefined;
  }
  static info(message) {
    return new Finding('info', message);
  }
  static warning(message) {
    return new Finding('warning', message);
  }
  static error(message) {
    return new Finding('error', message);
  }
  /** Names the field the finding is about. */
  at(field) {
    this.field = field;
    return this;
  }
  /** @internal */
  toWit() {
    return { severity: this.severity, message: this.message, field: this.field ?? null };
  }
}

/** A condition for the composite's status. `status` is `true`, `false` or `unknown`. */
export class Condition {
  constructor(type, status, reason, message) {
    const s = typeof status === 'boolean' ? String(status) : status;
    if (!STATUSES.includes(s)) throw new TypeError(`condition status must be one of ${STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
    this.type = String(type);
    this.status = s;
    this.reason = String(reason);
    this.message = String(message);
  }
  /** @internal */
  toWit() {
    return { type: this.type, status: this.status, reason: this.reason, message: this.message };
  }
}

const toFinding = (f) => (f instanceof Finding ? f : new Finding(f.severity, f.message, f.field)).toWit();
const toCondition = (c) => (c instanceof Condition ? c : new Condition(c.type, c.status, c.reason, c.message)).toWit();

/** What a plugin says about itself: name, version, kinds, settings schema. */
export class Metadata {
  constructor(name, version) {
    this.name = name;
    this.version = version;
    this._description = '';
    this.kinds = [];
    this._settingsSchema = undefined;
  }
  /** A one-line description. */
  description(text) {
    this._description = text;
    return this;
  }
  /** Adds a kind the plugin expands or checks. */
  handles(apiVersion, kind) {
    this.kinds.push({ apiVersion, kind });
    return this;
  }
  /** The JSON schema (draft 2020-12) the host checks settings against. */
  settingsSchema(schema) {
    this._settingsSchema = schema;
    return this;
  }
  /** @internal */
  toWit() {
    return {
      name: this.name,
      version: this.version,
      description: this._description,
      kinds: this.kinds.map(({ apiVersion, kind }) => ({ apiVersion, kind })),
      settingsSchema: this._settingsSchema === undefined ? null : JSON.stringify(this._settingsSchema),
    };
  }
}

function parseJson(what, text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PluginError(`${what} is not valid JSON: ${e.message}`);
  }
}

/** What `expand` is asked to do. */
export class CompositionRequest {
  /** @internal from the WIT record */
  constructor(request) {
    /** The composite. */
    this.composite = KubeObject.parse('composite', request.composite);
    /** The children the composite already owns, as observed. */
    this.observed = request.observed.map((o, i) => KubeObject.parse(`observed[${i}]`, o));
    /** The binding's settings (an object; `{}` when none). */
    this.settingsValue = parseJson('settings', request.settings);
    /** `{caller, dryRun}`. */
    this.context = { caller: request.context.caller, dryRun: request.context.dryRun };
  }

  /** Reads fields of the composite's `spec`; a missing `spec` reads as empty. */
  spec() {
    const v = this.composite.asValue();
    return new Fields('spec', v.spec === null ? undefined : v.spec);
  }

  /** Reads fields of the settings. */
  settings() {
    return new Fields('settings', this.settingsValue);
  }

  /** The observed child with this apiVersion, kind and name, if any. */
  observedChild(apiVersion, kind, name) {
    return this.observed.find((o) => o.apiVersion() === apiVersion && o.kind() === kind && o.name() === name);
  }

  /** The decoded value of `data[key]` in the observed Secret `name`, if any. */
  observedSecretValue(name, key) {
    const secret = this.observedChild('v1', 'Secret', name);
    const data = secret?.asValue().data;
    const encoded = data !== null && typeof data === 'object' ? data[key] : undefined;
    if (typeof encoded !== 'string') return undefined;
    const bytes = base64Decode(encoded);
    if (bytes === undefined) return undefined;
    return utf8.decode(bytes);
  }

  /**
   * A credential: the observed Secret's value when there is one (and it is
   * not empty), otherwise a value the host derives from its secret key, this
   * composite's identity and `${secretName}/${key}`.
   */
  credential(secretName, key, length) {
    const observed = this.observedSecretValue(secretName, key);
    return observed ? observed : deriveSecret(`${secretName}/${key}`, length);
  }

  /**
   * A new child object with `metadata.name`, the composite's namespace (if
   * any) and the composite's labels.
   */
  child(apiVersion, kind, name) {
    const child = new KubeObject(apiVersion, kind, name);
    const ns = this.composite.namespace();
    if (ns !== undefined) child.withNamespace(ns);
    for (const [k, v] of this.composite.labels()) child.withLabel(k, v);
    return child;
  }
}

/** What `expand` answers. A builder: each method returns the expansion. */
export class Expansion {
  constructor() {
    this.children = [];
    this.statusPatch = undefined;
    this.conditions = [];
    this.findings = [];
    this.isReady = false;
  }
  /** Adds a child (a KubeObject or a plain JSON object). */
  child(child) {
    this.children.push(child);
    return this;
  }
  /** Sets the JSON object merged into the composite's `status`. */
  status(value) {
    this.statusPatch = value;
    return this;
  }
  condition(condition) {
    this.conditions.push(condition);
    return this;
  }
  finding(finding) {
    this.findings.push(finding);
    return this;
  }
  /** Says whether the composite is ready. */
  ready(ready) {
    this.isReady = Boolean(ready);
    return this;
  }
  /** @internal */
  toWit() {
    return {
      children: this.children.map((c) => JSON.stringify(c instanceof KubeObject ? c.asValue() : c)),
      status: this.statusPatch === undefined ? null : JSON.stringify(this.statusPatch),
      conditions: this.conditions.map(toCondition),
      findings: this.findings.map(toFinding),
      ready: this.isReady,
    };
  }
}

/** What `validate` is asked to judge. */
export class Review {
  /** @internal from the WIT record */
  constructor(review) {
    /** `create`, `update` or `delete`. */
    this.operation = review.operation;
    /** The object after the operation (undefined on delete). */
    // An absent `option` is undefined (componentize-js) or null (componentize-qjs).
    this.object = review.object == null ? undefined : KubeObject.parse('object', review.object);
    /** The object before the operation (update and delete). */
    this.oldObject = review.oldObject == null ? undefined : KubeObject.parse('oldObject', review.oldObject);
    /** `{username, uid, groups}`. */
    this.userInfo = { username: review.userInfo.username, uid: review.userInfo.uid, groups: review.userInfo.groups };
    /** The binding's settings (an object; `{}` when none). */
    this.settingsValue = parseJson('settings', review.settings);
  }
  /** The object the operation is about: the new object, or the old one on delete. */
  subject() {
    return this.object ?? this.oldObject;
  }
  /** Reads fields of the settings. */
  settings() {
    return new Fields('settings', this.settingsValue);
  }
}

/** A policy's answer. */
export class Verdict {
  constructor(allowed, findings = []) {
    this.allowed = Boolean(allowed);
    this.findings = findings;
  }
  /** Allowed, with no findings. */
  static allow() {
    return new Verdict(true, []);
  }
  /** Denied when any finding is an error, allowed otherwise. */
  static fromFindings(findings) {
    return new Verdict(!findings.some((f) => f.severity === 'error'), findings);
  }
  /** @internal */
  toWit() {
    return { allowed: this.allowed, findings: this.findings.map(toFinding) };
  }
}
