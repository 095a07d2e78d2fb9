// The `require-labels` policy plugin, in JavaScript: a port of
// plugins/require-labels/src/lib.rs on the JS SDK (guest-sdk/js).
//
// Settings: {"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}
// Denies an object with one error finding per missing required label and one
// per label whose value is not among its allowed values; each finding names
// the label. Deletes are always allowed: there is nothing left to label.

import { Finding, Metadata, Verdict, policy, rustDebug } from 'tessera-sdk';

// The Rust plugin's version (the workspace's) and description (its Cargo.toml).
const VERSION = '0.1.0';
const DESCRIPTION = 'Denies objects that lack required labels or carry label values outside an allowed set.';

/** The plugin's metadata, with the JSON schema of its settings. */
function metadata() {
  return new Metadata('require-labels', VERSION).description(DESCRIPTION).settingsSchema({
    type: 'object',
    additionalProperties: false,
    properties: {
      requiredLabels: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        uniqueItems: true,
      },
      allowedValues: {
        type: 'object',
        additionalProperties: {
          type: 'array',
          items: { type: 'string' },
          minItems: 1,
        },
      },
    },
  });
}

/** Rust's `{:?}` of a string, as the Rust plugin's messages write labels. @param {string} s */
const quoted = (s) => rustDebug(s);

/**
 * Judges one object's labels.
 * @param {import('tessera-sdk').Review} review
 * @returns {import('tessera-sdk').Verdict}
 */
function validate(review) {
  if (review.operation === 'delete') return Verdict.allow();
  const object = review.object;
  if (object === undefined) return Verdict.allow();
  const settings = review.settings();
  const required = settings.optStrList('requiredLabels') ?? [];
  const allowed = settings.optMap('allowedValues');

  const findings = [];
  for (const label of required) {
    if (object.label(label) === undefined) {
      findings.push(Finding.error(`missing required label ${quoted(label)}`).at(`metadata.labels.${label}`));
    }
  }
  for (const [label, values] of Object.entries(allowed ?? {})) {
    const value = object.label(label);
    if (value === undefined) continue;
    const names = Array.isArray(values) ? values.filter((v) => typeof v === 'string') : [];
    if (!names.includes(value)) {
      findings.push(
        Finding.error(`label ${quoted(label)} has value ${quoted(value)}; allowed: ${names.join(', ')}`).at(
          `metadata.labels.${label}`,
        ),
      );
    }
  }
  return Verdict.fromFindings(findings);
}

// The build (guest-sdk/js/build.mjs) exports the world's functions from this.
export default policy({ metadata, validate });
