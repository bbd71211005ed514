package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binPath is the otelaudit binary built once by TestMain; every command is
// tested through it, as an operator runs it.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "otelaudit-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "otelaudit")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with args and env added to a clean environment (no
// OTELAUDIT_DATABASE_URL or PG* variables of the caller leak in).
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "OTELAUDIT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func TestHelpShowsExamples(t *testing.T) {
	r := run(t, nil, "--help")
	if r.code != ExitOK {
		t.Fatalf("--help exit %d, stderr %q", r.code, r.stderr)
	}
	for _, want := range []string{"Examples:", "otelaudit query --since 1h", "--database-url", "OTELAUDIT_DATABASE_URL", "Exit codes"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("--help wrote to stderr: %q", r.stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"no-such-command"},
		{"--no-such-flag"},
		{"version", "extra-arg"},
		{"--table", "audit_log; DROP TABLE audit_log", "version"},
	} {
		r := run(t, nil, args...)
		if r.code != ExitFailure {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, r.code, ExitFailure, r.stderr)
		}
		if !strings.HasPrefix(r.stderr, "otelaudit: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: want one 'otelaudit: ...' line on stderr, got %q", args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", args, r.stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	r := run(t, nil, "version")
	if r.code != ExitOK || !strings.HasPrefix(r.stdout, "otelaudit ") {
		t.Fatalf("version: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}
