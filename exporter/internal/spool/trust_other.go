//go:build !unix

package spool

import "os"

// noFollow is not available: no flag.
const noFollow = 0

// checkDir cannot check ownership outside Unix; the spool does not run
// there (it needs flock).
func checkDir(string) error { return nil }

// checkFile cannot check ownership outside Unix.
func checkFile(*os.File) error { return nil }

func openErr(_ string, err error) error { return err }
