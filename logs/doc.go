// Package logs owns node-local storage of access and system log records: batched writes
// off the request path, retention by age and size, and indexed queries. It must not touch
// HTTP, raft or the replicated state: a record stays on the node that produced it (SPEC
// §4.9), and listing records cluster-wide is the api package's job.
//
// Appending is a non-blocking channel send: logging must never slow the API, so when the
// queue is full a record is dropped and counted (linkops_log_records_dropped_total) rather
// than waited for. One goroutine owns every write — it drains the queue into bbolt
// transactions of up to Options.BatchSize records, and runs retention between batches — so
// the stored size is tracked exactly without locks and retention never competes with
// ingest for bbolt's single writer.
//
// # Layout
//
// Each kind (Access, System) has a bucket of JSON records keyed by a 12-byte key: the
// big-endian unix-nanosecond record time followed by a 4-byte sequence number. Keys sort by
// time, so a reverse cursor walk yields newest first and a time range is a key range. A
// record id is "<serverId>.<16 hex time>-<8 hex sequence>": the same key in hex, prefixed by
// the node that stores it, so NodeOf tells the api layer which node to ask for it. Index
// buckets hold "value 0x00 key" → empty for username, method and status (access) and level
// and name (system); a query with several indexed filters intersects them newest-first
// (a leapfrog join), and checks every filter on the decoded record, so indexes only ever
// narrow the candidates.
//
// # Key decisions and trade-offs
//
//   - bbolt, not a log-structured engine or plain files: it is already a dependency (through
//     raft-boltdb), keeps everything in one file, gives atomic transactions (a record and its
//     index entries appear and disappear together, with the size counter), and its ordered
//     keys make time-ordered scans and range seeks cheap. The cost is that a bbolt file never
//     shrinks: deleted pages go to a freelist and are reused by later writes, so retention
//     bounds the file at its high-water mark, not at the current data size — about 1.5×
//     MaxBytes for typical access records (index entries, page headers, the space splits
//     leave free). A page freed while a read transaction is open cannot be reused until it
//     ends, so queries honour their context and stop as soon as a page is full.
//   - The freelist is not written on every commit (NoFreelistSync) but rebuilt on Open:
//     retention frees many pages, and writing that list with every batch would cost more
//     than a slower start.
//   - Size counts the bytes of stored record values, not the file: it is exact, persisted
//     with every transaction, and independent of page fill, so MaxBytes means the same on
//     every node. Once Size passes MaxBytes the oldest records (across both kinds) are
//     deleted until it is at most 90% of MaxBytes, so trimming runs in bursts, not after
//     every batch.
//   - Records become queryable when their batch commits: within Options.FlushInterval, or
//     at once after Flush.
package logs
