package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// payload returns the deterministic batch number i: its index followed by
// pseudo-random bytes, of a length that varies with i.
func payload(i uint64, size int) []byte {
	if size < 8 {
		size = 8
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint64(b, i)
	r := rand.New(rand.NewPCG(i, 0x5eed))
	for j := 8; j < size; j++ {
		b[j] = byte(r.Uint32())
	}
	return b
}

func varSize(i uint64) int { return 64 + int(i*7919%20000) }

// checkPayload verifies that b is a payload made by payload() and returns its index.
func checkPayload(t testing.TB, b []byte) uint64 {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("payload of %d bytes is too short", len(b))
	}
	i := binary.LittleEndian.Uint64(b)
	if !bytes.Equal(b, payload(i, len(b))) {
		t.Fatalf("payload %d (%d bytes) is corrupt", i, len(b))
	}
	return i
}

func openT(t testing.TB, dir string, maxBytes int64, opts ...Option) *Spool {
	t.Helper()
	s, err := Open(dir, maxBytes, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func appendT(t testing.TB, s *Spool, b []byte) {
	t.Helper()
	if err := s.Append(b); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// drain acknowledges every pending batch and returns their payloads in order.
func drain(t testing.TB, s *Spool) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		b, ok, err := s.Oldest()
		if err != nil {
			t.Fatalf("Oldest: %v", err)
		}
		if !ok {
			return out
		}
		out = append(out, b.Data)
		if err := s.Ack(b); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestAppendReplayOrder(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, WithSegmentSize(16<<10), WithSync(false))
	const n = 200
	var total int64
	for i := range uint64(n) {
		p := payload(i, varSize(i)%3000)
		total += RecordOverhead + int64(len(p))
		appendT(t, s, p)
	}
	if s.Len() != n || s.Bytes() != total {
		t.Fatalf("Len=%d Bytes=%d, want %d and %d", s.Len(), s.Bytes(), n, total)
	}
	if got := len(segFiles(t, dir)); got < 10 {
		t.Fatalf("%d segments, want rotation into many", got)
	}
	got := drain(t, s)
	if len(got) != n {
		t.Fatalf("replayed %d batches, want %d", len(got), n)
	}
	for want, b := range got {
		if i := checkPayload(t, b); i != uint64(want) {
			t.Fatalf("batch %d replayed at position %d", i, want)
		}
	}
	if s.Len() != 0 || s.Bytes() != 0 || len(segFiles(t, dir)) != 0 {
		t.Fatalf("after drain: Len=%d Bytes=%d files=%v", s.Len(), s.Bytes(), segFiles(t, dir))
	}
	// Oldest on an empty spool, then appending again works.
	if _, ok, err := s.Oldest(); ok || err != nil {
		t.Fatalf("Oldest on empty spool: ok=%v err=%v", ok, err)
	}
	appendT(t, s, payload(n, 100))
	if got := drain(t, s); len(got) != 1 || checkPayload(t, got[0]) != n {
		t.Fatalf("append after drain: %d batches", len(got))
	}
}

func TestOldestIsStableUntilAck(t *testing.T) {
	s := openT(t, t.TempDir(), 1<<20, WithSync(false))
	appendT(t, s, payload(1, 50))
	appendT(t, s, payload(2, 50))
	a, _, _ := s.Oldest()
	b, _, _ := s.Oldest()
	if checkPayload(t, a.Data) != 1 || checkPayload(t, b.Data) != 1 {
		t.Fatal("Oldest must return the same batch until it is acked")
	}
	if err := s.Ack(a); err != nil {
		t.Fatal(err)
	}
	c, _, _ := s.Oldest()
	if err := s.Ack(a); err != nil { // double ack: no-op
		t.Fatalf("double ack: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len=%d after double ack, want 1", s.Len())
	}
	if err := s.Ack(Batch{seq: c.seq, off: c.off + 1}); !errors.Is(err, ErrNotOldest) {
		t.Fatalf("ack of unknown position: %v, want ErrNotOldest", err)
	}
	if err := s.Ack(c); err != nil || s.Len() != 0 {
		t.Fatalf("ack: %v, Len=%d", err, s.Len())
	}
}

func TestAckOutOfOrder(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<20, WithSync(false))
	appendT(t, s, payload(1, 50))
	appendT(t, s, payload(2, 50))
	first, _, _ := s.Oldest()
	second := Batch{seq: first.seq, off: first.off + RecordOverhead + 50}
	if err := s.Ack(second); !errors.Is(err, ErrNotOldest) {
		t.Fatalf("out-of-order ack: %v, want ErrNotOldest", err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len=%d, want 2", s.Len())
	}
}

func TestPersistAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, WithSegmentSize(4<<10))
	for i := range uint64(50) {
		appendT(t, s, payload(i, 300))
	}
	// Ack 20 of them: several whole segments and part of one.
	for range 20 {
		b, ok, err := s.Oldest()
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
	bytesBefore := s.Bytes()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, _, err := s.Oldest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Oldest after Close: %v", err)
	}

	s2 := openT(t, dir, 1<<30, WithSegmentSize(4<<10))
	if s2.Len() != 30 || s2.Bytes() != bytesBefore {
		t.Fatalf("reopened: Len=%d Bytes=%d, want 30 and %d", s2.Len(), s2.Bytes(), bytesBefore)
	}
	appendT(t, s2, payload(50, 300))
	got := drain(t, s2)
	if len(got) != 31 {
		t.Fatalf("replayed %d, want 31", len(got))
	}
	for k, b := range got {
		if i := checkPayload(t, b); i != uint64(20+k) {
			t.Fatalf("position %d: batch %d, want %d", k, i, 20+k)
		}
	}
}

func TestSegmentNumbersNeverReused(t *testing.T) {
	// After a full drain only the ACK file remembers the last segment number;
	// a reused number would make the stale ACK skip new batches.
	dir := t.TempDir()
	s := openT(t, dir, 1<<20)
	appendT(t, s, payload(1, 100))
	appendT(t, s, payload(2, 100))
	drain(t, s)
	s.Close()
	s = openT(t, dir, 1<<20)
	appendT(t, s, payload(3, 100))
	s.Close()
	s = openT(t, dir, 1<<20)
	got := drain(t, s)
	if len(got) != 1 || checkPayload(t, got[0]) != 3 {
		t.Fatalf("got %d batches, want batch 3", len(got))
	}
	if files := segFiles(t, dir); len(files) != 0 {
		t.Fatalf("segments left: %v", files)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<20)
	if _, err := Open(dir, 1<<20); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	} else if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the directory", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, 1<<20)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestOpenArguments(t *testing.T) {
	if _, err := Open(t.TempDir(), 0); err == nil {
		t.Fatal("maxBytes 0 accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := Open(f, 1<<20); err == nil {
		t.Fatal("Open on a regular file succeeded")
	}
	// Creates nested directories.
	s := openT(t, filepath.Join(t.TempDir(), "a", "b"), 1<<20)
	appendT(t, s, []byte{}) // an empty batch is a valid batch
	b, ok, err := s.Oldest()
	if !ok || err != nil || len(b.Data) != 0 {
		t.Fatalf("empty batch: ok=%v err=%v len=%d", ok, err, len(b.Data))
	}
}

// writeSegment builds a spool directory with one segment holding batches
// 0..n-1 of the given size and returns the segment path and record offsets.
func writeSegment(t *testing.T, n int, size int) (dir, seg string, offs []int64) {
	t.Helper()
	dir = t.TempDir()
	s := openT(t, dir, 1<<30)
	var off int64
	for i := range n {
		offs = append(offs, off)
		appendT(t, s, payload(uint64(i), size))
		off += RecordOverhead + int64(size)
	}
	s.Close()
	files := segFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("want 1 segment, have %v", files)
	}
	return dir, files[0], offs
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == lockName {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func indices(t testing.TB, bs [][]byte) []uint64 {
	out := make([]uint64, 0, len(bs))
	for _, b := range bs {
		out = append(out, checkPayload(t, b))
	}
	return out
}

func TestTornLastRecordEveryOffset(t *testing.T) {
	const size = 40
	src, seg, offs := writeSegment(t, 3, size)
	full, _ := os.ReadFile(seg)
	last := offs[2]
	for cut := last; cut < int64(len(full)); cut++ {
		for _, tail := range []string{"truncated", "zero-filled"} {
			dir := copyDir(t, src)
			path := filepath.Join(dir, filepath.Base(seg))
			data := append([]byte(nil), full[:cut]...)
			if tail == "zero-filled" { // ext4 after a power loss: size grew, data did not land
				data = append(data, make([]byte, int64(len(full))-cut)...)
			}
			os.WriteFile(path, data, 0o600)

			s, err := Open(dir, 1<<30)
			if err != nil {
				t.Fatalf("cut %d %s: Open: %v", cut, tail, err)
			}
			if s.Len() != 2 || s.Bytes() != last {
				t.Fatalf("cut %d %s: Len=%d Bytes=%d, want 2 and %d", cut, tail, s.Len(), s.Bytes(), last)
			}
			wantCorrupt := int64(0)
			if int64(len(data)) > last {
				wantCorrupt = 1
			}
			if st := s.Stats(); st.CorruptRecords != wantCorrupt || st.CorruptBytes != int64(len(data))-last {
				t.Fatalf("cut %d %s: stats %+v", cut, tail, st)
			}
			if fi, _ := os.Stat(path); fi.Size() != last {
				t.Fatalf("cut %d %s: damaged tail not truncated: size %d, want %d", cut, tail, fi.Size(), last)
			}
			appendT(t, s, payload(3, size))
			s.Close()

			s = openT(t, dir, 1<<30)
			if st := s.Stats(); st.CorruptRecords != 0 {
				t.Fatalf("cut %d %s: corruption after recovery: %+v", cut, tail, st)
			}
			if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[0 1 3]" {
				t.Fatalf("cut %d %s: replayed %v, want [0 1 3]", cut, tail, got)
			}
			s.Close()
		}
	}
}

func TestBitFlipInMiddleRecordResyncs(t *testing.T) {
	const size = 30
	src, seg, offs := writeSegment(t, 5, size)
	full, _ := os.ReadFile(seg)
	// Flip every bit of record 2 (header and payload), one at a time.
	for pos := offs[2]; pos < offs[3]; pos++ {
		for bit := range 8 {
			dir := copyDir(t, src)
			data := append([]byte(nil), full...)
			data[pos] ^= 1 << bit
			os.WriteFile(filepath.Join(dir, filepath.Base(seg)), data, 0o600)
			s, err := Open(dir, 1<<30)
			if err != nil {
				t.Fatalf("flip %d.%d: %v", pos, bit, err)
			}
			st := s.Stats()
			if st.CorruptRecords != 1 || st.CorruptBytes != RecordOverhead+size {
				t.Fatalf("flip %d.%d: stats %+v", pos, bit, st)
			}
			if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[0 1 3 4]" {
				t.Fatalf("flip %d.%d: replayed %v, want [0 1 3 4]", pos, bit, got)
			}
			s.Close()
		}
	}
}

func TestEmbeddedRecordDoesNotResync(t *testing.T) {
	// A payload that contains a well-formed record (built with this very
	// checksum) must not be picked up when the record around it is damaged:
	// the checksum binds a record to its position.
	dir := t.TempDir()
	s := openT(t, dir, 1<<30)
	inner := payload(99, 20)
	var hdr [RecordOverhead]byte
	putHeader(new([20]byte), hdr[:], 1, 0, inner, 1, 0)
	outer := append(append(payload(1, 8), hdr[:]...), inner...)
	appendT(t, s, payload(0, 30))
	appendT(t, s, outer)
	appendT(t, s, payload(2, 30))
	s.Close()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	data[RecordOverhead+30+5] ^= 0xff // damage the length of the outer record
	os.WriteFile(seg, data, 0o600)
	s = openT(t, dir, 1<<30)
	if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[0 2]" {
		t.Fatalf("replayed %v, want [0 2]", got)
	}
}

func TestCorruptionAfterOpenIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<30)
	for i := range uint64(3) {
		appendT(t, s, payload(i, 100))
	}
	f, err := os.OpenFile(segFiles(t, dir)[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xde, 0xad}, RecordOverhead+50) // inside batch 0's payload
	f.Close()
	if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("replayed %v, want [1 2]", got)
	}
	if st := s.Stats(); st.CorruptRecords != 1 || st.Batches != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestGarbageFilesDoNotPanic(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 100_000)
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	os.WriteFile(filepath.Join(dir, segName(3)), junk, 0o600)
	os.WriteFile(filepath.Join(dir, "not-a-number.seg"), junk[:10], 0o600)
	os.WriteFile(filepath.Join(dir, segName(0)), junk[:10], 0o600) // seq 0 is invalid: ignored
	os.WriteFile(filepath.Join(dir, ackName), junk[:24], 0o600)
	os.Mkdir(filepath.Join(dir, segName(9)), 0o700) // a directory, not a segment
	s := openT(t, dir, 1<<30)
	if s.Len() != 0 {
		t.Fatalf("Len=%d from garbage", s.Len())
	}
	appendT(t, s, payload(7, 10))
	if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[7]" {
		t.Fatalf("got %v", got)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte("USPL\x05\x00\x00\x00\x00\x00\x00\x00hello"), []byte{})
	f.Add(bytes.Repeat([]byte("USPL"), 20), bytes.Repeat([]byte{0xff}, 24))
	f.Fuzz(func(t *testing.T, seg, ack []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600)
		os.WriteFile(filepath.Join(dir, ackName), ack, 0o600)
		s, err := Open(dir, 1<<30, WithSync(false))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		n := s.Len()
		if got := drain(t, s); len(got) != n {
			t.Fatalf("Len=%d but drained %d", n, len(got))
		}
		if err := s.Append([]byte("ok")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestErrFullExact(t *testing.T) {
	dir := t.TempDir()
	const rec = RecordOverhead + 100
	max := int64(3*rec + RecordOverhead + 7)
	// One record per segment, so an ack frees space at once.
	s := openT(t, dir, max, WithSegmentSize(rec))
	for i := range uint64(3) {
		appendT(t, s, payload(i, 100))
	}
	if err := s.Append(payload(3, 8)); !errors.Is(err, ErrFull) {
		t.Fatalf("Append of 1 byte too many: %v, want ErrFull", err)
	}
	if s.Len() != 3 || s.Bytes() != 3*rec || len(segFiles(t, dir)) != 3 {
		t.Fatalf("a refused Append wrote something: Len=%d Bytes=%d files=%d", s.Len(), s.Bytes(), len(segFiles(t, dir)))
	}
	appendT(t, s, payload(3, 7)[:7]) // fits exactly
	if s.Bytes() != max {
		t.Fatalf("Bytes=%d, want exactly %d", s.Bytes(), max)
	}
	if err := s.Append(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("empty Append on a full spool: %v, want ErrFull", err)
	}
	var onDisk int64
	for _, f := range segFiles(t, dir) {
		fi, _ := os.Stat(f)
		onDisk += fi.Size()
	}
	if onDisk != max {
		t.Fatalf("segment files hold %d bytes, Bytes says %d", onDisk, max)
	}
	b, _, _ := s.Oldest()
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	if s.Bytes() != max-rec {
		t.Fatalf("after ack Bytes=%d, want %d", s.Bytes(), max-rec)
	}
	appendT(t, s, payload(4, 100))
	if err := s.Append(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	if s.MaxBytes() != max {
		t.Fatal("MaxBytes")
	}
	s.Close()
	// Reopened with a smaller bound: nothing is dropped, appends are refused.
	s = openT(t, dir, rec)
	if s.Len() != 4 {
		t.Fatalf("Len=%d, want 4", s.Len())
	}
	if err := s.Append(nil); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
}

func TestSegmentDeletedOnlyWhenFullyAcked(t *testing.T) {
	dir := t.TempDir()
	const rec = RecordOverhead + 100
	s := openT(t, dir, 1<<20, WithSegmentSize(3*rec))
	for i := range uint64(8) { // segments of 3, 3, 2 (the last is active)
		appendT(t, s, payload(i, 100))
	}
	if n := len(segFiles(t, dir)); n != 3 {
		t.Fatalf("%d segments, want 3", n)
	}
	wantFiles := []int{3, 3, 2, 2, 2, 1, 1, 0}
	for k, want := range wantFiles {
		b, ok, err := s.Oldest()
		if !ok || err != nil {
			t.Fatal(ok, err)
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
		if n := len(segFiles(t, dir)); n != want {
			t.Fatalf("after %d acks: %d segment files, want %d", k+1, n, want)
		}
		if s.Stats().Segments != want {
			t.Fatalf("Stats.Segments=%d, want %d", s.Stats().Segments, want)
		}
	}
	if s.Bytes() != 0 {
		t.Fatalf("Bytes=%d after full drain", s.Bytes())
	}
}

func TestCrashBetweenAckAndDelete(t *testing.T) {
	dir := t.TempDir()
	const rec = RecordOverhead + 100
	s := openT(t, dir, 1<<20, WithSegmentSize(3*rec))
	for i := range uint64(6) {
		appendT(t, s, payload(i, 100))
	}
	first := segFiles(t, dir)[0]
	saved, _ := os.ReadFile(first)
	for range 4 {
		b, _, _ := s.Oldest()
		s.Ack(b)
	}
	s.Close()
	// The first segment's deletion is undone, as if the crash came before it.
	os.WriteFile(first, saved, 0o600)
	s = openT(t, dir, 1<<20, WithSegmentSize(3*rec))
	if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[4 5]" {
		t.Fatalf("replayed %v, want [4 5]", got)
	}
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Fatalf("acknowledged segment left behind: %v", err)
	}
}

func TestLostAckReplaysAgain(t *testing.T) {
	// Losing the ACK file (power loss before writeback) replays, never loses.
	dir := t.TempDir()
	s := openT(t, dir, 1<<20)
	for i := range uint64(4) {
		appendT(t, s, payload(i, 100))
	}
	b, _, _ := s.Oldest()
	s.Ack(b)
	s.Close()
	os.Remove(filepath.Join(dir, ackName))
	s = openT(t, dir, 1<<20)
	if got := indices(t, drain(t, s)); fmt.Sprint(got) != "[0 1 2 3]" {
		t.Fatalf("replayed %v, want [0 1 2 3]", got)
	}
}

func TestConcurrentAppendAndReplay(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, WithSegmentSize(8<<10), WithSync(false))
	const n = 3000
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range uint64(n) {
			if err := s.Append(payload(i, 20+int(i%500))); err != nil {
				t.Errorf("Append: %v", err)
				return
			}
		}
	}()
	go func() { // observers
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
				_ = s.Len()
				_ = s.Bytes()
				_ = s.Stats()
			}
		}
	}()
	var next uint64
	deadline := time.After(60 * time.Second)
	for next < n {
		b, ok, err := s.Oldest()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			select {
			case <-s.Appended():
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatalf("replayed %d of %d", next, n)
			}
			continue
		}
		if i := checkPayload(t, b.Data); i != next {
			t.Fatalf("replayed batch %d, want %d", i, next)
		}
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
		next++
	}
	wg.Wait()
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Fatalf("Len=%d Bytes=%d after drain", s.Len(), s.Bytes())
	}
}

func benchmarkAppend(b *testing.B, size int, sync bool) {
	dir := b.TempDir()
	s, err := Open(dir, 1<<40, WithSync(sync))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := payload(1, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.Append(p); err != nil {
			b.Fatal(err)
		}
		if s.Bytes() > 64<<20 { // keep the disk footprint small
			b.StopTimer()
			drain(b, s)
			b.StartTimer()
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	b.Run("1KB", func(b *testing.B) { benchmarkAppend(b, 1<<10, true) })
	b.Run("300KB", func(b *testing.B) { benchmarkAppend(b, 300<<10, true) })
	b.Run("1KB-nosync", func(b *testing.B) { benchmarkAppend(b, 1<<10, false) })
	b.Run("300KB-nosync", func(b *testing.B) { benchmarkAppend(b, 300<<10, false) })
}

func BenchmarkReplay300KB(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(dir, 1<<40, WithSync(false))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	p := payload(1, 300<<10)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := s.Append(p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		bt, ok, err := s.Oldest()
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		if err := s.Ack(bt); err != nil {
			b.Fatal(err)
		}
	}
}
