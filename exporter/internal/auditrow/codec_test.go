package auditrow

import (
	"errors"
	"reflect"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	recs := []Record{sampleRecord(), sampleRecord(), {EventName: "x"}}
	var m Mapper
	rows, _ := m.MapAll(nil, recs)
	rows = append(rows, Row{ClientSubject: "only", RequestArgs: []byte{}, ErrorMessage: "boom", LatencyMS: -3})
	for i := range rows {
		rows[i].Timestamp = rows[i].Timestamp.UTC()
	}
	got, err := DecodeRows(AppendRows(nil, rows))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rows) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, rows)
	}
}

func TestCodecRejectsCorruptInput(t *testing.T) {
	var m Mapper
	recs := []Record{sampleRecord()}
	rows, _ := m.MapAll(nil, recs)
	enc := AppendRows(nil, rows)
	for n := 0; n < len(enc); n++ {
		if _, err := DecodeRows(enc[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: err = %v, want ErrCorrupt", n, err)
		}
	}
	if _, err := DecodeRows(append(enc, 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: err = %v", err)
	}
	if _, err := DecodeRows([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("huge count: err = %v", err)
	}
}

func FuzzDecodeRows(f *testing.F) {
	var m Mapper
	recs := []Record{sampleRecord()}
	rows, _ := m.MapAll(nil, recs)
	f.Add(AppendRows(nil, rows))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := DecodeRows(b) // must never panic
		if err == nil {
			if again, err := DecodeRows(AppendRows(nil, rows)); err != nil || len(again) != len(rows) {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}
