package integrity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// CheckpointVersion is the version of the signed checkpoint document.
const CheckpointVersion = 1

// checkpointDomain starts the signed message, so a checkpoint signature
// can never be taken for a signature over anything else.
const checkpointDomain = "otelaudit.checkpoint.v1\n"

// Checkpoint is a signed statement that a stream's chain reached Seq with
// seal hash SealHash. It is written to the audit_log_checkpoints table and
// to the external anchors.
type Checkpoint struct {
	StreamID uuid.UUID `json:"stream_id"`
	Seq      int64     `json:"seq"`
	SealHash Hash      `json:"-"`
	// Closed is true when the seal is the stream's close seal.
	Closed   bool      `json:"closed"`
	SignedAt time.Time `json:"-"`
	// KeyID names the signing key: [KeyID] of its public key.
	KeyID     string `json:"key_id"`
	Signature []byte `json:"-"`
}

// AppendSigned appends the canonical document the signature covers, after
// the domain line "otelaudit.checkpoint.v1\n".
func (c *Checkpoint) AppendSigned(dst []byte) []byte {
	dst = append(dst, checkpointDomain...)
	dst = append(dst, `{"closed":`...)
	dst = strconv.AppendBool(dst, c.Closed)
	dst = append(dst, `,"key_id":`...)
	dst = appendString(dst, c.KeyID)
	dst = append(dst, `,"seal_hash":`...)
	dst = appendHex(dst, c.SealHash[:])
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, c.Seq, 10)
	dst = append(dst, `,"signed_at":`...)
	dst = appendTime(dst, c.SignedAt)
	dst = append(dst, `,"stream_id":"`...)
	dst = append(dst, c.StreamID.String()...)
	dst = append(dst, `","v":`...)
	dst = strconv.AppendInt(dst, CheckpointVersion, 10)
	return append(dst, '}')
}

// Sign sets SignedAt (truncated to microseconds), KeyID and Signature.
func (c *Checkpoint) Sign(key ed25519.PrivateKey, now time.Time) {
	c.SignedAt = CanonicalTime(now)
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	c.Signature = ed25519.Sign(key, c.AppendSigned(nil))
}

// Verify reports whether the checkpoint's signature is pub's over its
// document.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) bool {
	return len(c.Signature) == ed25519.SignatureSize && ed25519.Verify(pub, c.AppendSigned(nil), c.Signature)
}

// KeyID returns the identifier of a public key: the first 8 bytes of its
// SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// anchorLine is one line of a JSON Lines anchor.
type anchorLine struct {
	V         int       `json:"v"`
	Table     string    `json:"table,omitempty"`
	StreamID  uuid.UUID `json:"stream_id"`
	Seq       int64     `json:"seq"`
	SealHash  string    `json:"seal_hash"`
	Closed    bool      `json:"closed"`
	SignedAt  time.Time `json:"signed_at"`
	KeyID     string    `json:"key_id"`
	Signature string    `json:"signature"`
}

// MarshalJSONLine returns the checkpoint as one anchor line (no newline).
func (c *Checkpoint) MarshalJSONLine(table string) ([]byte, error) {
	return json.Marshal(anchorLine{
		V: CheckpointVersion, Table: table, StreamID: c.StreamID, Seq: c.Seq,
		SealHash: hex.EncodeToString(c.SealHash[:]), Closed: c.Closed, SignedAt: c.SignedAt.UTC(),
		KeyID: c.KeyID, Signature: base64.StdEncoding.EncodeToString(c.Signature),
	})
}

// AnchorEntry is a checkpoint read from an anchor, with where it was.
type AnchorEntry struct {
	Checkpoint
	// Table is the audit table the checkpoint is about ("" for any).
	Table string
	// Line is the entry's line number in the anchor, from 1.
	Line int
}

// ReadAnchor reads the checkpoints of a JSON Lines anchor. A line that is
// not a checkpoint is an error naming the line: an anchor is append-only,
// and a damaged one needs a look.
func ReadAnchor(r io.Reader) ([]AnchorEntry, error) {
	var out []AnchorEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l anchorLine
		if err := json.Unmarshal(line, &l); err != nil {
			return out, fmt.Errorf("integrity: anchor line %d: %w", n, err)
		}
		if l.V != CheckpointVersion {
			return out, fmt.Errorf("integrity: anchor line %d: version %d, want %d", n, l.V, CheckpointVersion)
		}
		h, err := hex.DecodeString(l.SealHash)
		if err != nil || len(h) != HashSize {
			return out, fmt.Errorf("integrity: anchor line %d: seal_hash is not a SHA-256 hash in hex", n)
		}
		sig, err := base64.StdEncoding.DecodeString(l.Signature)
		if err != nil {
			return out, fmt.Errorf("integrity: anchor line %d: signature: %w", n, err)
		}
		e := AnchorEntry{Table: l.Table, Line: n, Checkpoint: Checkpoint{
			StreamID: l.StreamID, Seq: l.Seq, Closed: l.Closed, SignedAt: CanonicalTime(l.SignedAt),
			KeyID: l.KeyID, Signature: sig,
		}}
		copy(e.SealHash[:], h)
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("integrity: read anchor: %w", err)
	}
	return out, nil
}

// Anchor keeps checkpoints outside the database, where whoever controls the
// database cannot rewrite them.
type Anchor interface {
	// Append stores one checkpoint of the audit table named table.
	Append(ctx context.Context, table string, c *Checkpoint) error
}

// FileAnchor appends checkpoints to a JSON Lines file opened with O_APPEND,
// syncing each line to disk. Put it where the database administrator cannot
// write (another host, a write-once bucket mount, a file with chattr +a).
// It is safe for concurrent use.
type FileAnchor struct {
	mu   sync.Mutex
	path string
}

// NewFileAnchor returns an anchor appending to the file at path (created
// with mode 0600 when missing).
func NewFileAnchor(path string) *FileAnchor { return &FileAnchor{path: path} }

// Check opens the anchor file as Append does (creating it when missing) and
// reports why it cannot be used: a symbolic link (appending through one
// planted by another user would write the service's lines wherever it
// points), not a regular file, or writable by others (any local user could
// truncate the evidence). Writers call it at start so that a bad anchor
// stops them then, not at the first checkpoint.
func (a *FileAnchor) Check() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := a.open()
	if err != nil {
		return err
	}
	return f.Close()
}

// open opens the anchor file for appending and checks it (see Check).
func (a *FileAnchor) open() (*os.File, error) {
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|noFollow, 0o600)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && isLoop(pe.Err) {
			return nil, fmt.Errorf("integrity: anchor %s is a symbolic link; give the path of the file itself", a.path)
		}
		return nil, fmt.Errorf("integrity: open anchor: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("integrity: open anchor: %w", err)
	}
	switch {
	case !fi.Mode().IsRegular():
		_ = f.Close()
		return nil, fmt.Errorf("integrity: anchor %s is not a regular file (%s)", a.path, fi.Mode().Type())
	case fi.Mode().Perm()&0o002 != 0:
		_ = f.Close()
		return nil, fmt.Errorf("integrity: anchor %s is writable by others (mode %04o), who could truncate it: chmod o-w %s", a.path, fi.Mode().Perm(), a.path)
	}
	return f, nil
}

// CheckAnchors runs the Check of every anchor that has one (a
// [FileAnchor]) and joins their errors.
func CheckAnchors(anchors ...Anchor) error {
	var errs []error
	for _, a := range anchors {
		if c, ok := a.(interface{ Check() error }); ok {
			errs = append(errs, c.Check())
		}
	}
	return errors.Join(errs...)
}

// Append writes c as one line and syncs the file.
func (a *FileAnchor) Append(_ context.Context, table string, c *Checkpoint) error {
	line, err := c.MarshalJSONLine(table)
	if err != nil {
		return fmt.Errorf("integrity: encode checkpoint: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := a.open()
	if err != nil {
		return err
	}
	_, werr := f.Write(append(line, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("integrity: append to anchor %s: %w", a.path, err)
	}
	return nil
}

// ParseSigningKey parses an Ed25519 private key: PEM "PRIVATE KEY"
// (PKCS #8, as `openssl genpkey -algorithm ed25519` writes it), or base64
// of the 32-byte seed or the 64-byte private key.
func ParseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("integrity: signing key: %w", err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("integrity: signing key is a %T, want Ed25519", k)
		}
		return ek, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, errors.New("integrity: signing key is neither PEM nor base64")
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		return ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]), nil
	}
	return nil, fmt.Errorf("integrity: signing key has %d bytes, want a %d-byte seed or a %d-byte key", len(raw), ed25519.SeedSize, ed25519.PrivateKeySize)
}

// LoadSigningKey reads an Ed25519 private key file (see [ParseSigningKey]).
// Like ssh, it refuses a file that group or others may read or write: whoever
// holds the key and write access to the database can forge checkpoints.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) {
	// The mode is checked on the open file, so the file read is the file
	// checked (a symbolic link is followed: Kubernetes mounts secrets so).
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("integrity: read signing key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("integrity: read signing key: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("integrity: signing key %s has mode %04o: group and others must have no access (chmod 600 %s; in Kubernetes, defaultMode: 0400)", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("integrity: read signing key: %w", err)
	}
	return ParseSigningKey(data)
}

// ParsePublicKey parses an Ed25519 public key: PEM "PUBLIC KEY" (PKIX, as
// `openssl pkey -pubout` writes it), or base64 of the 32 raw bytes.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(data); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("integrity: public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("integrity: public key is a %T, want Ed25519", k)
		}
		return ek, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, errors.New("integrity: public key is neither PEM nor base64 of 32 bytes")
	}
	return ed25519.PublicKey(raw), nil
}

// LoadPublicKey reads an Ed25519 public key file (see [ParsePublicKey]).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("integrity: read public key: %w", err)
	}
	return ParsePublicKey(data)
}

// MarshalKeyPair returns key as PEM PKCS #8 and its public key as PEM PKIX.
func MarshalKeyPair(key ed25519.PrivateKey) (private, public []byte, err error) {
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("integrity: encode private key: %w", err)
	}
	pk, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("integrity: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), nil
}
