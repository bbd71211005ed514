package pgtest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// echoServer accepts connections and echoes lines back until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func TestProxyTCP(t *testing.T) {
	p := NewProxy(t, echoServer(t))

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
		t.Fatalf("relay: %q %v", got, err)
	}
	if p.Conns() != 1 || p.Accepted() != 1 {
		t.Fatalf("Conns=%d Accepted=%d, want 1 and 1", p.Conns(), p.Accepted())
	}

	// Latency: about 2d per round trip.
	const d = 100 * time.Millisecond
	p.SetLatency(d)
	start := time.Now()
	if got, err := roundTrip(c, "slow"); err != nil || got != "slow" {
		t.Fatalf("relay with latency: %q %v", got, err)
	}
	if rtt := time.Since(start); rtt < 2*d || rtt > 2*d+2*time.Second {
		t.Fatalf("round trip with %v latency took %v", d, rtt)
	}
	p.SetLatency(0)

	// CutAll breaks the live connection.
	if n := p.CutAll(); n != 1 {
		t.Fatalf("CutAll cut %d connections, want 1", n)
	}
	if _, err := roundTrip(c, "after cut"); err == nil {
		t.Fatal("a cut connection still relays")
	}
	waitFor(t, func() bool { return p.Conns() == 0 })

	// Refuse mode closes new connections at once.
	p.SetRefuse(true)
	r, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(r, "refused"); err == nil {
			t.Fatal("refuse mode relayed a connection")
		}
		r.Close()
	}
	p.SetRefuse(false)
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, "again"); err != nil || got != "again" {
		t.Fatalf("relay after refuse mode: %q %v", got, err)
	}

	// Close stops the proxy and cuts live connections; it is idempotent.
	p.Close()
	p.Close()
	if _, err := roundTrip(c2, "closed"); err == nil {
		t.Fatal("connection survived Close")
	}
	if c3, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c3.Close()
		t.Fatal("closed proxy still accepts")
	}
}

func TestProxyURL(t *testing.T) {
	p := NewProxy(t, "127.0.0.1:1")
	got := p.URL("postgres://u:pw@db.example:5432/audit?sslmode=disable&host=/tmp")
	want := "postgres://u:pw@" + p.Addr() + "/audit?sslmode=disable"
	if got != want {
		t.Fatalf("URL = %s, want %s", got, want)
	}
	// An unreachable target: the client connection is closed, nothing hangs.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return // reset before the dial returned: closed as it should be
	}
	defer c.Close()
	if _, err := roundTrip(c, "x"); err == nil {
		t.Fatal("relayed to an unreachable target")
	}
}

func TestProxyPostgres(t *testing.T) {
	ctx := context.Background()
	cl := StartCluster(t)
	p := NewProxy(t, cl.Addr())
	url := p.URL(cl.URL())

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	defer conn.Close(ctx)
	var port int
	if err := conn.QueryRow(ctx, "SELECT current_setting('port')::int").Scan(&port); err != nil || port != cl.Port() {
		t.Fatalf("query through proxy: port=%d err=%v", port, err)
	}

	// Cut in the middle of a running statement.
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "SELECT pg_sleep(5)")
		errc <- err
	}()
	waitFor(t, func() bool { return sleeping(ctx, cl.URL()) })
	start := time.Now()
	p.CutAll()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("statement succeeded across a cut connection")
		}
	case <-time.After(4 * time.Second):
		t.Fatal("cut did not interrupt the statement")
	}
	if time.Since(start) > 3*time.Second {
		t.Fatal("cut took too long to surface")
	}
	if n, err := queryOne(ctx, url); err != nil || n != 1 {
		t.Fatalf("new connection after CutAll: %v", err)
	}

	p.SetRefuse(true)
	if _, err := queryOne(ctx, url); err == nil {
		t.Fatal("connected through a refusing proxy")
	}
	p.SetRefuse(false)
	if n, err := queryOne(ctx, url); err != nil || n != 1 {
		t.Fatalf("after refuse mode: %v", err)
	}
}

// sleeping reports whether a backend is running pg_sleep.
func sleeping(ctx context.Context, url string) bool {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var n int
	_ = conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'").Scan(&n)
	return n > 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
