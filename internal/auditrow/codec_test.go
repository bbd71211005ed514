package auditrow

import (
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"unsafe"
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

// TestCodecReadsVersion1 decodes rows written by the codec of version 1,
// the format of spool files on disk before the column table.
func TestCodecReadsVersion1(t *testing.T) {
	b, err := os.ReadFile("testdata/rows-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != codecV1 {
		t.Fatalf("testdata starts with version %d, want %d", b[0], codecV1)
	}
	got, err := DecodeRows(b)
	if err != nil {
		t.Fatal(err)
	}
	if want := legacyRows(); !reflect.DeepEqual(got, want) {
		t.Errorf("version 1 batch:\n got %+v\nwant %+v", got, want)
	}
	// Written again, it is the current version and decodes the same.
	again, err := DecodeRows(AppendRows(nil, got))
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("re-encoded: %v\n got %+v\nwant %+v", err, again, got)
	}
}

// TestCodecHeaderNamesColumns: a batch written before a column existed
// decodes with that column zero; a column this version does not know is
// refused rather than dropped.
func TestCodecHeaderNamesColumns(t *testing.T) {
	header := func(names ...string) []byte {
		b := []byte{codecV2}
		b = binary.AppendUvarint(b, uint64(len(names)))
		for _, n := range names {
			b = binary.AppendUvarint(b, uint64(len(n)))
			b = append(b, n...)
			b = append(b, byte(Columns[max(ColumnIndex(n), 0)].Kind))
		}
		return b
	}
	b := header("tool_name", "latency_ms")
	b = binary.AppendUvarint(b, 1)
	b = binary.AppendUvarint(b, 4)
	b = append(b, "echo"...)
	b = binary.AppendVarint(b, 7)
	got, err := DecodeRows(b)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], Row{ToolName: "echo", LatencyMS: 7}) {
		t.Errorf("subset of columns: %+v, %v", got, err)
	}
	b = header("tool_name", "no_such_column")
	b = binary.AppendUvarint(b, 0)
	if _, err := DecodeRows(b); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no_such_column") {
		t.Errorf("unknown column: err = %v", err)
	}
}

// TestColumnsMatchRow checks that the column table covers every Row field
// exactly once, each through the accessor its kind names.
func TestColumnsMatchRow(t *testing.T) {
	var r Row
	seen := map[uintptr]string{}
	base := uintptr(unsafe.Pointer(&r))
	for _, c := range Columns {
		var p unsafe.Pointer
		set := 0
		if c.UUID != nil {
			set++
			p = unsafe.Pointer(c.UUID(&r))
		}
		if c.Time != nil {
			set++
			p = unsafe.Pointer(c.Time(&r))
		}
		if c.Text != nil {
			set++
			p = unsafe.Pointer(c.Text(&r))
		}
		if c.Int64 != nil {
			set++
			p = unsafe.Pointer(c.Int64(&r))
		}
		if c.Bytes != nil {
			set++
			p = unsafe.Pointer(c.Bytes(&r))
		}
		want := map[Kind]bool{KindUUID: c.UUID != nil, KindTime: c.Time != nil, KindText: c.Text != nil,
			KindNullText: c.Text != nil, KindInt64: c.Int64 != nil, KindJSON: c.Bytes != nil}[c.Kind]
		if set != 1 || !want {
			t.Errorf("column %s: %d accessors set, kind %d", c.Name, set, c.Kind)
			continue
		}
		off := uintptr(p) - base
		if other, dup := seen[off]; dup {
			t.Errorf("columns %s and %s read the same field", c.Name, other)
		}
		seen[off] = c.Name
		if (c.Kind == KindNullText || c.Kind == KindJSON) != c.Nullable {
			t.Errorf("column %s: kind %d but nullable = %v", c.Name, c.Kind, c.Nullable)
		}
	}
	if n := reflect.TypeFor[Row]().NumField(); len(seen) != n {
		t.Errorf("%d columns read %d distinct fields; Row has %d", len(Columns), len(seen), n)
	}
}
