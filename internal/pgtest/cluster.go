package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a private PostgreSQL cluster for tests that must stop, start or
// crash the server. It is initialised in a temporary directory, listens on
// its own free port on 127.0.0.1 and a Unix socket in that directory, trusts
// every local connection, and runs with fsync off (safe for a process crash
// or StopImmediate, not for a machine crash; synchronous_commit stays on so a
// committed row survives StopImmediate). It never touches the
// shared server that NewDatabase uses.
//
// Stop, StopImmediate, Start and Restart fail the test like t.Fatal, so they
// must be called from the goroutine running the test.
type Cluster struct {
	tb      testing.TB
	bindir  string
	dir     string // owned by the server's OS user
	data    string
	logFile string
	port    int
	cred    *syscall.Credential // non-nil when running as root

	mu      sync.Mutex
	running bool
}

// StartCluster initialises and starts a private cluster, and registers a
// cleanup that stops it and removes its directory. When the test runs as
// root, initdb and postgres run as the OS user "postgres" (the server
// refuses to run as root), in a directory owned by that user. The
// PostgreSQL binaries are found with pg_config --bindir, else under
// /usr/lib/postgresql/*/bin; the test fails when there are none.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bindir, err := findBindir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	c := &Cluster{tb: tb, bindir: bindir}

	dir, err := os.MkdirTemp(clusterTempBase(), "otelaudit-pgcluster-")
	if err != nil {
		tb.Fatalf("pgtest: cluster directory: %v", err)
	}
	c.dir = dir
	tb.Cleanup(c.cleanup)
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			tb.Fatalf("pgtest: running as root needs the OS user postgres to run the server: %v", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			tb.Fatalf("pgtest: user postgres has uid %q gid %q", u.Uid, u.Gid)
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			tb.Fatalf("pgtest: chown cluster directory: %v", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		tb.Fatalf("pgtest: chmod cluster directory: %v", err)
	}
	c.data = filepath.Join(dir, "data")
	c.logFile = filepath.Join(dir, "postgres.log")

	out, err := c.run(2*time.Minute, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions")
	if err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	// A free port can be taken by someone else between probing and binding:
	// try a few.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("pgtest: find a free port: %v", err)
		}
		if err := c.configure(port); err != nil {
			tb.Fatalf("pgtest: %v", err)
		}
		if lastErr = c.start(); lastErr == nil {
			return c
		}
	}
	tb.Fatalf("pgtest: start cluster: %v\n%s", lastErr, c.logTail())
	return nil
}

// URL returns the connection URL of the cluster's postgres database
// (user postgres, no password, sslmode disabled).
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Addr returns the cluster's TCP address, host:port, e.g. for NewProxy.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Port returns the cluster's TCP port.
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster's directory: data/, postgres.log and the Unix
// socket live there.
func (c *Cluster) Dir() string { return c.dir }

// Stop shuts the server down with pg_ctl's fast mode: open connections are
// terminated, and it returns once the server is gone.
func (c *Cluster) Stop() { c.tb.Helper(); c.stop("fast") }

// StopImmediate stops the server in immediate mode, without a checkpoint, as
// a crash would; the next Start performs crash recovery.
func (c *Cluster) StopImmediate() { c.tb.Helper(); c.stop("immediate") }

// Start starts a stopped server on the same port and waits until it accepts
// connections. Starting a running server is a no-op.
func (c *Cluster) Start() {
	c.tb.Helper()
	if err := c.start(); err != nil {
		c.tb.Fatalf("pgtest: start cluster: %v\n%s", err, c.logTail())
	}
}

// Restart stops the server (fast mode) and starts it again.
func (c *Cluster) Restart() {
	c.tb.Helper()
	c.Stop()
	c.Start()
}

// Running reports whether the server is started.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	out, err := c.run(90*time.Second, "pg_ctl", "-D", c.data, "-l", c.logFile, "-w", "-t", "60", "start")
	if err != nil {
		// A failed start may still have left a postmaster behind.
		_, _ = c.run(30*time.Second, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	c.running = true
	return nil
}

func (c *Cluster) stop(mode string) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	out, err := c.run(90*time.Second, "pg_ctl", "-D", c.data, "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		c.tb.Fatalf("pgtest: pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	c.running = false
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running && c.data != "" {
		if out, err := c.run(60*time.Second, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop"); err != nil {
			c.tb.Logf("pgtest: stop cluster at cleanup: %v\n%s", err, out)
		}
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			c.tb.Logf("pgtest: remove cluster directory: %v", err)
		}
	}
}

// configure writes the settings that make the cluster private and fast.
func (c *Cluster) configure(port int) error {
	c.port = port
	conf := fmt.Sprintf(`
# pgtest.Cluster
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
max_connections = 60
shared_buffers = 32MB
max_wal_size = 256MB
logging_collector = off
log_min_messages = warning
`, port, strings.ReplaceAll(c.dir, "'", "''"))
	// postgresql.auto.conf is read last, so rewriting it replaces earlier
	// attempts' settings.
	path := filepath.Join(c.data, "postgresql.auto.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if c.cred != nil {
		if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	return nil
}

// run executes a PostgreSQL binary as the server's OS user, in the cluster
// directory, with PG* variables removed from the environment so that nothing
// points it at another server.
func (c *Cluster) run(timeout time.Duration, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bindir, name), args...)
	cmd.Dir = c.dir
	env := []string{"HOME=" + c.dir, "LC_ALL=C", "LANG=C", "TZ=UTC"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s: timed out after %v", name, timeout)
	}
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return "postgres.log:\n" + string(b)
}

// clusterTempBase returns os.TempDir, or /tmp when running as root and some
// directory above os.TempDir is closed to other users (the server runs as
// postgres and must reach its directory).
func clusterTempBase() string {
	base := os.TempDir()
	if os.Geteuid() != 0 {
		return base
	}
	for d := base; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return base
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBindir locates the directory holding initdb, pg_ctl and postgres.
func findBindir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb): pg_config --bindir and /usr/lib/postgresql/*/bin found none; install postgresql")
}

func versionOf(bindir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return v
}
