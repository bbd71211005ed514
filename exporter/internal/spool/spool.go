// Package spool is a durable, size-bounded, on-disk FIFO of opaque batches.
// The exporter appends a batch it could not write to Postgres and a
// background replayer reads the oldest batch, writes it, and acknowledges it.
//
// # Directory layout
//
//	LOCK                      exclusive flock held by the open Spool
//	ACK                       the replay cursor (segment number, offset)
//	REPORTED                  damaged regions already reported, so that a restart
//	                          does not report (and count) them again
//	00000000000000000001.seg  segment files, numbered in append order
//
// # Where it lives
//
// The directory must belong to the service user alone: Open refuses one
// that is not owned by the effective user or that its group or others can
// write (ErrUntrusted, with the command that fixes it), because whoever can
// write it can delete spooled records or plant rows that would be replayed
// as audited. Use a directory of the service user's own on a persistent
// local disk, for example /var/lib/<service>/spool with mode 0700 (systemd:
// StateDirectory=<service> with StateDirectoryMode=0700), never a shared
// directory such as /tmp. ACK, LOCK and the segments are opened with
// O_NOFOLLOW and must be regular files of the effective user.
//
// # Segment format
//
// A segment is a plain sequence of records, with no file header. A record
// (version 2) is:
//
//	magic   uint32 LE  0x32505355 ("USP2")
//	length  uint32 LE  payload length in bytes
//	records uint32 LE  number of items (audit records) the payload holds
//	first   uint64 LE  spool-wide number of the payload's first item
//	hcrc    uint32 LE  CRC-32C of seq‖offset‖magic‖length‖records‖first
//	crc     uint32 LE  CRC-32C (Castagnoli) of seq‖offset‖length‖payload
//	payload [length]byte
//
// seq is the segment number and offset the record's byte offset in the
// segment (both uint64 LE, not stored: they are implied by the record's
// position). Binding the checksums to the position means a byte sequence
// that merely looks like a record — for instance one embedded in a payload —
// does not validate when the reader resynchronises after corruption. The
// header has a checksum of its own so that when only the payload is damaged
// the number of items lost is still known; when the header is damaged, the
// next intact record's first number tells it. Records of version 1 (magic
// 0x4C505355 "USPL", a 12-byte header of magic, length and crc, no item
// count), written before, are still read; one counts as one item.
//
// # Guarantees
//
//   - Append returns nil only after the record is written and fsynced
//     (fdatasync; the directory is fsynced when a segment is created), so a
//     batch whose Append returned survives a process crash and a power loss.
//     Both go through the Syncer (WithSyncer), so tests can see them.
//   - A torn last record (crash mid-write: short header, short payload or bad
//     checksum) fails its checksum; Open truncates the segment to the end of
//     the last valid record, and new appends always go to a fresh segment, so
//     nothing is ever placed after garbage. Records before it are kept.
//   - A corrupt record in the middle of a segment (bit flip) is skipped: the
//     reader scans forward for the next magic whose record validates and
//     resumes there, so only the damaged record(s) are lost.
//   - Every loss is reported with the number of items (audit records, as
//     given to AppendRecords) it cost, not of batches: through the
//     WithOnCorrupt callback, at Open and when Oldest finds a record damaged
//     later, and in Stats (CorruptRecords). Damage in records already
//     acknowledged costs nothing and is not reported.
//   - Ack is persisted to the ACK file with a positional write before it
//     returns (no fsync). A process crash never loses an ack; a power loss may
//     lose recent acks, which replays those batches again — never loses one.
//     Downstream replays are idempotent (unique request_id).
//   - A segment is deleted as soon as every record in it has been acked. Disk
//     space is therefore reclaimed a segment at a time.
//   - Bytes counts the segment files on disk (acked-but-not-yet-deleted
//     records and skipped corrupt bytes included); Append fails with ErrFull,
//     writing nothing, when Bytes()+RecordOverhead+len(batch) > maxBytes.
package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// RecordOverhead is the number of bytes a record takes on disk in addition
// to its payload (its header).
const RecordOverhead = 28

// v1Overhead is the header size of a version 1 record.
const v1Overhead = 12

// DefaultSegmentSize is the size at which a segment is rotated unless
// WithSegmentSize says otherwise.
const DefaultSegmentSize int64 = 8 << 20

// MaxBatchSize is the largest payload a record can hold.
const MaxBatchSize = 1<<31 - 1

const (
	recordMagic = 0x32505355 // "USP2" little endian: version 2 records
	v1Magic     = 0x4C505355 // "USPL": version 1 records, read only
	segSuffix   = ".seg"
	lockName    = "LOCK"
	ackName     = "ACK"
	reportName  = "REPORTED"
	ackMagic    = 0x4B434155 // "UACK"
	ackLen      = 24
	maxSeq      = 1 << 62 // segment numbers above are ignored, so +1 never overflows
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrFull is returned by Append when the batch would make the spool exceed
// its maxBytes. Nothing is written.
var ErrFull = errors.New("spool: full")

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("spool: closed")

// ErrLocked is returned (wrapped) by Open when another Spool, in this or
// another process, holds the directory.
var ErrLocked = errors.New("spool: directory is locked by another spool")

// ErrUntrusted is returned (wrapped) by Open for a directory another user
// could write into (not owned by the effective user, or writable by group
// or others) and for a spool file that is a symbolic link, not a regular
// file, or owned by another user. The message names the path and the fix.
var ErrUntrusted = errors.New("spool: untrusted")

// ErrCorrupt is wrapped by the errors given to the WithOnCorrupt callback.
var ErrCorrupt = errors.New("spool: damaged records")

// ErrNotOldest is returned (wrapped) by Ack when the batch is not the oldest
// unacknowledged one: batches are acknowledged in order.
var ErrNotOldest = errors.New("spool: ack out of order")

// Option configures a Spool.
type Option func(*config)

type config struct {
	segmentSize int64
	sync        bool
	syncer      Syncer
	onCorrupt   func(records int, err error)
	writeAt     func(f *os.File, p []byte, off int64) (int, error)
}

// Syncer makes what Append wrote durable. The spool calls SyncFile on the
// segment after writing each record, and SyncDir on the directory after
// creating a segment file (so that the new file's name survives a power
// loss). Both are skipped under WithSync(false).
type Syncer interface {
	SyncFile(f *os.File) error
	SyncDir(dir string) error
}

// DefaultSyncer is the Syncer of a spool without WithSyncer: fdatasync(2)
// on the segment (fsync where fdatasync does not exist), fsync(2) on the
// directory.
func DefaultSyncer() Syncer { return osSyncer{} }

type osSyncer struct{}

func (osSyncer) SyncFile(f *os.File) error { return datasync(f) }
func (osSyncer) SyncDir(dir string) error  { return syncDir(dir) }

// WithSyncer replaces the Syncer (default DefaultSyncer()), for tests that
// count or fail the syncs. A nil s is ignored.
func WithSyncer(s Syncer) Option {
	return func(c *config) {
		if s != nil {
			c.syncer = s
		}
	}
}

// WithOnCorrupt sets a callback for every damaged region the spool skips:
// records is the number of items (audit records, as given to
// AppendRecords) lost with it, err (wrapping ErrCorrupt) says where and
// why. It is called during Open for the damage found there, before Open
// returns, and from Oldest for a record found damaged later; never with
// the spool's lock held, but the callback must not call Open's spool before
// Open has returned. When the count cannot be known (the header of the
// very last record is damaged) records is 1, and err says "at least".
func WithOnCorrupt(fn func(records int, err error)) Option {
	return func(c *config) { c.onCorrupt = fn }
}

// WithWriteAt replaces the positional write Append uses (default
// (*os.File).WriteAt), for tests: returning syscall.ENOSPC or EFBIG makes
// Append fail as on a full disk or under RLIMIT_FSIZE. Nil is ignored.
func WithWriteAt(fn func(f *os.File, p []byte, off int64) (int, error)) Option {
	return func(c *config) {
		if fn != nil {
			c.writeAt = fn
		}
	}
}

// WithSegmentSize sets the size at which the segment being written is closed
// and a new one started (default DefaultSegmentSize). A batch larger than the
// segment size gets a segment of its own. Values below 1 are ignored.
func WithSegmentSize(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.segmentSize = n
		}
	}
}

// WithSync controls whether Append fsyncs each record (default true). Turning
// it off trades crash durability for speed; it is meant for tests.
func WithSync(on bool) Option {
	return func(c *config) { c.sync = on }
}

// Batch is one spooled payload as returned by Oldest.
type Batch struct {
	// Data is the payload exactly as it was appended. It is owned by the
	// caller.
	Data []byte

	seq uint64 // segment number
	off int64  // record offset within the segment
}

// String names the batch's position, for logs.
func (b Batch) String() string { return fmt.Sprintf("spool batch %d@%d", b.seq, b.off) }

// Stats is a snapshot of the spool's state.
type Stats struct {
	Batches  int   // unacknowledged batches
	Bytes    int64 // bytes of segment files on disk
	Segments int   // segment files on disk
	// CorruptRecords is the number of items (audit records, as given to
	// AppendRecords; a version 1 record counts one) lost in damaged
	// regions skipped since Open, the figure WithOnCorrupt reports.
	CorruptRecords int64
	// CorruptRegions counts those regions (a torn tail, a run of bytes that
	// did not validate, a record found damaged on read: one each).
	CorruptRegions int64
	// CorruptBytes is the number of bytes those regions spanned.
	CorruptBytes int64
}

type record struct {
	off  int64
	n    uint32 // payload length
	hdr  uint8  // header length: RecordOverhead, or v1Overhead for version 1
	recs uint32 // items in the payload
}

// corruptEvent is a loss to report through WithOnCorrupt once the lock is
// released.
type corruptEvent struct {
	records int
	err     error
}

type segment struct {
	seq     uint64
	path    string
	size    int64    // bytes on disk
	records []record // valid records, in offset order
	next    int      // index of the first unacknowledged record
	f       *os.File // open for reading (and writing when active); nil until needed
}

// Spool is a durable FIFO of batches in one directory. Its methods are safe
// for concurrent use: typically one goroutine appends while another replays.
type Spool struct {
	dir      string
	maxBytes int64
	cfg      config

	mu       sync.Mutex
	closed   bool
	lock     *os.File
	ack      *os.File
	segs     []*segment // oldest first; the last is active when active != nil
	active   *segment   // segment being appended to, or nil
	nextSeq  uint64
	bytes    int64
	pending  int
	corruptN int64 // items lost
	corruptR int64 // regions
	corruptB int64
	nextItem uint64         // first number of the next appended record
	events   []corruptEvent // to report, guarded by mu
	// reported holds the damaged regions ("segment-file offset") already
	// reported, persisted in REPORTED; dirty when it changed since.
	reported map[string]bool
	dirty    bool
	buf      []byte
	scratch  [20]byte // checksum prefix, guarded by mu
	notify   chan struct{}
}

// Open opens (creating it if needed) the spool in dir, bounded to maxBytes
// of segment files. It takes an exclusive lock on dir, so only one Spool per
// directory exists at a time, and indexes the segments a previous process
// left behind: their unacknowledged batches are returned by Oldest first.
func Open(dir string, maxBytes int64, opts ...Option) (*Spool, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("spool: maxBytes must be positive, got %d", maxBytes)
	}
	cfg := config{segmentSize: DefaultSegmentSize, sync: true, syncer: osSyncer{}, writeAt: (*os.File).WriteAt}
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		if errors.Is(err, ErrUntrusted) {
			return nil, err
		}
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, cfg: cfg, lock: lock, nextSeq: 1, notify: make(chan struct{}, 1)}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.pruneReported()
	s.report()
	return s, nil
}

// readReported loads REPORTED: one "segment-file offset" line per damaged
// region already reported.
func (s *Spool) readReported() error {
	s.reported = map[string]bool{}
	path := filepath.Join(s.dir, reportName)
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: open %s: %w", path, openErr(path, err))
	}
	defer f.Close()
	if err := checkFile(f); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return fmt.Errorf("spool: read %s: %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			s.reported[line] = true
		}
	}
	return nil
}

// pruneReported forgets the regions of segments that are gone and
// persists the set when it changed.
func (s *Spool) pruneReported() {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := map[string]bool{}
	for _, seg := range s.segs {
		live[filepath.Base(seg.path)] = true
	}
	for k := range s.reported {
		if name, _, _ := strings.Cut(k, " "); !live[name] {
			delete(s.reported, k)
			s.dirty = true
		}
	}
	s.persistReported()
}

// persistReported rewrites REPORTED (write, fsync, rename) when the set
// changed. A failure only means a region may be reported again after a
// restart. Called with s.mu held.
func (s *Spool) persistReported() {
	if !s.dirty || s.closed {
		return
	}
	s.dirty = false
	path := filepath.Join(s.dir, reportName)
	if len(s.reported) == 0 {
		_ = os.Remove(path)
		return
	}
	keys := make([]string, 0, len(s.reported))
	for k := range s.reported {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return
	}
	_, err = f.WriteString(strings.Join(keys, "\n") + "\n")
	if err == nil && s.cfg.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return
	}
	_ = os.Rename(tmp, path)
}

// report hands the losses found so far to the WithOnCorrupt callback. It
// must be called without s.mu held.
func (s *Spool) report() {
	s.mu.Lock()
	ev := s.events
	s.events = nil
	s.persistReported()
	s.mu.Unlock()
	if s.cfg.onCorrupt == nil {
		return
	}
	for _, e := range ev {
		s.cfg.onCorrupt(e.records, e.err)
	}
}

// lost accounts a damaged region of n bytes at off in path that cost
// records items. Called with s.mu held (or before the spool is shared).
func (s *Spool) lost(path string, off, n int64, records int, atLeast bool, why string) {
	key := filepath.Base(path) + " " + strconv.FormatInt(off, 10)
	if s.reported[key] {
		s.corruptB += n // reported before a restart: not lost again
		return
	}
	s.reported[key] = true
	s.dirty = true
	s.corruptN += int64(records)
	s.corruptR++
	s.corruptB += n
	q := ""
	if atLeast {
		q = "at least "
	}
	s.events = append(s.events, corruptEvent{records: records,
		err: fmt.Errorf("%w: %s, offset %d, %d bytes: %s; %s%d records lost", ErrCorrupt, path, off, n, why, q, records)})
}

// load scans the directory: the ACK file, then every segment.
func (s *Spool) load() error {
	ackPath := filepath.Join(s.dir, ackName)
	ack, err := os.OpenFile(ackPath, os.O_RDWR|os.O_CREATE|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("spool: open ack file: %w", openErr(ackPath, err))
	}
	s.ack = ack
	if err := checkFile(ack); err != nil {
		return err
	}
	if err := s.readReported(); err != nil {
		return err
	}
	ackSeq, ackOff, ackOK := readAck(ack)

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read directory: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || seq == 0 || seq > maxSeq {
			continue // not a segment of ours
		}
		if !e.Type().IsRegular() {
			// A symbolic link or a directory under a segment's name is
			// never read (or followed); new segments are numbered past it.
			if seq >= s.nextSeq {
				s.nextSeq = seq + 1
			}
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if ackOK && ackSeq >= s.nextSeq {
		s.nextSeq = ackSeq + 1
	}
	var gap *unknownRegion // damage of unknown size, waiting for the next intact record
	defer func() {
		if gap != nil { // nothing intact after it: at least one record
			s.lost(gap.path, gap.off, gap.n, 1, true, "damaged record header at the end of the spool")
		}
	}()
	for _, seq := range seqs {
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
		path := filepath.Join(s.dir, segName(seq))
		if ackOK && seq < ackSeq {
			// Fully acknowledged before a crash interrupted its deletion.
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: remove acknowledged segment: %w", err)
			}
			continue
		}
		ackFrom := int64(0) // damage before the ack cursor cost nothing
		if ackOK && seq == ackSeq {
			ackFrom = ackOff
		}
		seg, err := s.scanSegment(seq, path, ackFrom, &gap)
		if err != nil {
			return err
		}
		if ackOK && seq == ackSeq {
			for seg.next < len(seg.records) && seg.records[seg.next].off < ackOff {
				seg.next++
			}
		}
		if seg.next == len(seg.records) {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("spool: remove acknowledged segment: %w", err)
			}
			continue
		}
		s.segs = append(s.segs, seg)
		s.bytes += seg.size
		s.pending += len(seg.records) - seg.next
	}
	return nil
}

// unknownRegion is a damaged region whose header could not be read, so the
// number of items it held is known only from the next intact record.
type unknownRegion struct {
	path   string
	off, n int64
	from   uint64 // the item number expected at its start
	counts bool   // false: before the ack cursor, already delivered
}

// header is a parsed record header.
type header struct {
	hdr     int64 // header length
	n       uint32
	recs    uint32
	first   uint64
	v2      bool
	payload bool // the payload is complete and its checksum matches
}

// scanSegment indexes the valid records of one segment, accounts the
// damaged ones (those at or after ackFrom), and truncates a damaged tail.
// gap carries damage of unknown size from segment to segment.
func (s *Spool) scanSegment(seq uint64, path string, ackFrom int64, gap **unknownRegion) (*segment, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, fmt.Errorf("spool: read segment %s: %w", path, openErr(path, err))
	}
	if err := checkFile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	data, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("spool: read segment %s: %w", path, err)
	}
	seg := &segment{seq: seq, path: path, size: int64(len(data))}
	end := int64(0) // end of the last valid record
	var off int64
	for off < int64(len(data)) {
		h, ok := parseHeader(&s.scratch, data[off:], seq, off)
		if ok && h.v2 {
			s.closeGap(gap, h.first)
			if h.first+uint64(h.recs) > s.nextItem {
				s.nextItem = h.first + uint64(h.recs)
			}
		} else if ok && h.payload {
			s.closeGap(gap, 0)
		}
		if ok && h.payload {
			seg.records = append(seg.records, record{off: off, n: h.n, hdr: uint8(h.hdr), recs: h.recs})
			off += h.hdr + int64(h.n)
			end = off
			continue
		}
		if ok {
			// The header is intact, the payload is not (damaged, or cut
			// short): exactly h.recs items are lost.
			next := off + h.hdr + int64(h.n)
			if next > int64(len(data)) {
				next = int64(len(data))
			}
			if off >= ackFrom {
				s.lost(path, off, next-off, int(h.recs), false, "payload checksum mismatch or short payload")
			} else {
				s.corruptB += next - off
			}
			off = next
			continue
		}
		// Damaged header: resynchronise on the next magic that starts a
		// valid record; its first item number tells how many were lost.
		next := resync(&s.scratch, data, seq, off+1)
		if *gap == nil {
			*gap = &unknownRegion{path: path, off: off, from: s.nextItem, counts: off >= ackFrom}
		}
		(*gap).n += next - off
		off = next
	}
	if end < int64(len(data)) {
		if err := os.Truncate(path, end); err != nil {
			return nil, fmt.Errorf("spool: truncate damaged tail of %s: %w", path, err)
		}
		seg.size = end
	}
	return seg, nil
}

// closeGap accounts the pending region of unknown size, now that the next
// intact record starts at item first (0 for a version 1 record, which
// carries no number).
func (s *Spool) closeGap(gap **unknownRegion, first uint64) {
	g := *gap
	if g == nil {
		return
	}
	*gap = nil
	if !g.counts {
		s.corruptB += g.n
		return
	}
	if first > g.from {
		s.lost(g.path, g.off, g.n, int(first-g.from), false, "damaged record header")
		return
	}
	s.lost(g.path, g.off, g.n, 1, true, "damaged record header")
}

// parseHeader reads the header of the record that starts at rec[0], at
// byte pos of segment seq. ok reports an intact header (for version 1,
// whose header has no checksum of its own, an intact record); h.payload
// whether the payload is complete and matches its checksum too.
func parseHeader(pre *[20]byte, rec []byte, seq uint64, pos int64) (h header, ok bool) {
	rest := int64(len(rec))
	if rest < 4 {
		return h, false
	}
	switch binary.LittleEndian.Uint32(rec[0:4]) {
	case recordMagic:
		if rest < RecordOverhead {
			return h, false
		}
		b := rec[:RecordOverhead]
		if headerChecksum(pre, seq, pos, b[0:20]) != binary.LittleEndian.Uint32(b[20:24]) {
			return h, false
		}
		h = header{hdr: RecordOverhead, n: binary.LittleEndian.Uint32(b[4:8]),
			recs: binary.LittleEndian.Uint32(b[8:12]), first: binary.LittleEndian.Uint64(b[12:20]), v2: true}
		if int64(h.n) <= rest-RecordOverhead {
			payload := rec[RecordOverhead : RecordOverhead+int64(h.n)]
			h.payload = checksum(pre, seq, pos, h.n, payload) == binary.LittleEndian.Uint32(b[24:28])
		}
		return h, true
	case v1Magic:
		if rest < v1Overhead {
			return h, false
		}
		n := binary.LittleEndian.Uint32(rec[4:8])
		if int64(n) > rest-v1Overhead {
			return h, false
		}
		payload := rec[v1Overhead : v1Overhead+int64(n)]
		if checksum(pre, seq, pos, n, payload) != binary.LittleEndian.Uint32(rec[8:12]) {
			return h, false
		}
		return header{hdr: v1Overhead, n: n, recs: 1, payload: true}, true
	}
	return h, false
}

// resync returns the offset of the first record with an intact header at
// or after from, or len(data) when there is none.
func resync(pre *[20]byte, data []byte, seq uint64, from int64) int64 {
	var m2, m1 [4]byte
	binary.LittleEndian.PutUint32(m2[:], recordMagic)
	binary.LittleEndian.PutUint32(m1[:], v1Magic)
	for from < int64(len(data)) {
		i2 := bytes.Index(data[from:], m2[:])
		i1 := bytes.Index(data[from:], m1[:])
		i := i2
		if i < 0 || (i1 >= 0 && i1 < i) {
			i = i1
		}
		if i < 0 {
			break
		}
		cand := from + int64(i)
		if _, ok := parseHeader(pre, data[cand:], seq, cand); ok {
			return cand
		}
		from = cand + 1
	}
	return int64(len(data))
}

// headerChecksum computes the CRC-32C of a version 2 header (its first 20
// bytes), bound to the record's position.
func headerChecksum(pre *[20]byte, seq uint64, off int64, hdr []byte) uint32 {
	binary.LittleEndian.PutUint64(pre[0:8], seq)
	binary.LittleEndian.PutUint64(pre[8:16], uint64(off))
	c := crc32.Update(0, castagnoli, pre[:16])
	return crc32.Update(c, castagnoli, hdr)
}

// putHeader fills hdr (RecordOverhead bytes) for a version 2 record of
// payload at (seq, off) holding recs items numbered from first.
func putHeader(pre *[20]byte, hdr []byte, seq uint64, off int64, payload []byte, recs uint32, first uint64) {
	binary.LittleEndian.PutUint32(hdr[0:4], recordMagic)
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[8:12], recs)
	binary.LittleEndian.PutUint64(hdr[12:20], first)
	binary.LittleEndian.PutUint32(hdr[20:24], headerChecksum(pre, seq, off, hdr[0:20]))
	binary.LittleEndian.PutUint32(hdr[24:28], checksum(pre, seq, off, uint32(len(payload)), payload))
}

// checksum computes a record's CRC-32C. pre is scratch space, passed in so
// that it does not escape to the heap on every call (crc32.Update's
// assembly makes any slice it sees escape).
func checksum(pre *[20]byte, seq uint64, off int64, n uint32, payload []byte) uint32 {
	binary.LittleEndian.PutUint64(pre[0:8], seq)
	binary.LittleEndian.PutUint64(pre[8:16], uint64(off))
	binary.LittleEndian.PutUint32(pre[16:20], n)
	c := crc32.Update(0, castagnoli, pre[:])
	return crc32.Update(c, castagnoli, payload)
}

func segName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, segSuffix) }

func readAck(f *os.File) (seq uint64, off int64, ok bool) {
	var b [ackLen]byte
	if n, _ := f.ReadAt(b[:], 0); n != ackLen {
		return 0, 0, false
	}
	if binary.LittleEndian.Uint32(b[0:4]) != ackMagic ||
		crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:24]) {
		return 0, 0, false
	}
	seq = binary.LittleEndian.Uint64(b[4:12])
	o := binary.LittleEndian.Uint64(b[12:20])
	if o > 1<<62 || seq == 0 || seq > maxSeq {
		return 0, 0, false
	}
	return seq, int64(o), true
}

func (s *Spool) writeAck(seq uint64, off int64) error {
	var b [ackLen]byte
	binary.LittleEndian.PutUint32(b[0:4], ackMagic)
	binary.LittleEndian.PutUint64(b[4:12], seq)
	binary.LittleEndian.PutUint64(b[12:20], uint64(off))
	binary.LittleEndian.PutUint32(b[20:24], crc32.Checksum(b[:20], castagnoli))
	if _, err := s.ack.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("spool: write ack: %w", err)
	}
	return nil
}

// Append durably appends batch as one record holding one item: it is
// AppendRecords(batch, 1).
func (s *Spool) Append(batch []byte) error { return s.AppendRecords(batch, 1) }

// AppendRecords durably appends batch as one record that holds records
// items (audit records): the number a loss of this record is reported
// with. It returns ErrFull, writing nothing, when the record would make the
// spool exceed maxBytes.
func (s *Spool) AppendRecords(batch []byte, records int) error {
	if records < 0 || int64(records) > 1<<32-1 {
		return fmt.Errorf("spool: record count %d out of range", records)
	}
	if len(batch) > MaxBatchSize {
		return fmt.Errorf("spool: batch of %d bytes exceeds the %d byte limit: %w", len(batch), MaxBatchSize, ErrFull)
	}
	recLen := RecordOverhead + int64(len(batch))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.bytes+recLen > s.maxBytes {
		return ErrFull
	}
	if s.active != nil && s.active.size > 0 && s.active.size+recLen > s.cfg.segmentSize {
		if err := s.sealActive(); err != nil {
			return err
		}
	}
	if s.active == nil {
		if err := s.newSegment(); err != nil {
			return err
		}
	}
	seg := s.active
	off := seg.size
	// The header is built in s.buf, which lives on the heap anyway: a
	// local array would escape through crc32.Update (one allocation per
	// Append).
	var zero [RecordOverhead]byte
	s.buf = append(append(s.buf[:0], zero[:]...), batch...)
	putHeader(&s.scratch, s.buf[:RecordOverhead], seg.seq, off, batch, uint32(records), s.nextItem)
	_, err := s.cfg.writeAt(seg.f, s.buf, off)
	if err == nil && s.cfg.sync {
		err = s.cfg.syncer.SyncFile(seg.f)
	}
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not pin a huge buffer
	}
	if err != nil {
		// The file's state past off is unknown (a failed fsync may have
		// dropped dirty pages): cut it back and stop writing to it.
		_ = seg.f.Truncate(off)
		_ = s.sealActive()
		return fmt.Errorf("spool: append to %s: %w", seg.path, err)
	}
	seg.records = append(seg.records, record{off: off, n: uint32(len(batch)), hdr: RecordOverhead, recs: uint32(records)})
	s.nextItem += uint64(records)
	seg.size += recLen
	s.bytes += recLen
	s.pending++
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// newSegment creates the next segment file and makes it the active one.
func (s *Spool) newSegment() error {
	seq := s.nextSeq
	path := filepath.Join(s.dir, segName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	s.nextSeq++
	if s.cfg.sync {
		if err := s.cfg.syncer.SyncDir(s.dir); err != nil {
			_ = f.Close()
			_ = os.Remove(path)
			return err
		}
	}
	seg := &segment{seq: seq, path: path, f: f}
	s.segs = append(s.segs, seg)
	s.active = seg
	return nil
}

// sealActive stops appending to the active segment; it is deleted at once
// when it holds nothing unacknowledged.
func (s *Spool) sealActive() error {
	seg := s.active
	if seg == nil {
		return nil
	}
	s.active = nil
	if seg.next == len(seg.records) {
		return s.removeSegment(seg)
	}
	return nil
}

// removeSegment deletes a fully acknowledged segment.
func (s *Spool) removeSegment(seg *segment) error {
	if seg == s.active {
		s.active = nil
	}
	for i, x := range s.segs {
		if x == seg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	s.bytes -= seg.size
	if seg.f != nil {
		_ = seg.f.Close()
		seg.f = nil
	}
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: remove segment: %w", err)
	}
	return nil
}

// Oldest returns the oldest unacknowledged batch. ok is false when the spool
// holds none. Calling Oldest again without Ack returns the same batch. A
// record found damaged on this read (the file changed since Open) is skipped
// and counted in Stats.
func (s *Spool) Oldest() (b Batch, ok bool, err error) {
	b, ok, err = s.oldest()
	s.report()
	return b, ok, err
}

func (s *Spool) oldest() (b Batch, ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Batch{}, false, ErrClosed
	}
	for len(s.segs) > 0 {
		seg := s.segs[0]
		if seg.next == len(seg.records) {
			if seg == s.active {
				return Batch{}, false, nil
			}
			if err := s.removeSegment(seg); err != nil {
				return Batch{}, false, err
			}
			continue
		}
		r := seg.records[seg.next]
		if seg.f == nil {
			f, err := os.OpenFile(seg.path, os.O_RDONLY|noFollow, 0)
			if err != nil {
				return Batch{}, false, fmt.Errorf("spool: open segment: %w", openErr(seg.path, err))
			}
			seg.f = f
		}
		hl := int64(r.hdr)
		buf := make([]byte, hl+int64(r.n))
		_, rerr := seg.f.ReadAt(buf, r.off)
		if rerr == nil {
			if h, ok := parseHeader(&s.scratch, buf, seg.seq, r.off); ok && h.payload && h.n == r.n {
				return Batch{Data: buf[hl:], seq: seg.seq, off: r.off}, true, nil
			}
		}
		// Damaged since Open, or unreadable: skip it. Its header was
		// intact at Open, so its item count is known.
		why := "damaged since Open"
		if rerr != nil {
			why = "unreadable: " + rerr.Error()
		}
		s.lost(seg.path, r.off, hl+int64(r.n), int(r.recs), false, why)
		seg.next++
		s.pending--
	}
	return Batch{}, false, nil
}

// Ack marks b, which must be the batch Oldest returns, as consumed. Acking a
// batch that was already acknowledged is a no-op. When every batch of a
// segment is acknowledged the segment file is deleted.
func (s *Spool) Ack(b Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.segs) == 0 || b.seq < s.segs[0].seq {
		return nil // its segment is gone: already acknowledged
	}
	seg := s.segs[0]
	if b.seq == seg.seq && seg.next > 0 && b.off <= seg.records[seg.next-1].off {
		return nil
	}
	if b.seq != seg.seq || seg.next == len(seg.records) || seg.records[seg.next].off != b.off {
		return fmt.Errorf("spool: ack %v: %w", b, ErrNotOldest)
	}
	r := seg.records[seg.next]
	seg.next++
	s.pending--
	if err := s.writeAck(seg.seq, r.off+RecordOverhead+int64(r.n)); err != nil {
		return err
	}
	if seg.next == len(seg.records) {
		return s.removeSegment(seg)
	}
	return nil
}

// Appended returns a channel that receives a value after an Append, so a
// replayer can wait for work instead of polling. It has a buffer of one: a
// value means "at least one append since the last receive".
func (s *Spool) Appended() <-chan struct{} { return s.notify }

// Len returns the number of unacknowledged batches.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Bytes returns the size of the segment files on disk, the quantity bounded
// by maxBytes.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// MaxBytes returns the bound given to Open.
func (s *Spool) MaxBytes() int64 { return s.maxBytes }

// Stats returns a snapshot of the spool's counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Batches:        s.pending,
		Bytes:          s.bytes,
		Segments:       len(s.segs),
		CorruptRecords: s.corruptN,
		CorruptRegions: s.corruptR,
		CorruptBytes:   s.corruptB,
	}
}

// Close closes the files and releases the directory lock. Unacknowledged
// batches stay on disk for the next Open. Close is idempotent.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeFiles()
}

func (s *Spool) closeFiles() error {
	var errs []error
	for _, seg := range s.segs {
		if seg.f != nil {
			if err := seg.f.Close(); err != nil {
				errs = append(errs, err)
			}
			seg.f = nil
		}
	}
	s.active = nil
	if s.ack != nil {
		if err := s.ack.Close(); err != nil {
			errs = append(errs, err)
		}
		s.ack = nil
	}
	if s.lock != nil {
		if err := s.lock.Close(); err != nil { // closing the fd releases the flock
			errs = append(errs, err)
		}
		s.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync directory: %w", err)
	}
	return nil
}
