package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

func dbEnv(url string) []string { return []string{"OTELAUDIT_DATABASE_URL=" + url} }

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func mustRun(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("otelaudit %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

func TestQueryFilters(t *testing.T) {
	url, _ := filledDB(t)
	env := dbEnv(url)
	cases := []struct {
		args []string
		want int
	}{
		{nil, 25},
		{[]string{"--since", "1h"}, 24},
		{[]string{"--until", "1h"}, 1},
		{[]string{"--subject", "alice"}, 8},
		{[]string{"--role", "auditor"}, 12},
		{[]string{"--tool", "github.*"}, 12},
		{[]string{"--tool", "search_docs"}, 6},
		{[]string{"--backend", "docs"}, 12},
		{[]string{"--status", "error,denied"}, 13},
		{[]string{"--status", "denied", "--status", "ok"}, 18},
		{[]string{"--session", "s-odd"}, 12},
		{[]string{"--error", "SAID no"}, 3},
		{[]string{"--args", `{"path":"/srv/1"}`}, 12},
		{[]string{"--args", `{"n":7}`}, 1},
		{[]string{"--subject", "bob", "--status", "ok"}, 4},
	}
	for _, c := range cases {
		r := mustRun(t, env, append([]string{"query", "--format", "jsonl"}, c.args...)...)
		if got := len(jsonLines(t, r.stdout)); got != c.want {
			t.Errorf("query %v: %d rows, want %d", c.args, got, c.want)
		}
	}
	// --trace-id and --request-id find exactly the row they name.
	rows := jsonLines(t, mustRun(t, env, "query", "--format", "jsonl", "--subject", "carol", "--limit", "1").stdout)
	for _, flag := range []string{"trace_id", "request_id"} {
		v, _ := rows[0][flag].(string)
		if v == "" {
			t.Fatalf("row has no %s: %v", flag, rows[0])
		}
		got := jsonLines(t, mustRun(t, env, "query", "--format", "jsonl", "--"+strings.ReplaceAll(flag, "_", "-"), v).stdout)
		if len(got) != 1 || got[0]["id"] != rows[0]["id"] {
			t.Errorf("--%s %s: %d rows", flag, v, len(got))
		}
	}
	// Arguments are stored redacted.
	if args, _ := json.Marshal(rows[0]["request_args"]); !strings.Contains(string(args), `"api_key":"[REDACTED]"`) {
		t.Errorf("arguments not redacted: %s", args)
	}
}

// TestQueryInjection puts SQL into every flag: each either matches nothing
// (or only the row holding the text) or is refused with exit 2, and the
// table keeps its 25 rows.
func TestQueryInjection(t *testing.T) {
	url, _ := filledDB(t)
	env := dbEnv(url)
	const sqli = `' OR 1=1; DROP TABLE audit_log; --`
	for _, flag := range []string{"--subject", "--role", "--tool", "--backend", "--status", "--session", "--error", "--args", "--trace-id", "--request-id", "--since", "--until", "--after"} {
		r := run(t, env, "query", "--format", "jsonl", flag, sqli)
		switch {
		case r.code == ExitFailure && r.stdout == "":
		case r.code == 0 && r.stdout == "":
		default:
			t.Errorf("%s %q: exit %d, stdout %q", flag, sqli, r.code, r.stdout)
		}
	}
	r := run(t, env, "--table", `audit_log"; DROP TABLE audit_log; --`, "query")
	if r.code != ExitFailure {
		t.Errorf("hostile --table: exit %d", r.code)
	}
	if got := len(jsonLines(t, mustRun(t, env, "query", "--format", "jsonl").stdout)); got != 25 {
		t.Fatalf("after the attempts: %d rows, want 25", got)
	}
}

func TestQueryFormatsAndPaging(t *testing.T) {
	url, _ := filledDB(t)
	env := dbEnv(url)

	// json: one array.
	var arr []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, env, "query", "--format", "json").stdout), &arr); err != nil || len(arr) != 25 {
		t.Fatalf("json: %d rows, %v", len(arr), err)
	}
	// Newest first.
	if a, b := arr[0]["timestamp"].(string), arr[1]["timestamp"].(string); a < b {
		t.Fatalf("not newest first: %s then %s", a, b)
	}
	// csv: header + rows, parsed by encoding/csv, the hostile row intact.
	recs, err := csv.NewReader(strings.NewReader(mustRun(t, env, "query", "--format", "csv").stdout)).ReadAll()
	if err != nil || len(recs) != 26 || recs[0][0] != "id" || recs[0][5] != "tool_name" {
		t.Fatalf("csv: %d records, %v, header %v", len(recs), err, recs[0])
	}
	if last := recs[25]; last[3] != xss {
		t.Fatalf("csv: hostile subject %q, want %q", last[3], xss)
	}
	// table: the escape character is shown, not sent to the terminal.
	tbl := mustRun(t, env, "query", "--format", "table").stdout
	if !strings.HasPrefix(tbl, "TIME ") || strings.Contains(tbl, "\x1b") || !strings.Contains(tbl, `\x1b[31m`) {
		t.Fatalf("table output:\n%s", tbl)
	}
	// ocsf from query too.
	if ev := jsonLines(t, mustRun(t, env, "query", "--format", "ocsf", "--limit", "1").stdout); ev[0]["class_uid"] != float64(6003) {
		t.Fatalf("ocsf: %v", ev)
	}

	// Keyset paging: --limit 10 three times with the printed cursor.
	var ids []any
	args := []string{"query", "--format", "jsonl", "--limit", "10"}
	cursorRE := regexp.MustCompile(`--after (\S+)`)
	for page := 0; page < 5; page++ {
		r := mustRun(t, env, args...)
		for _, row := range jsonLines(t, r.stdout) {
			ids = append(ids, row["id"])
		}
		m := cursorRE.FindStringSubmatch(r.stderr)
		if m == nil {
			break
		}
		args = []string{"query", "--format", "jsonl", "--limit", "10", "--after", m[1]}
	}
	if len(ids) != 25 {
		t.Fatalf("paged %d rows, want 25", len(ids))
	}
	for i, row := range arr {
		if ids[i] != row["id"] {
			t.Fatalf("page order differs at %d", i)
		}
	}
}

func TestExportFormatsAndResume(t *testing.T) {
	url, _ := filledDB(t)
	env := dbEnv(url)
	dir := t.TempDir()

	// jsonl, oldest first, with the cursor on stderr.
	r := mustRun(t, env, "export")
	all := jsonLines(t, r.stdout)
	if len(all) != 25 || all[0]["client_subject"] != xss {
		t.Fatalf("export: %d rows, first %v", len(all), all[0]["client_subject"])
	}
	if !strings.Contains(r.stderr, "exported 25 rows") {
		t.Fatalf("stderr: %q", r.stderr)
	}

	// Resume: export 10 rows' worth, then continue from the printed cursor
	// into the same file; the result equals one full export.
	out := filepath.Join(dir, "part.csv")
	r = mustRun(t, env, "export", "--format", "csv", "--until", "1h", "-o", out) // the hostile row alone
	cur := regexp.MustCompile(`--after (\S+)`).FindStringSubmatch(r.stderr)
	if cur == nil {
		t.Fatalf("no cursor: %q", r.stderr)
	}
	mustRun(t, env, "export", "--format", "csv", "-o", out, "--after", cur[1])
	b, _ := os.ReadFile(out)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 26 {
		t.Fatalf("resumed csv: %d records (want header + 25), %v", len(recs), err)
	}
	for i, rec := range recs[1:] {
		if rec[0] != fmt.Sprint(all[i]["id"]) {
			t.Fatalf("resumed csv row %d is id %s, want %v", i, rec[0], all[i]["id"])
		}
	}

	// ocsf.
	evs := jsonLines(t, mustRun(t, env, "export", "--format", "ocsf", "--status", "denied").stdout)
	if len(evs) != 6 {
		t.Fatalf("ocsf: %d events, want 6", len(evs))
	}
	ev := evs[0]
	api := ev["api"].(map[string]any)
	if ev["class_uid"] != float64(6003) || ev["status_id"] != float64(2) || api["operation"] != "fs.read_file" ||
		ev["actor"].(map[string]any)["user"].(map[string]any)["uid"] == "" || ev["metadata"].(map[string]any)["uid"] == "" {
		t.Fatalf("ocsf event: %v", ev)
	}
	if r := run(t, env, "export", "--format", "table"); r.code != ExitFailure {
		t.Fatalf("export --format table: exit %d", r.code)
	}
}

func TestStatsCommand(t *testing.T) {
	url, _ := filledDB(t)
	env := dbEnv(url)
	var st []struct {
		Key     string  `json:"key"`
		Calls   int     `json:"calls"`
		Errors  int     `json:"errors"`
		Denials int     `json:"denials"`
		P50     float64 `json:"p50_ms"`
		P99     float64 `json:"p99_ms"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, env, "stats", "--by", "backend", "--format", "json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Calls != 12 || st[0].Errors+st[1].Errors != 6 || st[0].Denials+st[1].Denials != 6 || st[0].P99 < st[0].P50 {
		t.Fatalf("stats by backend: %+v", st)
	}
	for _, by := range []string{"tool", "subject", "status", "error"} {
		r := mustRun(t, env, "stats", "--by", by, "--format", "table")
		if !strings.Contains(r.stdout, "P99 MS") {
			t.Errorf("stats --by %s:\n%s", by, r.stdout)
		}
	}
	if r := run(t, env, "stats", "--by", "nonsense"); r.code != ExitFailure {
		t.Errorf("--by nonsense: exit %d", r.code)
	}
}

func TestTailFollow(t *testing.T) {
	url, a := filledDB(t)
	cmd := exec.Command(binPath, "tail", "-f", "-n", "3", "--format", "jsonl", "--interval", "100ms", "--tool", "late.*")
	cmd.Env = append(cleanEnv(), dbEnv(url)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	time.Sleep(500 * time.Millisecond)
	a.record(t, instrumentation.Call{Tool: "late.one", Subject: "dave", Latency: time.Millisecond},
		instrumentation.Call{Tool: "other", Subject: "dave", Latency: time.Millisecond},
		instrumentation.Call{Tool: "late.two", Subject: "dave", Latency: time.Millisecond})
	var got []string
	deadline := time.After(15 * time.Second)
	for len(got) < 2 {
		select {
		case m := <-lines:
			got = append(got, m["tool_name"].(string))
		case <-deadline:
			t.Fatalf("tail -f printed %v within 15 s; stderr %s", got, stderr.String())
		}
	}
	if strings.Join(got, ",") != "late.one,late.two" {
		t.Fatalf("tail -f printed %v", got)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tail -f after SIGINT: %v, stderr %s", err, stderr.String())
	}

	// Without -f: the newest -n rows, oldest of them first.
	rows := jsonLines(t, mustRun(t, dbEnv(url), "tail", "-n", "2", "--format", "jsonl").stdout)
	if len(rows) != 2 || rows[1]["tool_name"] != "late.two" {
		t.Fatalf("tail -n 2: %v", rows)
	}
}

func TestUnreachableDatabaseExit2(t *testing.T) {
	for _, args := range [][]string{{"query"}, {"tail"}, {"export"}, {"stats"}} {
		r := run(t, []string{"OTELAUDIT_DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, args...)
		if r.code != ExitFailure || !strings.HasPrefix(r.stderr, "otelaudit: connect:") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	_ = pgtest.AdminURL
}
