package migrations

// reserved holds PostgreSQL's key words that cannot name a table unquoted:
// the reserved ones and those reserved except as function or type names
// (pg_get_keywords() catcode R and T in PostgreSQL 15). The migrations do not
// quote the table name (they are plain SQL files, usable with the migrate
// CLI), so these names are refused before anything touches the database.
var reserved = map[string]struct{}{}

func init() {
	for _, w := range []string{
		"all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization",
		"binary", "both", "case", "cast", "check", "collate", "collation", "column", "concurrently",
		"constraint", "create", "cross", "current_catalog", "current_date", "current_role",
		"current_schema", "current_time", "current_timestamp", "current_user", "default", "deferrable",
		"desc", "distinct", "do", "else", "end", "except", "false", "fetch", "for", "foreign", "freeze",
		"from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner", "intersect",
		"into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
		"localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order",
		"outer", "overlaps", "placing", "primary", "references", "returning", "right", "select",
		"session_user", "similar", "some", "symmetric", "system_user", "table", "tablesample", "then", "to",
		"trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when", "where",
		"window", "with",
	} {
		reserved[w] = struct{}{}
	}
}
