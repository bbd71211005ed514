//go:build race

package instrumentation

// raceEnabled slows time bounds in tests down to the race detector.
const raceEnabled = true
