//go:build unix

package integrity

import "syscall"

// noFollow makes opening the anchor fail on a symbolic link instead of
// following it.
const noFollow = syscall.O_NOFOLLOW

// isLoop reports whether err is what O_NOFOLLOW gives for a symbolic link.
func isLoop(err error) bool { return err == syscall.ELOOP }
