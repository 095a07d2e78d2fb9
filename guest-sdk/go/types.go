package sdk

import "fmt"

// Severity of a finding.
type Severity uint8

const (
	Info Severity = iota
	Warning
	ErrorSeverity
)

// Finding is one observation about the input.
type Finding struct {
	Severity Severity
	Message  string
	// Field is the dotted path the finding is about; empty for none.
	Field string
}

// FindingError makes an error finding.
func FindingError(message string) Finding { return Finding{Severity: ErrorSeverity, Message: message} }

// FindingWarning makes a warning finding.
func FindingWarning(message string) Finding { return Finding{Severity: Warning, Message: message} }

// FindingInfo makes an info finding.
func FindingInfo(message string) Finding { return Finding{Severity: Info, Message: message} }

// At sets the field the finding is about.
func (f Finding) At(field string) Finding { f.Field = field; return f }

// Verdict is a policy's answer.
type Verdict struct {
	Allowed  bool
	Findings []Finding
}

// Allow is allowed, with no findings.
func Allow() Verdict { return Verdict{Allowed: true} }

// FromFindings is denied when any finding is an error, allowed otherwise.
func FromFindings(findings []Finding) Verdict {
	allowed := true
	for _, f := range findings {
		if f.Severity == ErrorSeverity {
			allowed = false
		}
	}
	return Verdict{Allowed: allowed, Findings: findings}
}

// Error is the plugin's refusal of its input: an answer, not a crash.
type Error struct {
	Message string
	// Field is the dotted path of the offending field; empty for none.
	Field string
}

func (e *Error) Error() string { return e.Message }

// NewError is an error about the input as a whole.
func NewError(message string) *Error { return &Error{Message: message} }

// ErrorAt is an error about one field.
func ErrorAt(field, message string) *Error { return &Error{Message: message, Field: field} }

// KindRef is a kind a plugin handles.
type KindRef struct{ APIVersion, Kind string }

// Metadata is what a plugin says about itself.
type Metadata struct {
	Name, Version, Description string
	Kinds                      []KindRef
	// SettingsSchema is a JSON schema (draft 2020-12) as JSON text; empty for none.
	SettingsSchema string
}

// NewMetadata is metadata with a name and a version.
func NewMetadata(name, version string) Metadata { return Metadata{Name: name, Version: version} }

// WithDescription sets the one-line description.
func (m Metadata) WithDescription(d string) Metadata { m.Description = d; return m }

// Handles adds a kind the plugin checks.
func (m Metadata) Handles(apiVersion, kind string) Metadata {
	m.Kinds = append(m.Kinds, KindRef{apiVersion, kind})
	return m
}

// WithSettingsSchema sets the settings schema from JSON text (compacted;
// panics on invalid JSON, a programming error).
func (m Metadata) WithSettingsSchema(schema string) Metadata {
	v, err := ParseJSON(schema)
	if err != nil {
		panic(fmt.Sprintf("settings schema is not valid JSON: %v", err))
	}
	m.SettingsSchema = JSONText(v)
	return m
}

// Operation under review.
type Operation uint8

const (
	Create Operation = iota
	Update
	Delete
)

// UserInfo is who asked for the operation.
type UserInfo struct {
	Username, UID string
	Groups        []string
}

// Object is a Kubernetes object (a JSON object).
type Object struct{ m *Map }

// ParseObject parses JSON text that must be an object; what names it in errors.
func ParseObject(what, text string) (*Object, error) {
	v, err := ParseJSON(text)
	if err != nil {
		return nil, NewError(fmt.Sprintf("%s is not valid JSON: %v", what, err))
	}
	m, ok := v.(*Map)
	if !ok {
		return nil, NewError(what + " must be a JSON object")
	}
	return &Object{m}, nil
}

// Value is the object as a JSON value.
func (o *Object) Value() *Map { return o.m }

func (o *Object) stringAt(path ...string) (string, bool) {
	var cur Value = o.m
	for _, key := range path {
		m, ok := cur.(*Map)
		if !ok {
			return "", false
		}
		if cur, ok = m.Get(key); !ok {
			return "", false
		}
	}
	s, ok := cur.(string)
	return s, ok
}

// Label is one label's value; ok is false when absent or not a string.
func (o *Object) Label(key string) (string, bool) { return o.stringAt("metadata", "labels", key) }

// Annotation is one annotation's value.
func (o *Object) Annotation(key string) (string, bool) {
	return o.stringAt("metadata", "annotations", key)
}

// Name is metadata.name.
func (o *Object) Name() string { s, _ := o.stringAt("metadata", "name"); return s }

// Kind is the object's kind.
func (o *Object) Kind() string { s, _ := o.stringAt("kind"); return s }

// APIVersion is the object's apiVersion.
func (o *Object) APIVersion() string { s, _ := o.stringAt("apiVersion"); return s }

// Review is what a policy is asked to judge.
type Review struct {
	Operation Operation
	// Object after the operation (nil on delete); OldObject before it.
	Object, OldObject *Object
	UserInfo          UserInfo
	Settings          Value
}

// SettingsFields reads fields of the settings.
func (r *Review) SettingsFields() Fields { return NewFields("settings", r.Settings) }
