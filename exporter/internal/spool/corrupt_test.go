package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// losses collects what WithOnCorrupt reports.
type losses struct {
	mu      sync.Mutex
	records []int
	errs    []error
}

func (l *losses) option() Option {
	return WithOnCorrupt(func(records int, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.records = append(l.records, records)
		l.errs = append(l.errs, err)
	})
}

func (l *losses) get() ([]int, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]int(nil), l.records...), append([]error(nil), l.errs...)
}

const perBatch = 10 // audit records in each test batch

// spoolOf writes n batches of perBatch records (payload size size) and
// returns the directory, its segments and the offset of each batch in its
// segment.
func spoolOf(t *testing.T, n, size int, opts ...Option) (dir string, offs []int64) {
	t.Helper()
	dir = t.TempDir()
	s := openT(t, dir, 1<<30, opts...)
	for i := range n {
		offs = append(offs, s.Stats().Bytes)
		if err := s.AppendRecords(payload(uint64(i), size), perBatch); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return dir, offs
}

func damage(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkLoss opens dir and checks the loss reported at Open (records, and
// "at least" in the message when atLeast) and the batches replayed.
func checkLoss(t *testing.T, dir string, records int, atLeast bool, replayed string) {
	t.Helper()
	var l losses
	s := openT(t, dir, 1<<30, l.option())
	recs, errs := l.get()
	if len(recs) != 1 || recs[0] != records {
		t.Fatalf("WithOnCorrupt reported %v (%v), want one loss of %d records", recs, errs, records)
	}
	if !errors.Is(errs[0], ErrCorrupt) || strings.Contains(errs[0].Error(), "at least") != atLeast {
		t.Fatalf("loss error %q: want ErrCorrupt, \"at least\" %v", errs[0], atLeast)
	}
	if st := s.Stats(); st.CorruptRecords != int64(records) || st.CorruptRegions != 1 {
		t.Fatalf("Stats %+v, want CorruptRecords %d in 1 region", st, records)
	}
	if got := fmt.Sprint(indices(t, drain(t, s))); got != replayed {
		t.Fatalf("replayed %s, want %s", got, replayed)
	}
}

// A flipped byte anywhere in a record costs that record's audit records,
// counted as such (not as one batch), whether it hit the payload (the
// header says how many it held) or the header (the next record's number
// says it).
func TestFlippedByteCountsRecords(t *testing.T) {
	const size = 40
	src, offs := spoolOf(t, 5, size)
	seg := segFiles(t, src)[0]
	for pos := offs[2]; pos < offs[3]; pos++ {
		dir := copyDir(t, src)
		damage(t, filepath.Join(dir, filepath.Base(seg)), func(b []byte) []byte { b[pos] ^= 0x10; return b })
		t.Run(fmt.Sprintf("byte %d", pos-offs[2]), func(t *testing.T) {
			checkLoss(t, dir, perBatch, false, "[0 1 3 4]")
		})
	}
}

// A truncated tail: cut inside the last record's payload, its header says
// how many records were lost; cut inside its header, nothing does, and the
// loss is reported as at least one record.
func TestTruncatedTailCountsRecords(t *testing.T) {
	const size = 40
	src, offs := spoolOf(t, 3, size)
	seg := filepath.Base(segFiles(t, src)[0])
	for _, tc := range []struct {
		cut     int64
		records int
		atLeast bool
	}{
		{offs[2] + RecordOverhead + size/2, perBatch, false}, // payload cut
		{offs[2] + RecordOverhead, perBatch, false},          // the whole payload
		{offs[2] + 10, 1, true},                              // header cut
	} {
		dir := copyDir(t, src)
		damage(t, filepath.Join(dir, seg), func(b []byte) []byte { return b[:tc.cut] })
		t.Run(fmt.Sprintf("cut at %d", tc.cut), func(t *testing.T) {
			checkLoss(t, dir, tc.records, tc.atLeast, "[0 1]")
		})
	}
}

// A damaged header at the end of one segment is counted from the first
// record of the next.
func TestDamageAcrossSegments(t *testing.T) {
	src, _ := spoolOf(t, 4, 100, WithSegmentSize(1)) // one batch per segment
	segs := segFiles(t, src)
	if len(segs) != 4 {
		t.Fatalf("%d segments, want 4", len(segs))
	}
	damage(t, segs[1], func(b []byte) []byte { b[8] ^= 0xff; return b }) // batch 1's record count
	checkLoss(t, src, perBatch, false, "[0 2 3]")
}

// Damage found by Oldest after Open is reported there, with the count the
// header gave at Open.
func TestDamageAfterOpenIsReported(t *testing.T) {
	var l losses
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, l.option())
	for i := range uint64(3) {
		if err := s.AppendRecords(payload(i, 100), perBatch+int(i)); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(segFiles(t, dir)[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xde, 0xad}, RecordOverhead+100+RecordOverhead+50); err != nil { // batch 1's payload
		t.Fatal(err)
	}
	f.Close()
	if got := fmt.Sprint(indices(t, drain(t, s))); got != "[0 2]" {
		t.Fatalf("replayed %s, want [0 2]", got)
	}
	if recs, errs := l.get(); len(recs) != 1 || recs[0] != perBatch+1 || !errors.Is(errs[0], ErrCorrupt) {
		t.Fatalf("reported %v %v, want one loss of %d records", recs, errs, perBatch+1)
	}
	if st := s.Stats(); st.CorruptRecords != perBatch+1 {
		t.Fatalf("Stats %+v", st)
	}
}

// Damage in records already acknowledged costs nothing: not reported.
func TestDamageBeforeAckIsNotALoss(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, 1<<30)
	for i := range uint64(3) {
		if err := s.AppendRecords(payload(i, 100), perBatch); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		b, _, _ := s.Oldest()
		if err := s.Ack(b); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	damage(t, segFiles(t, dir)[0], func(b []byte) []byte { b[RecordOverhead+10] ^= 1; b[5] ^= 1; return b })
	var l losses
	s = openT(t, dir, 1<<30, l.option())
	if recs, _ := l.get(); len(recs) != 0 || s.Stats().CorruptRecords != 0 {
		t.Fatalf("reported %v, stats %+v for damage in acknowledged records", recs, s.Stats())
	}
	if got := fmt.Sprint(indices(t, drain(t, s))); got != "[2]" {
		t.Fatalf("replayed %s, want [2]", got)
	}
}

// Segments written before version 2 records (12-byte header, no record
// count) are still read and replayed; a damaged one counts one record.
func TestVersion1SegmentsAreRead(t *testing.T) {
	dir := t.TempDir()
	var seg []byte
	pre := new([20]byte)
	for i := range uint64(3) {
		p := payload(i, 30)
		var h [v1Overhead]byte
		binary.LittleEndian.PutUint32(h[0:4], v1Magic)
		binary.LittleEndian.PutUint32(h[4:8], uint32(len(p)))
		binary.LittleEndian.PutUint32(h[8:12], checksum(pre, 1, int64(len(seg)), uint32(len(p)), p))
		seg = append(append(seg, h[:]...), p...)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	s := openT(t, dir, 1<<30)
	appendT(t, s, payload(3, 30)) // a version 2 record after them
	if got := fmt.Sprint(indices(t, drain(t, s))); got != "[0 1 2 3]" {
		t.Fatalf("replayed %s, want [0 1 2 3]", got)
	}
	s.Close()

	dir = t.TempDir()
	seg[v1Overhead+30+v1Overhead+3] ^= 1 // batch 1's payload
	if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	checkLoss(t, dir, 1, true, "[0 2]")
}

// countingSyncer counts the syncs of a spool, and can fail them.
type countingSyncer struct {
	mu          sync.Mutex
	files, dirs int
	fail        error
}

func (c *countingSyncer) SyncFile(f *os.File) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files++
	if c.fail != nil {
		return c.fail
	}
	return DefaultSyncer().SyncFile(f)
}

func (c *countingSyncer) SyncDir(dir string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs++
	return DefaultSyncer().SyncDir(dir)
}

// Append syncs every record before it returns, and the directory once per
// new segment: a spool that stops syncing fails here.
func TestAppendSyncs(t *testing.T) {
	var c countingSyncer
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, WithSyncer(&c), WithSegmentSize(3*(RecordOverhead+100)))
	for i := range uint64(10) {
		appendT(t, s, payload(i, 100))
		c.mu.Lock()
		files := c.files
		c.mu.Unlock()
		if files != int(i)+1 {
			t.Fatalf("after %d appends: %d file syncs, want one per append", i+1, files)
		}
	}
	segs := len(segFiles(t, dir))
	if segs != 4 {
		t.Fatalf("%d segments, want 4", segs)
	}
	if c.dirs != segs {
		t.Fatalf("%d directory syncs for %d new segments, want one each", c.dirs, segs)
	}

	// WithSync(false) syncs nothing.
	var off countingSyncer
	s2 := openT(t, t.TempDir(), 1<<30, WithSyncer(&off), WithSync(false))
	appendT(t, s2, payload(0, 10))
	if off.files+off.dirs != 0 {
		t.Fatalf("WithSync(false): %d syncs", off.files+off.dirs)
	}
}

// A failed sync fails the Append: the batch is not kept, the next Append
// goes to a fresh segment, and nothing damaged is left behind.
func TestAppendSyncFailure(t *testing.T) {
	c := countingSyncer{}
	dir := t.TempDir()
	s := openT(t, dir, 1<<30, WithSyncer(&c))
	appendT(t, s, payload(0, 50))
	c.fail = syscall.EIO
	if err := s.Append(payload(1, 50)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with a failing sync: %v, want EIO", err)
	}
	c.fail = nil
	appendT(t, s, payload(2, 50))
	if s.Len() != 2 {
		t.Fatalf("Len=%d, want 2", s.Len())
	}
	s.Close()
	reopenIntact(t, dir, "[0 2]")
}

// reopenIntact opens dir and checks that no loss is reported and that
// replayed are the batches replayed.
func reopenIntact(t *testing.T, dir, replayed string) {
	t.Helper()
	var l losses
	s := openT(t, dir, 1<<30, l.option())
	if recs, errs := l.get(); len(recs) != 0 {
		t.Fatalf("losses reported: %v %v", recs, errs)
	}
	if got := fmt.Sprint(indices(t, drain(t, s))); got != replayed {
		t.Fatalf("replayed %s, want %s", got, replayed)
	}
}

func TestDefaultSyncerSyncs(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if err := DefaultSyncer().SyncFile(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// It really calls into the kernel: a closed file fails.
	if err := DefaultSyncer().SyncFile(f); err == nil {
		t.Fatal("SyncFile of a closed file succeeded")
	}
	if err := DefaultSyncer().SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

// An append the disk refuses (ENOSPC, EFBIG) fails with that error and
// keeps nothing; the spool goes on once the disk takes writes again.
func TestAppendWriteFailure(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EFBIG} {
		t.Run(errno.Error(), func(t *testing.T) {
			var fail bool
			dir := t.TempDir()
			s := openT(t, dir, 1<<30, WithWriteAt(func(f *os.File, p []byte, off int64) (int, error) {
				if fail {
					n, _ := f.WriteAt(p[:len(p)/2], off) // a partial write, then the error
					return n, errno
				}
				return f.WriteAt(p, off)
			}))
			appendT(t, s, payload(0, 60))
			fail = true
			if err := s.AppendRecords(payload(1, 60), perBatch); !errors.Is(err, errno) {
				t.Fatalf("Append: %v, want %v", err, errno)
			}
			fail = false
			appendT(t, s, payload(2, 60))
			s.Close()
			reopenIntact(t, dir, "[0 2]") // the failed append left no damage
		})
	}
}

// A damaged region is reported once: reopening the spool (a restart while
// the batches after it still wait for PostgreSQL) does not report or count
// it again, whether Open or Oldest found it.
func TestDamageIsReportedOnce(t *testing.T) {
	src, offs := spoolOf(t, 4, 100)
	seg := segFiles(t, src)[0]
	damage(t, seg, func(b []byte) []byte { b[offs[1]+RecordOverhead+5] ^= 1; return b }) // found by Open
	var l losses
	s := openT(t, src, 1<<30, l.option())
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, offs[2]+RecordOverhead+7); err != nil { // found by Oldest
		t.Fatal(err)
	}
	f.Close()
	b, ok, err := s.Oldest() // batch 0, intact: replayed but not acknowledged
	if !ok || err != nil || checkPayload(t, b.Data) != 0 {
		t.Fatalf("Oldest: %v %v", ok, err)
	}
	if err := s.Ack(b); err != nil {
		t.Fatal(err)
	}
	if b, _, _ = s.Oldest(); checkPayload(t, b.Data) != 3 {
		t.Fatal("want batch 3 after the two damaged ones")
	}
	if recs, _ := l.get(); fmt.Sprint(recs) != fmt.Sprint([]int{perBatch, perBatch}) {
		t.Fatalf("reported %v, want two losses of %d", recs, perBatch)
	}
	s.Close() // batch 3 not acknowledged: the damaged records are still ahead of the ack cursor

	for range 2 {
		var again losses
		s = openT(t, src, 1<<30, again.option())
		if recs, _ := again.get(); len(recs) != 0 || s.Stats().CorruptRecords != 0 {
			t.Fatalf("after a restart: reported %v again, stats %+v", recs, s.Stats())
		}
		if got := fmt.Sprint(indices(t, drain0(t, s))); got != "[3]" {
			t.Fatalf("replayed %s, want [3]", got)
		}
		s.Close()
	}
}

// drain0 returns the pending payloads without acknowledging the last one.
func drain0(t *testing.T, s *Spool) [][]byte {
	t.Helper()
	b, ok, err := s.Oldest()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return [][]byte{b.Data}
}
