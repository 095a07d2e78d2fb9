// Package requirelabels is the require-labels policy plugin in Go: a port of
// plugins/require-labels (src/lib.rs) on the Go SDK (guest-sdk/go).
//
// Settings:
//
//	{"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}
//
// Denies an object with one error finding per missing required label and one
// per label whose value is not among its allowed values; each finding names
// the label. Deletes are always allowed: there is nothing left to label.
package requirelabels

import (
	"fmt"
	"strings"

	sdk "tessera.dev/sdk"
)

// Version and Description are the Rust plugin's CARGO_PKG_VERSION and
// CARGO_PKG_DESCRIPTION.
const (
	Version     = "0.1.0"
	Description = "Denies objects that lack required labels or carry label values outside an allowed set."
)

// Meta is the plugin's metadata, with the JSON schema of its settings.
var Meta = sdk.NewMetadata("require-labels", Version).
	WithDescription(Description).
	WithSettingsSchema(`{
		"type": "object",
		"additionalProperties": false,
		"properties": {
			"requiredLabels": {
				"type": "array",
				"items": {"type": "string", "minLength": 1},
				"uniqueItems": true
			},
			"allowedValues": {
				"type": "object",
				"additionalProperties": {
					"type": "array",
					"items": {"type": "string"},
					"minItems": 1
				}
			}
		}
	}`)

func init() { sdk.RegisterPolicy(Meta, Validate) }

// Validate judges one object's labels.
func Validate(review sdk.Review) (sdk.Verdict, error) {
	if review.Operation == sdk.Delete || review.Object == nil {
		return sdk.Allow(), nil
	}
	obj := review.Object
	settings := review.SettingsFields()
	required, err := settings.OptStrList("requiredLabels")
	if err != nil {
		return sdk.Verdict{}, err
	}
	allowed, err := settings.OptMap("allowedValues")
	if err != nil {
		return sdk.Verdict{}, err
	}

	var findings []sdk.Finding
	for _, label := range required {
		if _, ok := obj.Label(label); !ok {
			findings = append(findings,
				sdk.FindingError("missing required label "+sdk.RustDebug(label)).At("metadata.labels."+label))
		}
	}
	for _, label := range allowed.Keys() {
		value, ok := obj.Label(label)
		if !ok {
			continue
		}
		raw, _ := allowed.Get(label)
		var names []string
		if items, ok := raw.([]sdk.Value); ok {
			for _, item := range items {
				if s, ok := item.(string); ok {
					names = append(names, s)
				}
			}
		}
		found := false
		for _, n := range names {
			if n == value {
				found = true
			}
		}
		if !found {
			findings = append(findings, sdk.FindingError(fmt.Sprintf("label %s has value %s; allowed: %s",
				sdk.RustDebug(label), sdk.RustDebug(value), strings.Join(names, ", "))).At("metadata.labels."+label))
		}
	}
	return sdk.FromFindings(findings), nil
}
