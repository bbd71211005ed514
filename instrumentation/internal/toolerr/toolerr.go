package toolerr

import (
	"strings"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/bound"
)

// MaxBytes bounds the text Text joins, a guard against results of any size;
// the Auditor bounds what it records much lower (otelaudit.DefaultMaxErrorBytes
// by default), with the size and SHA-256 of what it was given.
const MaxBytes = otelaudit.MaxStoredArgsBytes

// Text joins with newlines the texts of the contents of a failed tool
// result, as text reports them (false for a content that is not text). It
// stops at MaxBytes, without splitting a UTF-8 sequence.
func Text[C any](contents []C, text func(C) (string, bool)) string {
	var b strings.Builder
	for _, c := range contents {
		t, ok := text(c)
		if !ok {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		if b.Len()+len(t) > MaxBytes {
			b.WriteString(bound.Prefix(t, MaxBytes-b.Len()))
			break
		}
		b.WriteString(t)
	}
	return b.String()
}
