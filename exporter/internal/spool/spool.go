// Package spool is a durable, size-bounded, on-disk FIFO of opaque batches.
// The exporter appends a batch it could not write to Postgres and a
// background replayer reads the oldest batch, writes it, and acknowledges it.
//
// # Directory layout
//
//	LOCK                      exclusive flock held by the open Spool
//	ACK                       the replay cursor (segment number, offset)
//	00000000000000000001.seg  segment files, numbered in append order
//
// # Segment format
//
// A segment is a plain sequence of records, with no file header:
//
//	magic   uint32 LE  0x4C505355 ("USPL")
//	length  uint32 LE  payload length in bytes
//	crc     uint32 LE  CRC-32C (Castagnoli) of seq‖offset‖length‖payload
//	payload [length]byte
//
// seq is the segment number and offset the record's byte offset in the
// segment (both uint64 LE, not stored: they are implied by the record's
// position). Binding the checksum to the position means a byte sequence that
// merely looks like a record — for instance one embedded in a payload — does
// not validate when the reader resynchronises after corruption.
//
// # Guarantees
//
//   - Append returns nil only after the record is written and fsynced
//     (fdatasync; the directory is fsynced when a segment is created), so a
//     batch whose Append returned survives a process crash and a power loss.
//   - A torn last record (crash mid-write: short header, short payload or bad
//     checksum) fails its checksum; Open truncates the segment to the end of
//     the last valid record, and new appends always go to a fresh segment, so
//     nothing is ever placed after garbage. Records before it are kept.
//   - A corrupt record in the middle of a segment (bit flip) is skipped: the
//     reader scans forward for the next magic whose record validates and
//     resumes there, so only the damaged record(s) are lost; the skipped bytes
//     are reported by Stats.
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
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// RecordOverhead is the number of bytes a record takes on disk in addition
// to its payload (magic, length and checksum).
const RecordOverhead = 12

// DefaultSegmentSize is the size at which a segment is rotated unless
// WithSegmentSize says otherwise.
const DefaultSegmentSize int64 = 8 << 20

// MaxBatchSize is the largest payload a record can hold.
const MaxBatchSize = 1<<31 - 1

const (
	recordMagic = 0x4C505355 // "USPL" little endian
	segSuffix   = ".seg"
	lockName    = "LOCK"
	ackName     = "ACK"
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

// ErrNotOldest is returned (wrapped) by Ack when the batch is not the oldest
// unacknowledged one: batches are acknowledged in order.
var ErrNotOldest = errors.New("spool: ack out of order")

// Option configures a Spool.
type Option func(*config)

type config struct {
	segmentSize int64
	sync        bool
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
	// CorruptRecords counts damaged regions skipped since Open (a torn tail
	// or a run of bytes that did not validate counts as one each).
	CorruptRecords int64
	// CorruptBytes is the number of bytes those regions spanned.
	CorruptBytes int64
}

type record struct {
	off int64
	n   uint32
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
	corruptN int64
	corruptB int64
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
	cfg := config{segmentSize: DefaultSegmentSize, sync: true}
	for _, o := range opts {
		o(&cfg)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create directory: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", dir, err)
	}
	s := &Spool{dir: dir, maxBytes: maxBytes, cfg: cfg, lock: lock, nextSeq: 1, notify: make(chan struct{}, 1)}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

// load scans the directory: the ACK file, then every segment.
func (s *Spool) load() error {
	ack, err := os.OpenFile(filepath.Join(s.dir, ackName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool: open ack file: %w", err)
	}
	s.ack = ack
	ackSeq, ackOff, ackOK := readAck(ack)

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: read directory: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil || seq == 0 || seq > maxSeq {
			continue // not a segment of ours
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	if ackOK && ackSeq >= s.nextSeq {
		s.nextSeq = ackSeq + 1
	}
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
		seg, err := s.scanSegment(seq, path)
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

// scanSegment indexes the valid records of one segment and truncates a
// damaged tail.
func (s *Spool) scanSegment(seq uint64, path string) (*segment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spool: read segment %s: %w", path, err)
	}
	seg := &segment{seq: seq, path: path, size: int64(len(data))}
	end := int64(0) // end of the last valid record
	var off int64
	for off < int64(len(data)) {
		n, ok := validRecord(&s.scratch, data, seq, off)
		if ok {
			seg.records = append(seg.records, record{off: off, n: n})
			off += RecordOverhead + int64(n)
			end = off
			continue
		}
		// Damaged: resynchronise on the next magic that starts a valid record.
		next := resync(&s.scratch, data, seq, off+1)
		s.corruptN++
		s.corruptB += next - off
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

// validRecord reports whether a complete record with a good checksum starts
// at off, and its payload length.
func validRecord(pre *[20]byte, data []byte, seq uint64, off int64) (uint32, bool) {
	if int64(len(data))-off < RecordOverhead {
		return 0, false
	}
	h := data[off : off+RecordOverhead]
	if binary.LittleEndian.Uint32(h[0:4]) != recordMagic {
		return 0, false
	}
	n := binary.LittleEndian.Uint32(h[4:8])
	if int64(n) > int64(len(data))-off-RecordOverhead {
		return 0, false
	}
	payload := data[off+RecordOverhead : off+RecordOverhead+int64(n)]
	if checksum(pre, seq, off, n, payload) != binary.LittleEndian.Uint32(h[8:12]) {
		return 0, false
	}
	return n, true
}

// resync returns the offset of the first valid record at or after from, or
// len(data) when there is none.
func resync(pre *[20]byte, data []byte, seq uint64, from int64) int64 {
	var magic [4]byte
	binary.LittleEndian.PutUint32(magic[:], recordMagic)
	for from < int64(len(data)) {
		i := bytes.Index(data[from:], magic[:])
		if i < 0 {
			break
		}
		cand := from + int64(i)
		if _, ok := validRecord(pre, data, seq, cand); ok {
			return cand
		}
		from = cand + 1
	}
	return int64(len(data))
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

// Append durably appends batch as one record. It returns ErrFull, writing
// nothing, when the record would make the spool exceed maxBytes.
func (s *Spool) Append(batch []byte) error {
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
	var hdr [RecordOverhead]byte
	binary.LittleEndian.PutUint32(hdr[0:4], recordMagic)
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(len(batch)))
	binary.LittleEndian.PutUint32(hdr[8:12], checksum(&s.scratch, seg.seq, off, uint32(len(batch)), batch))
	s.buf = append(append(s.buf[:0], hdr[:]...), batch...)
	_, err := seg.f.WriteAt(s.buf, off)
	if err == nil && s.cfg.sync {
		err = datasync(seg.f)
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
	seg.records = append(seg.records, record{off: off, n: uint32(len(batch))})
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	s.nextSeq++
	if s.cfg.sync {
		if err := syncDir(s.dir); err != nil {
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
			f, err := os.Open(seg.path)
			if err != nil {
				return Batch{}, false, fmt.Errorf("spool: open segment: %w", err)
			}
			seg.f = f
		}
		buf := make([]byte, RecordOverhead+int(r.n))
		if _, err := seg.f.ReadAt(buf, r.off); err == nil &&
			binary.LittleEndian.Uint32(buf[0:4]) == recordMagic &&
			binary.LittleEndian.Uint32(buf[4:8]) == r.n &&
			checksum(&s.scratch, seg.seq, r.off, r.n, buf[RecordOverhead:]) == binary.LittleEndian.Uint32(buf[8:12]) {
			return Batch{Data: buf[RecordOverhead:], seq: seg.seq, off: r.off}, true, nil
		}
		// Damaged since Open, or unreadable: skip it.
		s.corruptN++
		s.corruptB += RecordOverhead + int64(r.n)
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
