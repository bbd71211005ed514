// Package integrity makes the audit trail prove itself: canonical row
// hashes, per-stream seal chains, and signed checkpoints kept in anchors
// outside the database.
//
//   - [RowHash] hashes a row's canonical document ([AppendCanonicalRow], RFC
//     8785 JSON Canonicalization with two extensions that make it the same
//     for the mapped row and for the row as PostgreSQL returns it; see
//     [AppendCanonicalJSON]).
//   - A [Seal] links one committed batch (or a counted gap, a stream's close,
//     a retention drop) to the seal before it in its stream; [BatchHasher]
//     hashes the batch's row hashes in order. [LockHead], [Head.Next] and
//     [InsertSeal] chain seals inside the writer's transaction, serialised
//     per stream by a transaction-level advisory lock ([LockKey]).
//   - A [Checkpoint] is an Ed25519 signature over a stream's head, stored in
//     the checkpoint table and appended to an [Anchor] such as a
//     [FileAnchor] (JSON Lines); [ReadAnchor] reads one back.
//
// Package verify (the public verification library) recomputes all of it.
package integrity
