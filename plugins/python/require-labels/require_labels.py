"""The ``require-labels`` policy plugin, in Python: a port of
plugins/require-labels (src/lib.rs) on the Python SDK (guest-sdk/python).

Settings::

    {"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}

Denies an object with one error finding per missing required label and one
per label whose value is not among its allowed values; each finding names
the label. Deletes are always allowed: there is nothing left to label.
"""

from __future__ import annotations

from typing import List

from tessera_sdk import Finding, Metadata, Operation, Review, Verdict, policy, rust_debug

#: The Rust plugin's `CARGO_PKG_VERSION` and `CARGO_PKG_DESCRIPTION`.
VERSION = "0.1.0"
DESCRIPTION = "Denies objects that lack required labels or carry label values outside an allowed set."

METADATA = (
    Metadata("require-labels", VERSION)
    .description(DESCRIPTION)
    .settings_schema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "requiredLabels": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "uniqueItems": True,
                },
                "allowedValues": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                    },
                },
            },
        }
    )
)


@policy(METADATA)
def validate(review: Review) -> Verdict:
    """Judges one object's labels."""
    if review.operation is Operation.DELETE:
        return Verdict.allow()
    obj = review.object
    if obj is None:
        return Verdict.allow()
    settings = review.settings()
    required = settings.opt_str_list("requiredLabels") or []
    allowed = settings.opt_map("allowedValues") or {}

    findings: List[Finding] = []
    for label in required:
        if obj.label(label) is None:
            findings.append(
                Finding.error(f"missing required label {rust_debug(label)}").at(f"metadata.labels.{label}")
            )
    for label, values in allowed.items():
        value = obj.label(label)
        if value is None:
            continue
        names = [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
        if value not in names:
            findings.append(
                Finding.error(
                    f"label {rust_debug(label)} has value {rust_debug(value)}; allowed: {', '.join(names)}"
                ).at(f"metadata.labels.{label}")
            )
    return Verdict.from_findings(findings)
