package sdk

import (
	"errors"
	"fmt"
	"runtime/debug"
)

// LogLevel for Log.
type LogLevel uint8

const (
	LogDebug LogLevel = iota
	LogInfo
	LogWarn
	LogError
)

// Log writes a log line through the host (a no-op outside a component).
func Log(level LogLevel, message string) {
	if logHook != nil {
		logHook(level, message)
	}
}

var logHook func(LogLevel, string)

type policy struct {
	meta     Metadata
	validate func(Review) (Verdict, error)
}

var registered *policy

// RegisterPolicy makes this component a policy plugin; call it from init().
func RegisterPolicy(meta Metadata, validate func(Review) (Verdict, error)) {
	if registered != nil {
		panic("sdk.RegisterPolicy called twice")
	}
	registered = &policy{meta, validate}
}

// Glue for the generated component bindings (guest-sdk/go/glue); not for
// plugin authors.
type Glue struct{}

// RawReview is a review as the WIT carries it.
type RawReview struct {
	Operation         Operation
	Object, OldObject *string
	Username, UID     string
	Groups            []string
	Settings          string
}

// Recover turns a panic in the plugin into a crash report on stderr and a
// trap; the glue defers it in every export.
func (Glue) Recover() {
	if r := recover(); r != nil {
		crash(fmt.Sprintf("panic: %v\n\n%s", r, debug.Stack()))
	}
}

// SetLog installs the host's log function.
func (Glue) SetLog(f func(LogLevel, string)) { logHook = f }

// Metadata of the registered policy.
func (Glue) Metadata() Metadata {
	if registered == nil {
		panic("no policy registered: call sdk.RegisterPolicy from init()")
	}
	return registered.meta
}

// Validate runs the registered policy on a raw review.
func (Glue) Validate(raw RawReview) (Verdict, *Error) {
	if registered == nil {
		panic("no policy registered: call sdk.RegisterPolicy from init()")
	}
	review, err := ReviewFromRaw(raw)
	if err != nil {
		return Verdict{}, err
	}
	v, verr := registered.validate(review)
	if verr != nil {
		var e *Error
		if errors.As(verr, &e) {
			return Verdict{}, e
		}
		return Verdict{}, NewError(verr.Error())
	}
	return v, nil
}

// ReviewFromRaw parses a raw review's JSON fields.
func ReviewFromRaw(raw RawReview) (Review, *Error) {
	r := Review{Operation: raw.Operation, UserInfo: UserInfo{raw.Username, raw.UID, raw.Groups}}
	var err error
	if raw.Object != nil {
		if r.Object, err = ParseObject("object", *raw.Object); err != nil {
			return r, err.(*Error)
		}
	}
	if raw.OldObject != nil {
		if r.OldObject, err = ParseObject("oldObject", *raw.OldObject); err != nil {
			return r, err.(*Error)
		}
	}
	if r.Settings, err = ParseJSON(raw.Settings); err != nil {
		return r, NewError("settings is not valid JSON: " + err.Error())
	}
	return r, nil
}
