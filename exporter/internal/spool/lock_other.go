//go:build !unix

package spool

import (
	"errors"
	"fmt"
	"os"
)

// lockDir is not implemented outside Unix: the spool needs flock.
func lockDir(path string) (*os.File, error) {
	return nil, fmt.Errorf("lock %s: %w", path, errors.ErrUnsupported)
}
