package sdk

import "fmt"

// Fields is a read-only view of a JSON object at a dotted path; every reader
// returns an *Error naming the full path and showing the offending value.
type Fields struct {
	path  string
	value *Map
}

// NewFields views value (an object, or anything else as none) at path.
func NewFields(path string, value Value) Fields {
	m, _ := value.(*Map)
	return Fields{path: path, value: m}
}

// PathOf is the dotted path of key.
func (f Fields) PathOf(key string) string { return f.path + "." + key }

// Get is the raw value of key; ok is false when absent or null.
func (f Fields) Get(key string) (Value, bool) {
	v, ok := f.value.Get(key)
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

func (f Fields) wrong(key, expected string, got Value) *Error {
	path := f.PathOf(key)
	return ErrorAt(path, fmt.Sprintf("%s must be %s, got %s", path, expected, show(got)))
}

func show(v Value) string {
	text := []rune(JSONText(v))
	if len(text) > 60 {
		return string(text[:57]) + "..."
	}
	return string(text)
}

// Str is a required string.
func (f Fields) Str(key string) (string, error) {
	v, ok := f.Get(key)
	if !ok {
		return "", ErrorAt(f.PathOf(key), f.PathOf(key)+" is required")
	}
	s, ok := v.(string)
	if !ok {
		return "", f.wrong(key, "a string", v)
	}
	return s, nil
}

// OptStrList is an optional list of strings (nil when absent).
func (f Fields) OptStrList(key string) ([]string, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, nil
	}
	items, ok := v.([]Value)
	if !ok {
		return nil, f.wrong(key, "a list of strings", v)
	}
	out := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, f.wrong(fmt.Sprintf("%s[%d]", key, i), "a string", item)
		}
		out = append(out, s)
	}
	return out, nil
}

// OptMap is an optional nested object, keys in order (nil when absent).
func (f Fields) OptMap(key string) (*Map, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, nil
	}
	m, ok := v.(*Map)
	if !ok {
		return nil, f.wrong(key, "an object", v)
	}
	return m, nil
}
