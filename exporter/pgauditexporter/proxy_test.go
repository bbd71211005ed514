package pgauditexporter

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// proxy is a TCP proxy in front of PostgreSQL that can make the database
// unreachable: while refusing, it closes every connection it accepts and
// cuts the open ones.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	refuse bool
	conns  map[net.Conn]struct{}

	refused atomic.Int64 // connections refused while refusing
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cutAll()
	})
	return p
}

// Addr is the proxy's listening address.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

// URL returns base with its host and port replaced by the proxy's.
func (p *proxy) URL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Host = p.Addr()
	return u.String()
}

// SetRefuse makes PostgreSQL unreachable (true) or reachable again.
func (p *proxy) SetRefuse(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	p.mu.Unlock()
	if refuse {
		p.cutAll()
	}
}

// Refused is the number of connections the proxy has refused so far: each
// is an attempt of a client to reach PostgreSQL while it was away.
func (p *proxy) Refused() int64 { return p.refused.Load() }

func (p *proxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) handle(c net.Conn) {
	if !p.track(c) {
		p.refused.Add(1)
		_ = c.Close()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(s) {
		_ = c.Close()
		if s != nil {
			_ = s.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	_ = c.Close()
	_ = s.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	p.mu.Unlock()
}
