package integrity

import (
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
