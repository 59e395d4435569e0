package blob_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"
)

// genReader yields size bytes cut from a random block whose length divides no part size,
// so no two parts are alike and a reordered part changes the hash.
type genReader struct {
	block []byte
	n     int64
	size  int64
}

func newGenReader(size int64) *genReader {
	return &genReader{block: randomBytes(1<<20 + 13), size: size}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n >= g.size {
		return 0, io.EOF
	}
	if left := g.size - g.n; int64(len(p)) > left {
		p = p[:left]
	}
	off := int(g.n % int64(len(g.block)))
	n := copy(p, g.block[off:])
	g.n += int64(n)
	return n, nil
}

// peakHeapGrowth runs fn while sampling the heap every 2 ms, and returns how far HeapInuse
// rose above where it stood before fn.
func peakHeapGrowth(fn func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	peak := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	})
	fn()
	close(stop)
	wg.Wait()
	return peak - base
}

// Put of a large upload of unknown size, as a multipart/form-data firmware upload is,
// holds a few MiB whatever the size. With minio's default PartSize this would be ~528 MiB.
// Not parallel: other tests' allocations would count.
func TestPutMemoryBounded(t *testing.T) {
	const size = 256 << 20
	want := sha256.New()
	if _, err := io.Copy(want, newGenReader(size)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		open  func(*testing.T) fixture
		limit uint64
	}{
		{"s3", openS3Fixture, 32 << 20},
		{"file", openFileFixture, 8 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := c.open(t)
			ctx := t.Context()
			var err error
			growth := peakHeapGrowth(func() {
				err = f.Put(ctx, "firmwares/big/blob", newGenReader(size), -1)
			})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			t.Logf("%s: Put of 256 MiB with size -1: peak heap growth %.1f MiB (limit %d MiB)",
				c.name, float64(growth)/(1<<20), c.limit>>20)
			if growth >= c.limit {
				t.Fatalf("peak heap growth %.1f MiB, want under %d MiB", float64(growth)/(1<<20), c.limit>>20)
			}

			// And every byte arrived, in order.
			obj, info, err := f.Open(ctx, "firmwares/big/blob")
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			got := sha256.New()
			if _, err := io.Copy(got, obj); err != nil {
				t.Fatal(err)
			}
			if info.Size != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
				t.Fatalf("stored %d bytes with a different hash; want %d bytes as generated", info.Size, int64(size))
			}
		})
	}
}
