package main

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/linkops/linkops/logs"
)

// benchB6: the node-local log store — access records ingested per second through the
// store's non-blocking append and batched writer, and p99 of filtered queries once it holds
// the given number of records.
func benchB6(dir string, records int) Result {
	log.Printf("B6: ingest %d access records, then filtered queries", records)
	check(os.MkdirAll(dir, 0o700))
	rate, p50, p99, err := logs.Bench(dir, records)
	check(err)
	log.Printf("B6: %.0f records/s, query p50 %s, p99 %s", rate, p50, p99)
	return Result{
		ID: "B6", What: fmt.Sprintf("access-log ingest on one node's store, and filtered queries over %d records", records),
		Figures: map[string]float64{"recordsPerSecond": rate, "queryP50Ms": ms(p50), "queryP99Ms": ms(p99), "records": float64(records)},
		Target:  "≥ 50,000 records/s; query p99 ≤ 200 ms",
		Met:     rate >= 50000 && p99 <= 200*time.Millisecond,
		Notes:   "queries mix status+path, user+time range and text filters, 20 records a page, newest first",
	}
}
