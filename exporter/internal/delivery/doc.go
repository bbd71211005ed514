// Package delivery is what happens to the rows of a batch once the SDK
// exporter has mapped them: it writes them to PostgreSQL, retrying transient
// failures; keeps them in the local spool when PostgreSQL stays away;
// replays the spool in the background, oldest batch first; knows at every
// moment whether records can be stored durably ([Delivery.Health]); and
// counts every figure once, in the metric instruments and in the totals
// [Delivery.Stats] returns.
//
// [Delivery] depends on a [Writer] and a [Spool], two small interfaces that
// pgwriter.Writer and spool.Spool satisfy, so that it can be tested on its own
// against fakes that fail in every way a database or a disk can.
//
// Health fails (with [ErrUnavailable]) whenever records are being lost or
// would be: the processor's queue is full, the last write failed with an
// error no retry can fix, the last spool append failed (full, ENOSPC,
// EFBIG, ...), or PostgreSQL is unreachable and there is no spool. Each
// cause clears on its own once it is gone: a later write, append or replay
// succeeds, or the background probe finds PostgreSQL accepting writes again.
package delivery
