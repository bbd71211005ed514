//go:build unix

package spool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nobody is the uid the ownership tests give files and directories: any
// user but the one running the tests.
const nobody = 65534

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
}

func wantUntrusted(t *testing.T, err error, path string, fix string) {
	t.Helper()
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("Open: %v, want ErrUntrusted", err)
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fix) {
		t.Fatalf("error %q does not name %s and the fix %q", err, path, fix)
	}
}

func TestRefusesDirectoryOfAnotherOwner(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, 1<<20)
	wantUntrusted(t, err, dir, "chown 0 "+dir)
	if _, err := os.Lstat(filepath.Join(dir, lockName)); !os.IsNotExist(err) {
		t.Fatalf("Open touched the untrusted directory: LOCK %v", err)
	}
}

func TestRefusesDirectoryWritableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777 | os.ModeSticky, 0o720} {
		dir := filepath.Join(t.TempDir(), "spool")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir, 1<<20)
		wantUntrusted(t, err, dir, "chmod 0700 "+dir)
	}
	// Readable by others is not a risk for the spool's integrity.
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	openT(t, dir, 1<<20)
}

// ACK and LOCK planted as symbolic links are refused, and their targets are
// neither created nor written.
func TestRefusesSymlinkedAckAndLock(t *testing.T) {
	for _, name := range []string{ackName, lockName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "victim")
			if err := os.Symlink(outside, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, 1<<20)
			wantUntrusted(t, err, filepath.Join(dir, name), "symbolic link")
			if _, err := os.Lstat(outside); !os.IsNotExist(err) {
				t.Fatalf("the symlink's target was created: %v", err)
			}

			// A target that exists is not written either.
			if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir, 1<<20); !errors.Is(err, ErrUntrusted) {
				t.Fatalf("Open with %s -> existing file: %v, want ErrUntrusted", name, err)
			}
			if b, _ := os.ReadFile(outside); string(b) != "keep" {
				t.Fatalf("the symlink's target was changed: %q", b)
			}
		})
	}
}

// A segment, ACK or LOCK file of another user in the directory is refused:
// someone else wrote into the spool (a planted segment would be replayed as
// audited rows).
func TestRefusesPlantedFileOfAnotherOwner(t *testing.T) {
	requireRoot(t)
	for _, name := range []string{segName(1), segName(7), ackName, lockName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s := openT(t, dir, 1<<20)
			appendT(t, s, payload(0, 50))
			s.Close()
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); os.IsNotExist(err) {
				// A segment of its own: a copy of segment 1 (the content
				// does not matter, the owner does).
				b, err := os.ReadFile(filepath.Join(dir, segName(1)))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chown(path, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			_, err := Open(dir, 1<<20)
			wantUntrusted(t, err, path, "owned by uid 65534")
		})
	}
}

// A symbolic link named like a segment is never followed: the segment it
// points to (a valid one, of another spool) is not replayed.
func TestSymlinkedSegmentIsNotRead(t *testing.T) {
	other := t.TempDir()
	s := openT(t, other, 1<<20)
	appendT(t, s, payload(42, 50))
	s.Close()

	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(other, segName(1)), filepath.Join(dir, segName(1))); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, 1<<20)
	if s.Len() != 0 {
		t.Fatalf("Len=%d: the symlinked segment was read", s.Len())
	}
	appendT(t, s, payload(1, 50))
	if got := indices(t, drain(t, s)); len(got) != 1 || got[0] != 1 {
		t.Fatalf("replayed %v, want [1]", got)
	}
}
