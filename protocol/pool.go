package protocol

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/dop251/goja"
)

const (
	// maxPoolSize bounds the runtimes of one Pool: every runtime holds its own copy of the
	// codec's heap, and calls are CPU-bound, so more would queue in the scheduler instead.
	maxPoolSize = 64
	// affinityWait is how long a call waits for its device's runtime while another device
	// uses it before it takes any free runtime. A call normally takes tens of
	// microseconds, so a runtime busy for longer than this is most likely inside a call
	// that is timing out, or stuck after one.
	affinityWait = 10 * time.Millisecond
)

// defaultPoolSize is the size of a Pool made with size ≤ 0: enough runtimes that a few
// stuck or looping devices leave the cores busy with the others, few enough that a node
// with many protocols does not hold dozens of heaps for each.
func defaultPoolSize() int {
	return min(max(4, 2*runtime.GOMAXPROCS(0)), 16)
}

// Pool is a protocol's JavaScript codec loaded in several sandboxed runtimes, for the
// gateway pipeline: calls for different devices run in parallel, and a device whose codec
// call loops or gets stuck holds up itself, not the others. It is safe for concurrent use.
//
// A device's calls go to the runtime its id hashes to, so state a codec keeps in globals
// stays per device, as codec authors expect. Affinity is a preference and isolation wins:
// when that runtime is busy with another device for longer than affinityWait, the call
// takes any free runtime, and sees that runtime's globals. A device's own calls run one at
// a time, the next waiting (within its context) until the runtime of the last one is free
// again, even when that call was stuck in a built-in after its timeout: so one device never
// holds more than one runtime, however many messages it sends. Calls without a device id
// (authenticate, or decode before the device is known) take any free runtime.
type Pool struct {
	file  string
	prg   *goja.Program
	auth  bool
	slots []poolSlot

	mu sync.Mutex
	// Guarded by mu.
	free    int
	next    int                 // where the search for any free runtime starts
	devices map[string]struct{} // devices with a call holding a runtime
	waiters []*waiter           // in arrival order
}

type poolSlot struct {
	busy bool // guarded by Pool.mu
	// engine belongs to the call holding the slot. It is nil after goja panicked in it,
	// and the next call to get the slot loads a fresh one.
	engine *engine
	worker worker
}

// worker is the goroutine that runs a runtime's calls. It outlives them because goja needs
// a deep stack: on a fresh goroutine per call, growing one took a sixth of a decode. It ends
// when idle for workerIdle, so a dropped Pool leaves no goroutine behind.
type worker struct {
	mu    sync.Mutex
	alive bool
	jobs  chan func() // of one: a call is started only by the caller holding the slot
}

// workerIdle is how long a worker waits for the next call of its runtime.
const workerIdle = 10 * time.Second

// start runs f on the worker, starting it if it ended.
func (w *worker) start(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.jobs <- f // never blocks: the last call released the slot before it ended
	if !w.alive {
		w.alive = true
		go w.serve()
	}
}

func (w *worker) serve() {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		select {
		case f := <-w.jobs:
			f()
		case <-idle.C:
			w.mu.Lock()
			if len(w.jobs) == 0 {
				w.alive = false
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
		}
		idle.Reset(workerIdle)
	}
}

// waiter is a call waiting for a runtime.
type waiter struct {
	device string
	pref   int  // the device's runtime, or -1
	any    bool // may take any free runtime
	slot   int  // set, with ready closed, when a runtime is handed to it
	ready  chan struct{}
}

// NewPool compiles a package's codec once and loads it into size runtimes (size ≤ 0: a
// default of twice the cores, at least 4 and at most 16; at most 64). It fails like
// Compile.
func NewPool(p *Package, size int) (*Pool, error) {
	if size <= 0 {
		size = defaultPoolSize()
	}
	size = min(size, maxPoolSize)
	file, prg, err := compileCodec(p)
	if err != nil {
		return nil, err
	}
	pool := &Pool{file: file, prg: prg, slots: make([]poolSlot, size), free: size, devices: map[string]struct{}{}}
	for i := range pool.slots {
		e, err := loadEngine(file, prg)
		if err != nil {
			return nil, err
		}
		pool.slots[i].engine = e
		pool.slots[i].worker.jobs = make(chan func(), 1)
	}
	pool.auth = pool.slots[0].engine.authenticate != nil
	return pool, nil
}

// Size returns the number of runtimes.
func (p *Pool) Size() int { return len(p.slots) }

// HasAuthenticate reports whether the codec exports authenticate, so that its devices
// identify themselves through it rather than through the official authentication.
func (p *Pool) HasAuthenticate() bool { return p.auth }

// Decode runs the codec's decode on a message from a device (in.DeviceID, when known,
// chooses the runtime) and returns the device messages and the errors decode reported. A
// returned message that is not a device message (not an object, a field of the wrong type,
// no type or one a device does not send) is dropped alone: the rest of the call stands,
// and the reason is added to the errors, starting with ErrGarbage's text. The call fails
// with ErrTimeout, ErrException, ErrGarbage (a result of the wrong shape) or ErrInput, or
// with the context's error, like Codec.Decode.
func (p *Pool) Decode(ctx context.Context, in DecodeInput) ([]Message, []string, error) {
	arg, bytes, err := decodeCall(in)
	if err != nil {
		return nil, nil, err
	}
	out, err := p.call(ctx, in.DeviceID, "decode", arg, bytes)
	if err != nil {
		return nil, nil, err
	}
	return decodeMessages(out)
}

// Encode runs the codec's encode on a message to a device; deviceID chooses the runtime
// (m.DeviceID when empty). It fails like Decode.
func (p *Pool) Encode(ctx context.Context, deviceID string, m Message) (*EncodeResult, error) {
	if deviceID == "" {
		deviceID = m.DeviceID
	}
	arg, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrInput, err)
	}
	out, err := p.call(ctx, deviceID, "encode", string(arg), nil)
	if err != nil {
		return nil, err
	}
	return encodeResult(out)
}

// Authenticate runs the codec's authenticate on a device's credentials, in any free
// runtime since the device is not known yet. It fails with ErrNoAuthenticate when the
// codec exports none, ErrGarbage when the result is not {success: boolean, deviceId:
// string, message: string} or succeeds without a deviceId, or like Decode.
func (p *Pool) Authenticate(ctx context.Context, in AuthInput) (*AuthResult, error) {
	if !p.auth {
		return nil, fmt.Errorf("%w: %s", ErrNoAuthenticate, p.file)
	}
	arg, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%w: authenticate: %v", ErrInput, err)
	}
	out, err := p.call(ctx, "", "authenticate", string(arg), nil)
	if err != nil {
		return nil, err
	}
	return authResult(out)
}

// call runs op in a runtime chosen for device and returns what the prelude's wrapper
// returned.
func (p *Pool) call(ctx context.Context, device, op, arg string, bytes []any) (string, error) {
	i, err := p.acquire(ctx, device)
	if err != nil {
		return "", fmt.Errorf("%s: waiting for the codec: %w", op, err)
	}
	// Called by the goroutine that ran the call, once it ended (see bounded).
	release := func() { p.release(i, device) }
	if err := ctx.Err(); err != nil {
		release()
		return "", fmt.Errorf("%s: %w", op, err)
	}
	s := &p.slots[i]
	if s.engine == nil {
		// The program loaded when the pool was made, so only a codec whose loading
		// depends on chance or the clock fails here; the next call tries again.
		e, err := loadEngine(p.file, p.prg)
		if err != nil {
			release()
			return "", fmt.Errorf("%w: %s: the codec could not be loaded again after its engine broke: %v", ErrException, op, err)
		}
		s.engine = e
	}
	e := s.engine
	var fn goja.Callable
	switch op {
	case "decode":
		fn = e.decode
	case "encode":
		fn = e.encode
	default:
		fn = e.authenticate
	}
	if fn == nil {
		// Only a runtime loaded again may differ from the first (see above).
		release()
		return "", fmt.Errorf("%w: %s in this runtime", ErrNoAuthenticate, p.file)
	}
	return e.invoke(ctx, op, fn, arg, bytes, release, func(err error) error {
		s.engine = nil
		return fmt.Errorf("%w; the runtime is replaced", err)
	}, s.worker.start)
}

// affine returns the runtime a device's calls prefer.
func (p *Pool) affine(device string) int {
	h := fnv.New32a()
	h.Write([]byte(device))
	return int(h.Sum32() % uint32(len(p.slots)))
}

// acquire waits for a runtime for a call of device ("" for none) and returns its index.
func (p *Pool) acquire(ctx context.Context, device string) (int, error) {
	w := &waiter{device: device, pref: -1, any: true, slot: -1, ready: make(chan struct{})}
	if device != "" {
		w.pref, w.any = p.affine(device), false
	}
	p.mu.Lock()
	p.waiters = append(p.waiters, w)
	p.dispatch()
	i := w.slot
	p.mu.Unlock()
	if i >= 0 {
		return i, nil
	}

	var spill <-chan time.Time
	if !w.any {
		t := time.NewTimer(affinityWait)
		defer t.Stop()
		spill = t.C
	}
	for {
		select {
		case <-w.ready:
			return w.slot, nil
		case <-spill:
			spill = nil
			p.mu.Lock()
			if w.slot < 0 {
				w.any = true
				p.dispatch()
			}
			p.mu.Unlock()
		case <-ctx.Done():
			p.mu.Lock()
			if w.slot >= 0 {
				// Handed a runtime as the context ended: give it back.
				p.releaseLocked(w.slot, device)
			} else {
				p.waiters = slices.DeleteFunc(p.waiters, func(x *waiter) bool { return x == w })
			}
			p.mu.Unlock()
			return -1, ctx.Err()
		}
	}
}

// release hands runtime i, which ran a call of device, back to the pool.
func (p *Pool) release(i int, device string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releaseLocked(i, device)
}

func (p *Pool) releaseLocked(i int, device string) {
	p.slots[i].busy = false
	p.free++
	if device != "" {
		delete(p.devices, device)
	}
	p.dispatch()
}

// dispatch hands free runtimes to waiters, in arrival order: each to its device's runtime
// if that is free, else, once it may, to any free runtime. A waiter whose device already
// has a call running waits for it. It runs with mu held.
func (p *Pool) dispatch() {
	for k := 0; k < len(p.waiters) && p.free > 0; {
		w := p.waiters[k]
		i := -1
		if _, busy := p.devices[w.device]; !busy {
			if w.pref >= 0 && !p.slots[w.pref].busy {
				i = w.pref
			} else if w.any {
				i = p.anyFree()
			}
		}
		if i < 0 {
			k++
			continue
		}
		p.slots[i].busy = true
		p.free--
		if w.device != "" {
			p.devices[w.device] = struct{}{}
		}
		w.slot = i
		close(w.ready)
		p.waiters = slices.Delete(p.waiters, k, k+1)
	}
}

// anyFree returns a free runtime, taking turns so calls without a device spread over the
// pool. It runs with mu held, and there is one (p.free > 0).
func (p *Pool) anyFree() int {
	for n := range len(p.slots) {
		i := (p.next + n) % len(p.slots)
		if !p.slots[i].busy {
			p.next = (i + 1) % len(p.slots)
			return i
		}
	}
	return -1
}
