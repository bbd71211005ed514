package auditrow_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// TestColumnsMatchMigrations compares the column table with the table the
// migrations create, in both directions: a column added to a migration and
// not to auditrow.Columns (or the other way round), or with another type or
// nullability, fails here.
func TestColumnsMatchMigrations(t *testing.T) {
	t.Parallel()
	want := map[string]string{}
	for _, c := range auditrow.Columns {
		want[c.Name] = describe(c.Type, c.Nullable)
	}
	for _, c := range append(append([]auditrow.ServerColumn(nil), auditrow.ServerColumns...), auditrow.SealColumns...) {
		if _, dup := want[c.Name]; dup {
			t.Fatalf("column %s is both a row column and a server column", c.Name)
		}
		want[c.Name] = describe(c.Type, c.Nullable)
	}
	for _, table := range []string{"audit_log", "mcp_audit"} {
		t.Run(table, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			ctx := context.Background()
			if err := migrations.Up(ctx, url, migrations.WithTable(table)); err != nil {
				t.Fatal(err)
			}
			conn := pgtest.Connect(t, url)
			rows, err := conn.Query(ctx, `SELECT column_name, data_type, is_nullable = 'YES'
				FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, table)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for rows.Next() {
				var name, typ string
				var nullable bool
				if err := rows.Scan(&name, &typ, &nullable); err != nil {
					t.Fatal(err)
				}
				got[name] = describe(typ, nullable)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			var diffs []string
			for name, w := range want {
				switch g, ok := got[name]; {
				case !ok:
					diffs = append(diffs, fmt.Sprintf("%s: in auditrow.Columns (%s), not in the migrated table", name, w))
				case g != w:
					diffs = append(diffs, fmt.Sprintf("%s: auditrow.Columns says %s, the migrated table has %s", name, w, g))
				}
			}
			for name, g := range got {
				if _, ok := want[name]; !ok {
					diffs = append(diffs, fmt.Sprintf("%s (%s): in the migrated table, not in auditrow.Columns, auditrow.ServerColumns or auditrow.SealColumns", name, g))
				}
			}
			sort.Strings(diffs)
			if len(diffs) > 0 {
				t.Errorf("table %s and the column table disagree:\n%s", table, strings.Join(diffs, "\n"))
			}
		})
	}
}

func describe(typ string, nullable bool) string {
	if nullable {
		return typ + " NULL"
	}
	return typ + " NOT NULL"
}
