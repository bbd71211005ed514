//go:build unix

package spool

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// noFollow makes an open fail on a symbolic link instead of following it.
const noFollow = syscall.O_NOFOLLOW

// checkDir refuses a spool directory another user could write into: one
// not owned by the effective user, or writable by its group or by others.
// Such a user could delete segments (losing records) or plant them (rows
// replayed as if they had been audited).
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	euid := os.Geteuid()
	if int(st.Uid) != euid {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this process's user (uid %d); "+
			"give the spool a directory of the service user's own: chown %d %s && chmod 0700 %s",
			ErrUntrusted, dir, st.Uid, euid, euid, dir, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by its group or by others (mode %04o); "+
			"make it the service user's alone: chmod 0700 %s",
			ErrUntrusted, dir, perm, dir)
	}
	return nil
}

// checkFile refuses a spool file (ACK, LOCK, a segment) that is not a
// regular file owned by the effective user: it was planted.
func checkFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (%s); remove it", ErrUntrusted, f.Name(), fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by this process's user (uid %d): "+
			"another user wrote into the spool directory; move the file away and check the directory",
			ErrUntrusted, f.Name(), st.Uid, os.Geteuid())
	}
	return nil
}

// openErr explains a failed open: a symbolic link where a spool file should
// be is refused (O_NOFOLLOW reports ELOOP).
func openErr(path string, err error) error {
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%w: %s is a symbolic link; the spool opens its files only directly: remove it", ErrUntrusted, path)
	}
	return err
}
