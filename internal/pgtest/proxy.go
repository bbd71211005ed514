package pgtest

import (
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MaxProxyConns bounds the connections a Proxy relays at once; beyond it new
// connections are closed at once, as in refuse mode.
const MaxProxyConns = 256

// Proxy is a fault-injecting TCP proxy on 127.0.0.1 in front of a server
// (normally PostgreSQL). Tests point clients at Addr or URL and then refuse
// new connections, cut live ones mid-stream, or add latency. It closes
// itself when the test ends. All methods are safe for concurrent use.
type Proxy struct {
	tb      testing.TB
	target  string
	ln      net.Listener
	refuse  atomic.Bool
	latency atomic.Int64 // nanoseconds
	accepts atomic.Int64

	mu     sync.Mutex
	closed bool
	conns  map[*proxyConn]struct{}
	wg     sync.WaitGroup
}

type proxyConn struct {
	client net.Conn

	mu     sync.Mutex
	cut    bool
	server net.Conn
}

// setServer attaches the upstream connection; false when the connection was
// cut meanwhile.
func (pc *proxyConn) setServer(server net.Conn) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cut {
		return false
	}
	pc.server = server
	return true
}

func (pc *proxyConn) close() {
	pc.mu.Lock()
	if pc.cut {
		pc.mu.Unlock()
		return
	}
	pc.cut = true
	server := pc.server
	pc.mu.Unlock()
	if tc, ok := pc.client.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // reset, like a network failure, not a polite FIN
	}
	_ = pc.client.Close()
	if server != nil {
		_ = server.Close()
	}
}

// NewProxy starts a proxy on 127.0.0.1:0 that relays every connection to
// target (host:port) and registers its Close as a test cleanup.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: proxy listen: %v", err)
	}
	p := &Proxy{tb: tb, target: target, ln: ln, conns: make(map[*proxyConn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	tb.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns baseURL with its host and port replaced by the proxy's, so a
// client using it goes through the proxy. An unparsable URL is returned
// unchanged.
func (p *Proxy) URL(baseURL string) string {
	u, err := url.Parse(baseURL)
	if err != nil {
		return baseURL
	}
	u.Host = p.Addr()
	q := u.Query()
	if q.Has("host") || q.Has("port") || q.Has("hostaddr") {
		q.Del("host")
		q.Del("port")
		q.Del("hostaddr")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// SetRefuse makes the proxy close every new connection as soon as it is
// accepted (true) or relay them again (false). Live connections are not
// affected; use CutAll for those.
func (p *Proxy) SetRefuse(refuse bool) { p.refuse.Store(refuse) }

// SetLatency delays every chunk of data relayed in either direction by d, so
// a round trip takes about 2d longer. Zero removes the delay.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// CutAll abruptly closes every live connection (client side with a TCP
// reset) and returns how many it cut.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
	return len(conns)
}

// Conns returns the number of live relayed connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Accepted returns how many connections the proxy has relayed in total.
func (p *Proxy) Accepted() int64 { return p.accepts.Load() }

// Close stops listening, cuts every live connection and waits for the
// proxy's goroutines to finish. It is idempotent.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (e.g. out of file descriptors): back off.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if p.refuse.Load() {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		pc := &proxyConn{client: c}
		p.mu.Lock()
		if p.closed || len(p.conns) >= MaxProxyConns {
			p.mu.Unlock()
			pc.close()
			continue
		}
		p.conns[pc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc)
	}
}

func (p *Proxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !pc.setServer(server) { // cut while dialling
		_ = server.Close()
		return
	}
	p.accepts.Add(1)
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, pc.client); done <- struct{}{} }()
	go func() { p.pipe(pc.client, server); done <- struct{}{} }()
	<-done // either direction ending ends the connection
	pc.close()
	_ = server.Close()
	<-done
}

// pipe copies src to dst, delaying each chunk by the current latency.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
