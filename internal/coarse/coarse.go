// Package coarse owns a clock for hot paths that need the time to a few milliseconds,
// not to the nanosecond: reading the system clock costs a system call on machines whose
// clock source has no vDSO fast path (seen on the bench machine: 5 % of the CPU of a
// device message), and a device message needs it several times. It must not be used
// where order between events matters to the millisecond.
package coarse

import (
	"sync"
	"sync/atomic"
	"time"
)

// Resolution is how stale Now may be.
const Resolution = 5 * time.Millisecond

var (
	now   atomic.Int64 // unix nanoseconds
	start sync.Once
)

// Now returns the current time to within Resolution. The first call starts the one
// goroutine that keeps it current.
func Now() time.Time {
	start.Do(func() {
		now.Store(time.Now().UnixNano())
		go func() {
			for t := range time.Tick(Resolution) {
				now.Store(t.UnixNano())
			}
		}()
	})
	return time.Unix(0, now.Load())
}
