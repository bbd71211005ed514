package pgtest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func queryOne(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	return n, err
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	var dir string
	var port int
	t.Run("lifecycle", func(t *testing.T) {
		c := StartCluster(t)
		dir, port = c.Dir(), c.Port()
		if port == 5432 {
			t.Fatal("private cluster on the shared server's port")
		}
		if !strings.Contains(c.URL(), ":"+strconv.Itoa(port)+"/postgres") || c.Addr() != "127.0.0.1:"+strconv.Itoa(port) {
			t.Fatalf("URL %s Addr %s do not name port %d", c.URL(), c.Addr(), port)
		}
		conn := Connect(t, c.URL())
		var dataDir, sockDir string
		var fsync string
		if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory'), current_setting('unix_socket_directories'), current_setting('fsync')").Scan(&dataDir, &sockDir, &fsync); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dataDir, c.Dir()) || sockDir != c.Dir() || fsync != "off" {
			t.Fatalf("data_directory %s, unix_socket_directories %s, fsync %s: not the private cluster in %s", dataDir, sockDir, fsync, c.Dir())
		}
		if _, err := os.Stat(filepath.Join(c.Dir(), ".s.PGSQL."+strconv.Itoa(port))); err != nil {
			t.Fatalf("unix socket: %v", err)
		}

		c.Stop()
		if c.Running() {
			t.Fatal("Running after Stop")
		}
		if err := conn.Ping(ctx); err == nil {
			t.Fatal("a live connection survived Stop")
		}
		if _, err := queryOne(ctx, c.URL()); err == nil {
			t.Fatal("connected to a stopped cluster")
		}
		c.Stop() // stopping a stopped cluster is a no-op

		c.Start()
		if n, err := queryOne(ctx, c.URL()); err != nil || n != 1 {
			t.Fatalf("after Start: %v", err)
		}
		c.Restart()
		if n, err := queryOne(ctx, c.URL()); err != nil || n != 1 {
			t.Fatalf("after Restart: %v", err)
		}
		// Data survives an immediate (crash-like) stop.
		if _, err := pgxExec(ctx, c.URL(), "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
			t.Fatal(err)
		}
		c.StopImmediate()
		c.Start()
		conn2 := Connect(t, c.URL())
		var x int
		if err := conn2.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
			t.Fatalf("after crash recovery: x=%d err=%v", x, err)
		}
	})
	// The cleanup stopped the server and removed its directory.
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory %s left behind: %v", dir, err)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		c.Close()
		t.Fatalf("something still listens on port %d after cleanup", port)
	}
}

func pgxExec(ctx context.Context, url, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	tag, err := conn.Exec(ctx, sql)
	return tag.String(), err
}
