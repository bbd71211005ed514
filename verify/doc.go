// Package verify checks that an otelaudit trail was not tampered with.
//
// [Run] streams every row and seal of an audit table in order, recomputes
// each row's hash from its content (internal/integrity's canonical form),
// each batch's hash over its rows, each seal's hash and link to the seal
// before it, and checks the signed checkpoints in the database and in an
// external anchor (a JSON Lines file written by the exporter) against the
// chain. The [Report] names the first bad row or seal, its stream and what
// is wrong; [Report.Streams] gives each stream's state (intact, broken at
// seal N, unclosed), which is what a health check or a viewer shows.
//
// Without an anchor, a chain whose tail was cut off (the last rows and their
// seals deleted) or a database restored from an older copy still looks
// intact: only checkpoints kept outside the database catch those.
//
// The `otelaudit verify` command is a thin front end over Run.
package verify
