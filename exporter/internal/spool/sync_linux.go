//go:build linux

package spool

import (
	"os"
	"syscall"
)

// datasync flushes f's data and the metadata needed to read it back (its
// size) with fdatasync, which skips timestamps.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
