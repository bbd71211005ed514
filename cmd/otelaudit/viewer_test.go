package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// startServe runs `otelaudit serve` on a free loopback port and returns its
// base URL; the process is stopped when the test ends.
func startServe(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`serving the viewer on (http://\S+)/`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			} else {
				t.Logf("serve: %s", sc.Text())
			}
		}
	}()
	select {
	case u := <-found:
		return u
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start within 20 s")
		return ""
	}
}

// TestViewerInBrowser drives the viewer in Debian's Chromium through
// playwright-core (cmd/otelaudit/webtest), against calls written by the real
// exporter. scripts/ensure-tools.sh installs both (make test runs it).
// OTELAUDIT_SCREENSHOT names a file to keep the screenshot in (make
// screenshot refreshes docs/viewer.png with it).
func TestViewerInBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s (run scripts/ensure-tools.sh): %v", chromium, err)
	}
	if _, err := os.Stat("webtest/node_modules/playwright-core/package.json"); err != nil {
		t.Fatalf("playwright-core is not installed in cmd/otelaudit/webtest (run scripts/ensure-tools.sh): %v", err)
	}
	url, a := filledDB(t)
	const tracePrefix = "http://jaeger.example:16686/trace/"
	base := startServe(t, dbEnv(url), "--trace-url", tracePrefix+"{trace_id}")

	shot := os.Getenv("OTELAUDIT_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "viewer.png")
	} else if shot, _ = filepath.Abs(shot); shot == "" {
		t.Fatal("bad OTELAUDIT_SCREENSHOT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "viewer.test.mjs")
	node.Dir = "webtest"
	node.Env = append(os.Environ(), "VIEWER_URL="+base+"/", "TRACE_PREFIX="+tracePrefix, "SCREENSHOT="+shot, "CHROMIUM="+chromium)
	stdin, _ := node.StdinPipe()
	stdout, _ := node.StdoutPipe()
	var stderr bytes.Buffer
	node.Stderr = &stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "RECORD" {
			a.record(t, instrumentation.Call{Tool: "late.audit_probe", Subject: "erin", Role: "analyst", Backend: "docs",
				Args: map[string]any{"q": "new"}, Latency: 3 * time.Millisecond})
			_, _ = io.WriteString(stdin, "ok\n")
		}
		if sc.Text() == "FILL" {
			a.record(t, hourOfTraffic(time.Now())...)
			_, _ = io.WriteString(stdin, "ok\n")
		}
	}
	err := node.Wait()
	t.Logf("browser test:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("browser test failed: %v", err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
}

func TestServeSecurity(t *testing.T) {
	url, _ := filledDB(t)

	// Bound beyond loopback without a token: refuses to start.
	for _, listen := range []string{"0.0.0.0:0", "[::]:0", ":0"} {
		r := run(t, dbEnv(url), "serve", "--listen", listen)
		if r.code != ExitFailure || !strings.Contains(r.stderr, "bearer token is required") {
			t.Errorf("serve --listen %s without a token: exit %d, %q", listen, r.code, r.stderr)
		}
	}
	if r := run(t, append(dbEnv(url), "OTELAUDIT_SERVE_TOKEN=short"), "serve", "--listen", "0.0.0.0:0"); r.code != ExitFailure {
		t.Errorf("short token accepted: exit %d", r.code)
	}
	if r := run(t, dbEnv(url), "serve", "--trace-url", "javascript:alert(1)//{trace_id}"); r.code != ExitFailure {
		t.Errorf("javascript: trace URL accepted: exit %d", r.code)
	}

	const token = "0123456789abcdef-test-token"
	base := startServe(t, append(dbEnv(url), "OTELAUDIT_SERVE_TOKEN="+token))
	get := func(path, auth, host string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		if host != "" {
			req.Host = host
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := get("/", "", "")
	if res.StatusCode != 200 {
		t.Fatalf("page: %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'", "X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cross-Origin-Opener-Policy": "same-origin",
	} {
		if got := res.Header.Get(k); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q…", k, got, want)
		}
	}
	if c := res.Header.Get("Content-Security-Policy"); strings.Contains(c, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %s", c)
	}
	if got := get("/api/calls", "", "").StatusCode; got != http.StatusUnauthorized {
		t.Errorf("API without token: %d", got)
	}
	if got := get("/api/calls", "Bearer wrong-token-wrong-token", "").StatusCode; got != http.StatusUnauthorized {
		t.Errorf("API with a wrong token: %d", got)
	}
	ok := get("/api/calls", "Bearer "+token, "")
	if ok.StatusCode != 200 || ok.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("API with the token: %d, Cache-Control %q", ok.StatusCode, ok.Header.Get("Cache-Control"))
	}
	if got := get("/api/calls", "Bearer "+token, "attacker.example").StatusCode; got != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host on a loopback listener (DNS rebinding): %d", got)
	}
	if got := get("/api/calls?request_id=1%27%20OR%201=1", "Bearer "+token, "").StatusCode; got != http.StatusBadRequest {
		t.Errorf("bad filter: %d, want 400", got)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/calls", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %v %v", res.StatusCode, err)
	}
}

// hourOfTraffic is what the screenshots show: calls over the last hour with
// a daily shape of tools, subjects, failures and latencies.
func hourOfTraffic(now time.Time) []instrumentation.Call {
	tools := []string{"search_docs", "github.list_repos", "github.create_issue", "fs.read_file", "jira.search", "slack.post_message", "db.query"}
	backends := []string{"docs", "github", "github", "files", "jira", "slack", "warehouse"}
	subjects := []string{"alice@example.com", "bob@example.com", "carol@example.com", "ci-bot", "dana@example.com"}
	roles := []string{"engineer", "engineer", "auditor", "automation", "analyst"}
	errs := []string{"upstream 503 Service Unavailable", "rate limited by backend", "file not found: /srv/reports/q4.pdf"}
	var calls []instrumentation.Call
	for i := 0; i < 420; i++ {
		ago := time.Duration(i) * 57 * time.Minute / 420
		k := (i*7 + i/13) % len(tools)
		s := (i*3 + i/7) % len(subjects)
		c := instrumentation.Call{
			Start: now.Add(-ago - 20*time.Second), Subject: subjects[s], Role: roles[s], Tool: tools[k], Backend: backends[k],
			Args:      map[string]any{"query": "quarterly report", "limit": 20, "token": "ghp_example"},
			Latency:   time.Duration(20+(i*37)%400) * time.Millisecond,
			SessionID: "sess-" + string(rune('a'+s)), Method: "tools/call",
		}
		switch {
		case i%17 == 3:
			c.Err = errors.New(errs[i%len(errs)])
		case i%23 == 5:
			c.Err = fmt.Errorf("role %s may not call %s: %w", roles[s], tools[k], instrumentation.ErrDenied)
		case i%41 == 7:
			c.Status = "timeout"
			c.Err = errors.New("backend did not answer within 30s")
		}
		calls = append(calls, c)
	}
	return calls
}
