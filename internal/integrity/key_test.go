package integrity

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSigningKeyRefusesOpenFiles: a key file that group or others may
// read or write is refused with the fix in the error; a private one loads.
func TestLoadSigningKeyRefusesOpenFiles(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	private, _, err := MarshalKeyPair(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := os.WriteFile(path, private, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadSigningKey(path)
	if err != nil {
		t.Fatalf("mode 0600: %v", err)
	}
	if !got.Equal(key) {
		t.Fatal("loaded key differs from the one written")
	}
	// Kubernetes mounts a secret as a symbolic link to the file: followed.
	link := filepath.Join(t.TempDir(), "key")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadSigningKey(link); err != nil || !got.Equal(key) {
		t.Fatalf("through a symbolic link: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o620, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSigningKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
	if _, err := LoadSigningKey(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("missing file: no error")
	}
}

// TestFileAnchorRefusesUntrustedFiles: the anchor is not appended to through
// a symbolic link (one planted by another user would make the service write
// wherever it points), nor when it is not a regular file or others may write
// it (and truncate the evidence); a private file is used.
func TestFileAnchorRefusesUntrustedFiles(t *testing.T) {
	dir := t.TempDir()
	cp := &Checkpoint{Seq: 1}
	ctx := context.Background()

	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "anchor-link.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "anchor-open.jsonl")
	if err := os.WriteFile(open, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o646); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, path, want string }{
		{"symbolic link", link, "symbolic link"},
		{"directory", dir, "directory"},
		{"writable by others", open, "chmod o-w"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := NewFileAnchor(tt.path)
			if err := a.Check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v, want an error naming %q", err, tt.want)
			}
			if err := CheckAnchors(LogAnchor{}, a); err == nil {
				t.Error("CheckAnchors: no error")
			}
			if err := a.Append(ctx, "audit_log", cp); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Append: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the link's target was written: %q", b)
	}

	good := NewFileAnchor(filepath.Join(dir, "anchor.jsonl"))
	if err := good.Check(); err != nil {
		t.Fatalf("a new private anchor: %v", err)
	}
	if err := good.Append(ctx, "audit_log", cp); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "anchor.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := ReadAnchor(f); err != nil || len(got) != 1 {
		t.Errorf("anchor read back: %d lines, %v", len(got), err)
	}
}
