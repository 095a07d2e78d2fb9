package sdk

import "testing"

func TestRustDebug(t *testing.T) {
	for in, want := range map[string]string{
		"team":        `"team"`,
		`a"b\c`:       `"a\"b\\c"`,
		"t\tn\n0\x00": `"t\tn\n0\0"`,
		"\x7f":        `"\u{7f}"`,
		"\u00a0":      `"\u{a0}"`,
		"é ü":         `"é ü"`,
	} {
		if got := RustDebug(in); got != want {
			t.Errorf("RustDebug(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestJSONKeepsKeyOrderAndEscapesLikeSerdeJSON(t *testing.T) {
	v, err := ParseJSON(`{"b": 1, "a": [true, null, "x<\u0001>é"], "c": {"z": 1.50, "y": {}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := JSONText(v), `{"b":1,"a":[true,null,"x<\u0001>é"],"c":{"z":1.50,"y":{}}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if _, err := ParseJSON(`{"a": 1} x`); err == nil {
		t.Fatal("trailing text accepted")
	}
}

func TestFieldsErrorsNameTheField(t *testing.T) {
	v, _ := ParseJSON(`{"list": "nope", "map": [1], "null": null, "long": "` + string(make([]byte, 0)) + `0123456789012345678901234567890123456789012345678901234567890123"}`)
	f := NewFields("settings", v)
	if _, err := f.OptStrList("list"); err == nil || err.(*Error).Message != `settings.list must be a list of strings, got "nope"` || err.(*Error).Field != "settings.list" {
		t.Errorf("list: %v", err)
	}
	if _, err := f.OptMap("map"); err == nil || err.(*Error).Message != `settings.map must be an object, got [1]` {
		t.Errorf("map: %v", err)
	}
	if got, err := f.OptStrList("null"); got != nil || err != nil {
		t.Errorf("null: %v %v", got, err)
	}
	if _, err := f.OptMap("long"); err == nil || err.(*Error).Message != `settings.long must be an object, got "01234567890123456789012345678901234567890123456789012345...` {
		t.Errorf("long: %v", err)
	}
	if _, err := f.Str("missing"); err == nil || err.(*Error).Message != "settings.missing is required" {
		t.Errorf("missing: %v", err)
	}
}

func TestReviewFromRaw(t *testing.T) {
	obj := `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "web", "n": 1}}}`
	r, err := ReviewFromRaw(RawReview{Operation: Update, Object: &obj, Settings: "{}"})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Object.Label("team"); !ok || v != "web" {
		t.Errorf("team label: %q %v", v, ok)
	}
	if _, ok := r.Object.Label("n"); ok {
		t.Error("a non-string label read as a string")
	}
	if r.Object.Name() != "c" || r.Object.Kind() != "ConfigMap" || r.OldObject != nil {
		t.Errorf("got %+v", r)
	}
	bad := `[1]`
	if _, err := ReviewFromRaw(RawReview{Object: &bad, Settings: "{}"}); err == nil || err.Message != "object must be a JSON object" {
		t.Errorf("array object: %v", err)
	}
	if _, err := ReviewFromRaw(RawReview{Settings: "{"}); err == nil {
		t.Error("bad settings accepted")
	}
}

func TestFromFindings(t *testing.T) {
	if !FromFindings([]Finding{FindingWarning("w")}).Allowed || FromFindings([]Finding{FindingError("e").At("f")}).Allowed {
		t.Fatal("allowed is not 'no error finding'")
	}
}
