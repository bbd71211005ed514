package gateway

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// clientKey is the address a client is counted under: its IPv4 address, or
// the /64 prefix of its IPv6 address (one host usually holds a whole /64).
func clientKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// connLimiter is a net.Listener that caps the open connections of one
// client address: a connection beyond the cap is closed as soon as it is
// accepted.
type connLimiter struct {
	net.Listener
	max int

	mu      sync.Mutex
	open    map[string]int
	refused atomic.Int64
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, open: map[string]int{}}
}

// Accept returns the next connection whose client is under its cap.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr().String())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimiter) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// limitedConn gives its slot back when it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// liftReadDeadline returns a request body that, once read to its end,
// lifts the connection's read deadline (the server's ReadTimeout): the
// timeout bounds reading the request, not how long a tool call or an event
// stream may take to answer. net/http cancels a request's context when the
// connection's read deadline passes while the handler runs.
func liftReadDeadline(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		_ = rc.SetReadDeadline(time.Time{})
		return
	}
	r.Body = &eofBody{ReadCloser: r.Body, atEOF: func() { _ = rc.SetReadDeadline(time.Time{}) }}
}

// eofBody calls atEOF once when its body has been read to the end.
type eofBody struct {
	io.ReadCloser
	atEOF func()
	done  bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.atEOF()
	}
	return n, err
}
