// Hand-written declarations of tessera-sdk, the JavaScript SDK for Tessera
// plugins (wit/tessera.wit, package tessera:plugin@0.1.0). Mirrors the Rust
// SDK (guest-sdk/src); see README.md.

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** How serious a finding is. */
export type Severity = 'info' | 'warning' | 'error';
/** Status of a condition, as in Kubernetes `metav1.Condition`. */
export type ConditionStatus = 'true' | 'false' | 'unknown';
/** The operation under review. */
export type Operation = 'create' | 'update' | 'delete';
/** Log levels of `host.log`. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * The plugin refuses its input: an answer, not a crash. The host shows
 * `message` (and `field`) to the user. Throw it from `expand` / `validate`;
 * the field readers throw it. Anything else thrown is a crash.
 */
export class PluginError extends Error {
  constructor(message: string, field?: string);
  /** An error about one field, given by its dotted path (`spec.replicas`). */
  static at(field: string, message: string): PluginError;
  readonly name: 'PluginError';
  /** Dotted path of the offending field, if any. */
  field: string | undefined;
}

/**
 * A read-only view of a JSON object at a dotted path (`spec`,
 * `spec.autoscaling`, `settings`). Every reader throws a {@link PluginError}
 * naming the full path and showing the offending value, e.g.
 * `spec.replicas must be an integer, got "three"`. `null` reads as absent.
 */
export class Fields {
  constructor(path: string, value: JsonValue | undefined);
  /** The dotted path of this view. */
  path(): string;
  /** The dotted path of `key` in this view. */
  pathOf(key: string): string;
  /** The raw value of `key`; `undefined` when absent or `null`. */
  get(key: string): JsonValue | undefined;
  /** A required string. */
  str(key: string): string;
  /** An optional string. */
  optStr(key: string): string | undefined;
  /** A required string that must be one of `allowed`. */
  oneOf<T extends string>(key: string, allowed: readonly T[]): T;
  /** A required integer (a safe JavaScript integer). */
  int(key: string): number;
  /** An optional integer. */
  optInt(key: string): number | undefined;
  /** A required integer in `min..=max`. */
  intIn(key: string, min: number, max: number): number;
  /** An optional integer in `min..=max`. */
  optIntIn(key: string, min: number, max: number): number | undefined;
  /** An optional boolean. */
  optBool(key: string): boolean | undefined;
  /** A required Kubernetes quantity such as `20Gi` or `500m`. */
  quantity(key: string): string;
  /** An optional list of strings. */
  optStrList(key: string): string[] | undefined;
  /** A view of an optional nested object. */
  optObject(key: string): Fields | undefined;
  /** An optional nested object, its keys in order. */
  optMap(key: string): JsonObject | undefined;
}

/** Whether `text` is a DNS-1035 label of at most `maxLen` characters. */
export function isDns1035Label(text: string, maxLen: number): boolean;
/** Whether `text` is a Kubernetes resource quantity (`20Gi`, `1.5`, `500m`, `1e3`). */
export function isQuantity(text: string): boolean;

/**
 * `text` quoted as Rust's `{:?}` writes a string (`"a\"b"`, `"x\u{1b}"`), for
 * messages identical to a Rust plugin's `format!("{name:?}")`.
 */
export function rustDebug(text: string): string;

/**
 * A Kubernetes object: a JSON object with `apiVersion`, `kind` and
 * `metadata`. Key order is kept as built. The `with*` builders change the
 * object and return it.
 */
export class KubeObject {
  /** A new object with `apiVersion`, `kind` and `metadata.name`. */
  constructor(apiVersion: string, kind: string, name: string);
  /** Wraps a JSON value; throws a PluginError (naming `what`) unless it is an object. */
  static fromValue(what: string, value: JsonValue): KubeObject;
  /** The JSON value (not a copy). */
  asValue(): JsonObject;
  toJSON(): JsonObject;
  /** `apiVersion`, or `""`. */
  apiVersion(): string;
  /** `kind`, or `""`. */
  kind(): string;
  /** `metadata.name`, or `""`. */
  name(): string;
  /** `metadata.namespace`, when set and not empty. */
  namespace(): string | undefined;
  /** `metadata.labels` with string values, as `[key, value]` pairs in order. */
  labels(): [string, string][];
  /** `metadata.annotations` with string values, as `[key, value]` pairs in order. */
  annotations(): [string, string][];
  /** One label's value. */
  label(key: string): string | undefined;
  /** One annotation's value. */
  annotation(key: string): string | undefined;
  /** Sets `metadata.namespace`. */
  withNamespace(namespace: string): this;
  /** Sets a label. */
  withLabel(key: string, value: string): this;
  /** Sets an annotation. */
  withAnnotation(key: string, value: string): this;
  /** Sets a top-level field such as `spec`, `data` or `type`. */
  with(key: string, value: JsonValue): this;
  /** Sets `data` of a Secret from plain strings (base64-encoded here). */
  withSecretData(entries: Record<string, string> | Iterable<[string, string]>): this;
}

/** Standard base64 with padding (Kubernetes Secret `data`). */
export function base64Encode(bytes: Uint8Array): string;
/** Decodes standard base64 (any trailing `=`, loose last bits); `undefined` when not base64. */
export function base64Decode(text: string): Uint8Array | undefined;

/** One observation a plugin reports about its input or output. */
export class Finding {
  constructor(severity: Severity, message: string, field?: string);
  static info(message: string): Finding;
  static warning(message: string): Finding;
  static error(message: string): Finding;
  /** Names the field the finding is about. */
  at(field: string): this;
  severity: Severity;
  message: string;
  field: string | undefined;
}

/** A condition for the composite's status (`status` may be given as a boolean). */
export class Condition {
  constructor(type: string, status: ConditionStatus | boolean, reason: string, message: string);
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/** What a plugin says about itself. */
export class Metadata {
  constructor(name: string, version: string);
  /** A one-line description. */
  description(text: string): this;
  /** Adds a kind the plugin expands or checks. */
  handles(apiVersion: string, kind: string): this;
  /** The JSON schema (draft 2020-12) the host checks settings against before the first call. */
  settingsSchema(schema: JsonObject): this;
  readonly name: string;
  readonly version: string;
  readonly kinds: { apiVersion: string; kind: string }[];
}

/** Metadata as a plain object, accepted where a {@link Metadata} is. */
export interface MetadataFields {
  name: string;
  version: string;
  description?: string;
  kinds?: { apiVersion: string; kind: string }[];
  settingsSchema?: JsonObject;
}

/** Facts about the evaluation. */
export interface Context {
  /** Where the evaluation runs: `cli`, `controller`, ... */
  caller: string;
  /** True when the result will not be applied. */
  dryRun: boolean;
}

/** What `expand` is asked to do. */
export class CompositionRequest {
  private constructor();
  /** The composite. */
  readonly composite: KubeObject;
  /** The children the composite already owns, as observed. */
  readonly observed: KubeObject[];
  /** The binding's settings (an object; `{}` when none). */
  readonly settingsValue: JsonValue;
  readonly context: Context;
  /** Reads fields of the composite's `spec`; a missing `spec` reads as empty. */
  spec(): Fields;
  /** Reads fields of the settings. */
  settings(): Fields;
  /** The observed child with this apiVersion, kind and name, if any. */
  observedChild(apiVersion: string, kind: string, name: string): KubeObject | undefined;
  /** The decoded value of `data[key]` in the observed Secret `name`, if any. */
  observedSecretValue(name: string, key: string): string | undefined;
  /**
   * A credential: the observed Secret's value when there is one (and it is
   * not empty), else one the host derives (`derive-secret`) from its key,
   * this composite's identity and `${secretName}/${key}`.
   */
  credential(secretName: string, key: string, length: number): string;
  /** A new child with `metadata.name`, the composite's namespace (if any) and its labels. */
  child(apiVersion: string, kind: string, name: string): KubeObject;
}

/** What `expand` answers. A builder; an empty expansion is not ready. */
export class Expansion {
  constructor();
  /** Adds a child. */
  child(child: KubeObject | JsonObject): this;
  /** Sets the JSON object merged into the composite's `status`. */
  status(value: JsonObject): this;
  /** Adds a condition for the composite. */
  condition(condition: Condition): this;
  /** Adds a finding. */
  finding(finding: Finding): this;
  /** Says whether the composite is ready. */
  ready(ready: boolean): this;
  readonly children: (KubeObject | JsonObject)[];
  readonly statusPatch: JsonObject | undefined;
  readonly conditions: Condition[];
  readonly findings: Finding[];
  readonly isReady: boolean;
}

/** Who asked for the operation. */
export interface UserInfo {
  username: string;
  uid: string;
  groups: string[];
}

/** What `validate` is asked to judge. */
export class Review {
  private constructor();
  readonly operation: Operation;
  /** The object after the operation (undefined on delete). */
  readonly object: KubeObject | undefined;
  /** The object before the operation (update and delete). */
  readonly oldObject: KubeObject | undefined;
  readonly userInfo: UserInfo;
  /** The binding's settings (an object; `{}` when none). */
  readonly settingsValue: JsonValue;
  /** The new object, or the old one on delete. */
  subject(): KubeObject | undefined;
  /** Reads fields of the settings. */
  settings(): Fields;
}

/** A policy's answer. */
export class Verdict {
  constructor(allowed: boolean, findings?: Finding[]);
  /** Allowed, with no findings. */
  static allow(): Verdict;
  /** Denied when any finding is an error, allowed otherwise. */
  static fromFindings(findings: Finding[]): Verdict;
  allowed: boolean;
  findings: Finding[];
}

/** What the host offers: logging, reads the binding allows, derived secrets. */
export namespace host {
  /** Writes a log line (bounded per evaluation by the host; never fails). */
  function log(level: LogLevel, message: string): void;
  function debug(message: string): void;
  function info(message: string): void;
  function warn(message: string): void;
  /** Reads one object; `undefined` when it does not exist. Throws a PluginError when not allowed. */
  function getResource(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Lists objects of a kind, optionally in one namespace, filtered by `key=value,...`. */
  function listResources(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): KubeObject[];
  /** A secret of `length` characters from `[A-Za-z0-9]` derived by the host. Composition plugins only. */
  function deriveSecret(purpose: string, length: number): string;
}

type Awaitable<T> = T | Promise<T>;

/** What `composition()` returns: the entry module's default export. */
export interface CompositionPlugin {
  readonly world: 'composition';
}
/** What `policy()` returns: the entry module's default export. */
export interface PolicyPlugin {
  readonly world: 'policy';
}

/**
 * Registers a composition plugin; `export default` the result.
 * `expand` returns an Expansion, throws a PluginError to refuse; anything
 * else thrown crashes the plugin (type, message and stack on stderr).
 */
export function composition(plugin: {
  metadata: Metadata | MetadataFields | (() => Metadata | MetadataFields);
  expand(request: CompositionRequest): Awaitable<Expansion>;
}): CompositionPlugin;

/**
 * Registers a policy plugin; `export default` the result.
 * `validate` returns a Verdict, throws a PluginError to refuse.
 */
export function policy(plugin: {
  metadata: Metadata | MetadataFields | (() => Metadata | MetadataFields);
  validate(review: Review): Awaitable<Verdict>;
}): PolicyPlugin;
