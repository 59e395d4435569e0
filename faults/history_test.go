package faults

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// registerInput is one operation on a key: a write of value, or a read.
type registerInput struct {
	Key   string
	Write bool
	Value string
}

// registerOutput is what a read saw.
type registerOutput struct {
	Value string
}

// registerModel: each certificate's description is a register, and each key is checked
// on its own (porcupine's partitioning keeps the search small).
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(registerInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "initial" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(registerInput)
		if in.Write {
			return true, in.Value
		}
		return output.(registerOutput).Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(registerInput)
		if in.Write {
			return fmt.Sprintf("write(%s, %s)", in.Key, in.Value)
		}
		return fmt.Sprintf("read(%s) -> %s", in.Key, output.(registerOutput).Value)
	},
}

// history records operations with times on one monotonic clock.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// counts of outcomes, for the test log and for sanity checks
	acked, refused, unknown, reads int
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return time.Since(h.start).Nanoseconds() }

// ambiguousReturn is the return time of a write whose outcome is unknown: it may take
// effect at any later point or never, so it stays open until after every other operation
// (porcupine then places it anywhere after its call, including at the very end).
const ambiguousReturn = int64(1) << 62

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}
