package logs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"time"
)

// Bench measures SPEC §6 B6 for the bench program: it opens a store in dir, ingests
// records access records as fast as the writer commits them, and then times 200 filtered
// queries (status=500 and a path prefix; a user and a time range; a text search).
// ingestPerSec counts from the first append to the end of the final Flush.
func Bench(dir string, records int) (ingestPerSec float64, queryP50, queryP99 time.Duration, err error) {
	if records <= 0 {
		return 0, 0, 0, errors.New("bench: records must be positive")
	}
	s, err := Open(Options{Path: filepath.Join(dir, "logs.db"), ServerID: "bench"})
	if err != nil {
		return 0, 0, 0, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	gen := newBenchGen(1, records)
	elapsed, err := s.benchIngest(gen, records)
	if err != nil {
		return 0, 0, 0, err
	}
	ingestPerSec = float64(records) / elapsed.Seconds()

	const queries = 200
	rng := rand.New(rand.NewPCG(2, 2))
	durations := make([]time.Duration, 0, queries)
	found := 0
	for i := range queries {
		f := gen.filter(rng, i)
		start := time.Now()
		recs, err := s.QueryAccess(context.Background(), f)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("bench query %+v: %w", f, err)
		}
		durations = append(durations, time.Since(start))
		found += len(recs)
	}
	if found == 0 {
		return 0, 0, 0, errors.New("bench: no query matched anything")
	}
	slices.Sort(durations)
	rank := func(p int) time.Duration { return durations[(len(durations)*p+99)/100-1] } // nearest rank
	return ingestPerSec, rank(50), rank(99), nil
}

// benchIngest appends n generated records and flushes them. Unlike AppendAccess it waits
// when the queue is full, so that it measures what the writer sustains, not how fast
// records can be dropped.
func (s *Store) benchIngest(gen *benchGen, n int) (time.Duration, error) {
	start := time.Now()
	for i := range n {
		it := s.accessItem(gen.record(i))
		for !s.tryEnqueue(it) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

var (
	benchUsers     = []string{"admin", "ops-alice", "ops-bob", "ops-carol", "dev-dave", "dev-erin", "svc-ota", "svc-rules", "auditor", "viewer"}
	benchMethods   = []string{"GET", "GET", "POST", "PUT", "DELETE"}
	benchStatuses  = []int{200, 200, 200, 201, 204, 400, 404, 409, 500}
	benchResources = []string{"devices", "products", "gateways", "protocols", "network-components", "certificates", "firmwares", "upgrade-tasks", "media-servers", "logs/access"}
	benchSuffixes  = []string{"", "/{id}", "/{id}/_enable", "/{id}/_disable", "/_query"}
	benchErrors    = []string{
		"context deadline exceeded: upstream timeout after 30s",
		"raft: leadership lost while committing",
		"dial tcp 10.0.3.17:1883: connect: connection refused",
	}
)

// benchGen produces varied, realistic access records: 10 users, 5 methods, statuses
// 200/201/204/400/404/409/500, 50 paths, 1% with an exception. Record i's request time is
// i×10µs after the start, a node serving 100,000 requests/s.
type benchGen struct {
	rng   *rand.Rand
	base  time.Time
	step  time.Duration
	n     int
	paths []string
}

func newBenchGen(seed uint64, n int) *benchGen {
	g := &benchGen{rng: rand.New(rand.NewPCG(seed, seed)), step: 10 * time.Microsecond, n: n}
	g.base = time.Now().Add(-time.Duration(n) * g.step)
	for _, r := range benchResources {
		for _, s := range benchSuffixes {
			g.paths = append(g.paths, "/api/v1/"+r+s)
		}
	}
	return g
}

func (g *benchGen) record(i int) *AccessRecord {
	rng := g.rng
	path := g.paths[rng.IntN(len(g.paths))]
	method := benchMethods[rng.IntN(len(benchMethods))]
	if rng.IntN(20) == 0 {
		method = "PATCH"
	}
	status := benchStatuses[rng.IntN(len(benchStatuses))]
	if rng.IntN(7) == 0 {
		status = 500
	}
	id := fmt.Sprintf("id-%06d", rng.IntN(1000000))
	url := path
	var params map[string]any
	if method == "GET" {
		url += "?pageIndex=0&pageSize=20"
		params = map[string]any{"pageIndex": 0, "pageSize": 20, "id": id}
	} else {
		params = map[string]any{"id": id, "name": "device " + id, "productId": "demo-product", "secureKey": "***"}
	}
	req := g.base.Add(time.Duration(i) * g.step)
	dur := time.Duration(1+rng.IntN(50)) * time.Millisecond
	r := &AccessRecord{
		Action:       method + " " + path,
		URL:          url,
		HTTPMethod:   method,
		Parameters:   params,
		IP:           fmt.Sprintf("10.0.%d.%d", rng.IntN(8), 1+rng.IntN(250)),
		Username:     benchUsers[rng.IntN(len(benchUsers))],
		Status:       status,
		RequestTime:  req,
		ResponseTime: req.Add(dur),
		DurationMs:   float64(dur) / float64(time.Millisecond),
	}
	if rng.IntN(100) == 0 {
		r.Exception = benchErrors[rng.IntN(len(benchErrors))]
		r.Status = 500
	}
	return r
}

// filter returns the i-th query of the bench mix.
func (g *benchGen) filter(rng *rand.Rand, i int) Filter {
	switch i % 3 {
	case 0:
		prefix := "/api/v1/" + benchResources[rng.IntN(len(benchResources))]
		if rng.IntN(2) == 0 {
			prefix = g.paths[rng.IntN(len(g.paths))]
		}
		return Filter{Status: 500, Path: prefix, Limit: 20}
	case 1:
		span := time.Duration(g.n) * g.step
		from := g.base.Add(time.Duration(rng.Int64N(int64(span))))
		return Filter{Username: benchUsers[rng.IntN(len(benchUsers))], From: from, To: from.Add(span / 10), Limit: 20}
	default:
		return Filter{Text: []string{"timeout", "connection refused", "leadership"}[rng.IntN(3)], Limit: 20}
	}
}
