package sdk

import (
	"fmt"
	"strings"
	"unicode"
)

// RustDebug quotes text as Rust's `{:?}` writes a string, so messages match
// the Rust plugins' `format!("{label:?}")` byte for byte for the usual text
// (non-printable characters become `\u{..}` as in Rust; Rust's printable
// table is approximated with Go's unicode.IsPrint, like the Python SDK's
// rust_debug).
func RustDebug(text string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range text {
		switch r {
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\n':
			b.WriteString(`\n`)
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case 0:
			b.WriteString(`\0`)
		default:
			if r != ' ' && !unicode.IsPrint(r) {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
