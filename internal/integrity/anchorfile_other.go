//go:build !unix

package integrity

// noFollow is not available: no flag.
const noFollow = 0

func isLoop(error) bool { return false }
