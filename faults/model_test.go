package faults

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestRegisterModelCatchesViolations makes sure the checker the fault suite relies on can
// fail: a stale read, a lost acknowledged write, and a read of a value never written are
// all refused, while an unknown-outcome write may or may not have happened.
func TestRegisterModelCatchesViolations(t *testing.T) {
	w := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: registerInput{Key: "k", Write: true, Value: v}, Call: call, Output: registerOutput{}, Return: ret}
	}
	r := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: registerInput{Key: "k"}, Call: call, Output: registerOutput{Value: v}, Return: ret}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"read after write", []porcupine.Operation{w(0, "a", 0, 10), r(1, "a", 20, 30)}, true},
		{"stale read", []porcupine.Operation{w(0, "a", 0, 10), w(0, "b", 20, 30), r(1, "a", 40, 50)}, false},
		{"lost write", []porcupine.Operation{w(0, "a", 0, 10), r(1, "initial", 20, 30)}, false},
		{"value never written", []porcupine.Operation{r(1, "z", 0, 10)}, false},
		{"non-monotonic reads", []porcupine.Operation{w(0, "a", 0, 100), r(1, "a", 10, 20), r(2, "initial", 30, 40)}, false},
		{"unknown write seen", []porcupine.Operation{w(0, "a", 0, ambiguousReturn), r(1, "a", 20, 30)}, true},
		{"unknown write never seen", []porcupine.Operation{w(0, "a", 0, ambiguousReturn), r(1, "initial", 20, 30)}, true},
	} {
		if got := porcupine.CheckOperations(registerModel, tc.ops); got != tc.ok {
			t.Errorf("%s: linearizable = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
