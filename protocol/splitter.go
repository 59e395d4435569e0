package protocol

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"unicode/utf8"

	"github.com/dop251/goja"
)

// MaxSplitBytes bounds the bytes given to a TCP SCRIPT parser's split: they cross the
// sandbox as an array of numbers, like decode's input, so the bound is the same. A
// message the script cannot find within that many bytes cannot be split by it.
const MaxSplitBytes = MaxPayloadBytes

const splitterFile = "script"

// splitPrelude runs after the codec prelude (which gives the script the same console and
// CommonJS globals as a codec, and the describe function) and before the script. Like the
// codec prelude it takes the built-in it needs before the script can replace it, and it
// returns a primitive to Go: the number split returned, or the type of what it returned
// instead, so that reading the result runs no script code outside the time limit.
var splitPrelude = goja.MustCompile("<linkops split prelude>", `(function () {
	"use strict";
	var apply = Reflect.apply;
	return function bind() {
		if (typeof split !== "function") {
			return typeof split;
		}
		var fn = split;
		return function (bytes) {
			var n = apply(fn, undefined, [bytes]);
			return typeof n === "number" ? n : typeof n;
		};
	};
})();`, false)

// Splitter is a TCP SCRIPT parser: JavaScript defining function split(bytes), which is
// given the bytes a connection buffered (an array of numbers) and returns the length of
// the first complete message, 0 when more bytes are needed, or -1 for garbage (SPEC
// §4.3.1). It runs in the codec sandbox, each call bounded by CallTimeout.
//
// It is safe for concurrent use. Unlike a Codec it is not one runtime but a pool: split is
// a function of its argument, so any runtime may serve any connection, and a connection
// whose script loops holds up only itself. A runtime whose call failed is dropped (its
// globals may be half-updated) and a new one is loaded when needed; at most maxEngines
// run at once, so the goja heap (about a megabyte for a full array) stays bounded however
// many connections there are.
type Splitter struct {
	prg *goja.Program
	// slots holds one token per runtime in use; a call waits for one, respecting its
	// context.
	slots chan struct{}
	// idle holds loaded runtimes not in use.
	idle chan *splitEngine
}

type splitEngine struct {
	*engine
	split goja.Callable
}

// maxEngines bounds the runtimes of one Splitter: split is CPU-bound, so more than a few
// per core would only queue in the scheduler instead of here.
var maxEngines = 4 * max(runtime.GOMAXPROCS(0), 1)

// CompileSplitter compiles a SCRIPT parser and loads it once, bounded by LoadTimeout, to
// check that it defines split. Errors name what is wrong in words an ops user can act on.
func CompileSplitter(src string) (*Splitter, error) {
	if !utf8.ValidString(src) {
		return nil, codecError("the script is not UTF-8 text")
	}
	prg, err := compileScript(splitterFile, src)
	if err != nil {
		return nil, err
	}
	s := &Splitter{prg: prg, slots: make(chan struct{}, maxEngines), idle: make(chan *splitEngine, maxEngines)}
	e, err := s.load()
	if err != nil {
		return nil, err
	}
	s.idle <- e
	return s, nil
}

// load makes a new runtime with the script loaded.
func (s *Splitter) load() (*splitEngine, error) {
	e := &splitEngine{engine: &engine{rt: goja.New(), file: splitterFile}}
	e.rt.SetMaxCallStackSize(maxCallStack)
	_, err := bounded(context.Background(), e.rt, LoadTimeout, func() {}, func() (struct{}, error) {
		return struct{}{}, e.load(s.prg)
	})
	if errors.Is(err, errStuck) {
		return nil, codecError("the script did not finish loading within %v (an endless loop?)", LoadTimeout)
	}
	return e, err
}

func (e *splitEngine) load(prg *goja.Program) (err error) {
	defer func() {
		if x := recover(); x != nil {
			err = codecError("the script broke the JavaScript engine while loading: %v", x)
		}
	}()
	v, err := e.rt.RunProgram(prelude)
	if err != nil {
		return fmt.Errorf("protocol: the prelude failed: %v", err)
	}
	e.describe, _ = goja.AssertFunction(v.(*goja.Object).Get("1"))
	v, err = e.rt.RunProgram(splitPrelude)
	if err != nil {
		return fmt.Errorf("protocol: the split prelude failed: %v", err)
	}
	bind, _ := goja.AssertFunction(v)
	if _, err := e.rt.RunProgram(prg); err != nil {
		return e.scriptLoadError(err)
	}
	v, err = bind(goja.Undefined())
	if err != nil {
		return e.scriptLoadError(err)
	}
	if fn, ok := goja.AssertFunction(v); ok {
		e.split = fn
		return nil
	}
	// bind returned the type of split as a string primitive: exporting it runs no code.
	if kind, _ := v.Export().(string); kind != "undefined" {
		return codecError("the script's split is a %s, not a function", kind)
	}
	return codecError("the script defines no split function: declare function split(bytes) {...}")
}

func (e *splitEngine) scriptLoadError(err error) error {
	if _, ok := err.(*goja.InterruptedError); ok {
		return codecError("the script did not finish loading within %v (an endless loop?)", LoadTimeout)
	}
	return e.loadError(err)
}

// Split runs split on buf (at most MaxSplitBytes) and returns what it said: n > 0, the
// first n bytes are a message; 0, more bytes are needed; -1, the bytes are garbage. It
// fails with ErrTimeout, ErrException, ErrGarbage (split returned something else, or a
// length beyond buf) or ErrInput (buf too long), matched with errors.Is, or with the
// context's error.
func (s *Splitter) Split(ctx context.Context, buf []byte) (int, error) {
	if len(buf) > MaxSplitBytes {
		return 0, fmt.Errorf("%w: split: %d bytes; at most %d are allowed", ErrInput, len(buf), MaxSplitBytes)
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return 0, fmt.Errorf("split: waiting for the script: %w", ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		<-s.slots
		return 0, fmt.Errorf("split: %w", err)
	}
	var e *splitEngine
	select {
	case e = <-s.idle:
	default:
		var err error
		if e, err = s.load(); err != nil {
			<-s.slots
			return 0, fmt.Errorf("%w: split: %v", ErrException, err)
		}
	}
	// Built before the clock starts: converting the bytes is the sandbox's cost, not the
	// script's, and runs no script code.
	arr, err := newByteArray(e.rt, buf)
	if err != nil {
		<-s.slots
		return 0, fmt.Errorf("%w: split: %v", ErrException, err)
	}
	ok := false
	release := func() {
		// Called by the goroutine that ran the call, after it ended (see bounded).
		if ok {
			s.idle <- e
		}
		<-s.slots
	}
	v, err := bounded(ctx, e.rt, CallTimeout, release, func() (v any, err error) {
		defer func() {
			if x := recover(); x != nil {
				v, err = nil, fmt.Errorf("%w: split broke the JavaScript engine (%v)", ErrException, x)
			}
		}()
		res, err := e.split(goja.Undefined(), arr)
		if err != nil {
			return nil, e.callError("split", err)
		}
		ok = true
		return res.Export(), nil // a primitive (see splitPrelude)
	})
	if errors.Is(err, errStuck) {
		return 0, fmt.Errorf("%w: split did not finish within %v (stuck in a built-in function)", ErrTimeout, CallTimeout)
	}
	if err != nil {
		return 0, err
	}
	return splitResult(v, len(buf))
}

// newByteArray makes a JavaScript array of buf's bytes as numbers.
func newByteArray(rt *goja.Runtime, buf []byte) (arr *goja.Object, err error) {
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("the bytes could not be given to the script: %v", x)
		}
	}()
	bytes := make([]any, len(buf))
	for i, b := range buf {
		bytes[i] = int64(b)
	}
	return rt.NewArray(bytes...), nil
}

// splitResult checks what split returned for n buffered bytes.
func splitResult(v any, n int) (int, error) {
	var f float64
	switch v := v.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	case string:
		return 0, fmt.Errorf("%w: split must return a number, not %s", ErrGarbage, v)
	default:
		return 0, fmt.Errorf("%w: split must return a number", ErrGarbage)
	}
	if math.IsNaN(f) || f != math.Trunc(f) || f < -1 || f > float64(n) {
		return 0, fmt.Errorf("%w: split returned %v for %d bytes; it must return a length from 1 to %d, 0 for more bytes or -1 for garbage",
			ErrGarbage, f, n, n)
	}
	return int(f), nil
}
