package requirelabels

import (
	"testing"

	sdk "tessera.dev/sdk"
)

func review(t *testing.T, labels, settings string, op sdk.Operation) sdk.Review {
	t.Helper()
	obj := `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": ` + labels + `}}`
	r, err := sdk.ReviewFromRaw(sdk.RawReview{Operation: op, Object: &obj, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const settings = `{"requiredLabels": ["team", "env"], "allowedValues": {"env": ["dev", "prod"]}}`

func TestAllowsCompleteLabels(t *testing.T) {
	v, err := Validate(review(t, `{"team": "a", "env": "prod"}`, settings, sdk.Create))
	if err != nil || !v.Allowed || len(v.Findings) != 0 {
		t.Fatalf("got %+v, %v", v, err)
	}
}

func TestOneFindingPerMissingLabelAndBadValue(t *testing.T) {
	v, err := Validate(review(t, `{"env": "qa"}`, settings, sdk.Update))
	if err != nil || v.Allowed || len(v.Findings) != 2 {
		t.Fatalf("got %+v, %v", v, err)
	}
	want := []sdk.Finding{
		{Severity: sdk.ErrorSeverity, Message: `missing required label "team"`, Field: "metadata.labels.team"},
		{Severity: sdk.ErrorSeverity, Message: `label "env" has value "qa"; allowed: dev, prod`, Field: "metadata.labels.env"},
	}
	for i := range want {
		if v.Findings[i] != want[i] {
			t.Errorf("finding %d: got %+v, want %+v", i, v.Findings[i], want[i])
		}
	}
}

func TestDeletesAndEmptySettingsAreAllowed(t *testing.T) {
	if v, _ := Validate(review(t, `{}`, settings, sdk.Delete)); !v.Allowed {
		t.Fatal("delete denied")
	}
	if v, _ := Validate(review(t, `{}`, `{}`, sdk.Create)); !v.Allowed {
		t.Fatal("empty settings denied")
	}
}

func TestWrongSettingsNameTheField(t *testing.T) {
	_, err := Validate(review(t, `{}`, `{"requiredLabels": ["a", 3]}`, sdk.Create))
	e, ok := err.(*sdk.Error)
	if !ok || e.Field != "settings.requiredLabels[1]" || e.Message != "settings.requiredLabels[1] must be a string, got 3" {
		t.Fatalf("got %#v", err)
	}
}
