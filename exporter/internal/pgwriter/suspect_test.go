package pgwriter

import (
	"strings"
	"testing"
)

func TestSuspectJSON(t *testing.T) {
	for in, want := range map[string]bool{
		`{"n": 1e1000000}`:                    true,
		`[1E+1000]`:                           true,
		`{"n": -2.5e-99999}`:                  true,
		`[` + strings.Repeat("9", 1000) + `]`: true,
		`{"i": 1, "f": 1.5e10, "g": -3E-20}`:  false,
		`{"s": "1e1000000"}`:                  false, // inside a string
		`{"s": "\"1e1000000"}`:                false,
		`{"k\"": 1e999}`:                      false, // three exponent digits: PostgreSQL holds it
		``:                                    false,
	} {
		if got := suspectJSON([]byte(in)); got != want {
			t.Errorf("suspectJSON(%s) = %v, want %v", in, got, want)
		}
	}
}
