package protocol

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dop251/goja"
	"github.com/dop251/goja/parser"
)

// Limits on what a codec call takes and returns. goja cannot bound memory, so these bound
// what crosses into and out of the sandbox.
const (
	// MaxMessages bounds the messages (and the errors) one decode may return.
	MaxMessages = 1000
	// MaxPayloadBytes bounds the bytes given to decode and the bytes encode returns. goja
	// spends about a microsecond on each element of an array crossing the sandbox, so this
	// keeps a full payload well inside CallTimeout; device frames are far smaller.
	MaxPayloadBytes = 64 << 10
)

const (
	// maxCallStack bounds JavaScript recursion, so endless recursion fails fast instead of
	// growing the Go stack (goja's default is math.MaxInt32 frames).
	maxCallStack = 1024
	// maxResultJSON bounds the serialised result of a call: a full payload as JSON numbers,
	// or a thousand generous messages.
	maxResultJSON = 4 << 20
	// stuckGrace is how long an interrupted call may take to notice: goja checks between
	// instructions, which is at once unless the codec is inside a long built-in call.
	stuckGrace = 100 * time.Millisecond
	// maxExceptionText bounds the text of an exception quoted in an error.
	maxExceptionText = 300
	preludeName      = "<linkops prelude>"
)

//go:embed prelude.js
var preludeSource string

// prelude is compiled once: a goja.Program is not tied to a runtime.
var prelude = goja.MustCompile(preludeName, preludeSource, false)

// Codec is a protocol's JavaScript codec loaded in its own sandboxed runtime. It is safe for
// concurrent use: calls take turns, since a goja runtime runs one thing at a time.
type Codec struct {
	// turn holds the right to use the engine. It is a channel rather than a mutex so that
	// waiting for a turn respects the caller's context; it is released by the goroutine that
	// ran the call, which may outlive a call that timed out (see bounded).
	turn chan struct{}
	// Guarded by turn.
	engine *engine
	broken error
}

// engine is one goja runtime with a codec loaded, and the prelude's functions that reach it.
type engine struct {
	rt       *goja.Runtime
	file     string
	describe goja.Callable
	decode   goja.Callable
	encode   goja.Callable
}

// DecodeInput is what decode receives, as a JavaScript object with these JSON names and
// bytes as an array of numbers (0..255).
type DecodeInput struct {
	Transport string         `json:"transport"`
	Topic     string         `json:"topic,omitempty"`
	URL       string         `json:"url,omitempty"`
	Bytes     []byte         // passed to JS as an array of numbers (0..255)
	DeviceID  string         `json:"deviceId,omitempty"`
	Session   map[string]any `json:"session"`
}

// DecodeResult is what decode returned: {messages: [...], errors: [...]}.
type DecodeResult struct {
	Messages []map[string]any `json:"messages"`
	Errors   []string         `json:"errors,omitempty"`
}

// EncodeResult is what encode returned: {topic: "...", bytes: [...]}.
type EncodeResult struct {
	Topic string `json:"topic,omitempty"`
	Bytes []byte
}

// Verify parses a package and loads its codec, as every save of a package does.
func Verify(zipBytes []byte) (*Package, error) {
	p, err := ParsePackage(zipBytes)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Compile loads a package's codec into a new sandbox: it evaluates the script, bounded by
// LoadTimeout, and finds decode and encode. It returns an *Error with Field "codec" when the
// script does not compile, throws, does not finish, or lacks either function.
func Compile(p *Package) (*Codec, error) {
	file := p.Manifest.Main
	if file == "" {
		file = defaultMain
	}
	if !utf8.ValidString(p.Source) {
		return nil, codecError("%s is not UTF-8 text", file)
	}
	prg, err := compileScript(file, p.Source)
	if err != nil {
		return nil, err
	}
	e := &engine{rt: goja.New(), file: file}
	e.rt.SetMaxCallStackSize(maxCallStack)
	_, err = bounded(context.Background(), e.rt, LoadTimeout, func() {}, func() (struct{}, error) {
		return struct{}{}, e.load(prg)
	})
	if errors.Is(err, errStuck) {
		return nil, codecError("codec did not finish loading within %v (an endless loop?)", LoadTimeout)
	}
	if err != nil {
		return nil, err
	}
	return &Codec{turn: make(chan struct{}, 1), engine: e}, nil
}

// compileScript compiles the codec, turning a syntax error into one naming its position.
func compileScript(file, src string) (prg *goja.Program, err error) {
	defer func() {
		// The parser sees untrusted source; a panic in it must refuse the package, not
		// take the node down.
		if x := recover(); x != nil {
			prg, err = nil, codecError("%s cannot be compiled: %v", file, x)
		}
	}()
	// Parsed here rather than by goja.Compile, which keeps only the text of a parse error.
	ast, err := parser.ParseFile(nil, file, src, 0)
	if list, ok := err.(parser.ErrorList); ok && len(list) > 0 {
		pos := list[0].Position
		return nil, codecError("%s has a syntax error at line %d, column %d: %s", file, pos.Line, pos.Column, list[0].Message)
	} else if err != nil {
		return nil, codecError("%s does not compile: %v", file, err)
	}
	prg, err = goja.CompileAST(ast, false)
	if err == nil {
		return prg, nil
	}
	switch err := err.(type) {
	case *goja.CompilerSyntaxError:
		if err.File != nil {
			pos := err.File.Position(err.Offset)
			return nil, codecError("%s has a syntax error at line %d, column %d: %s", file, pos.Line, pos.Column, err.Message)
		}
		return nil, codecError("%s has a syntax error: %s", file, err.Message)
	}
	return nil, codecError("%s does not compile: %v", file, err)
}

// load runs the prelude and the codec and binds decode and encode. It runs inside bounded.
func (e *engine) load(prg *goja.Program) (err error) {
	defer func() {
		if x := recover(); x != nil {
			err = codecError("%s broke the JavaScript engine while loading: %v", e.file, x)
		}
	}()
	v, err := e.rt.RunProgram(prelude)
	if err != nil {
		return fmt.Errorf("protocol: the prelude failed: %v", err)
	}
	exports := v.(*goja.Object)
	bind, _ := goja.AssertFunction(exports.Get("0"))
	e.describe, _ = goja.AssertFunction(exports.Get("1"))

	if _, err := e.rt.RunProgram(prg); err != nil {
		return e.loadError(err)
	}
	v, err = bind(goja.Undefined())
	if err != nil {
		return e.loadError(err)
	}
	// An array the prelude built, holding strings and its own functions: reading it runs
	// no codec code.
	found := v.(*goja.Object)
	for i, name := range []string{"decode", "encode"} {
		kind := found.Get(strconv.Itoa(3 * i)).String()
		where := found.Get(strconv.Itoa(3*i + 1)).String()
		switch kind {
		case "function":
		case "undefined":
			return codecError("%s defines no %s function: declare function %s(...) {...} or set module.exports.%s",
				e.file, name, name, name)
		default:
			return codecError("%s: %s is a %s, not a function", e.file, where, kind)
		}
		fn, _ := goja.AssertFunction(found.Get(strconv.Itoa(3*i + 2)))
		if name == "decode" {
			e.decode = fn
		} else {
			e.encode = fn
		}
	}
	return nil
}

func (e *engine) loadError(err error) error {
	// A type switch, not errors.As: unwrapping a goja.Exception may run codec code.
	switch err := err.(type) {
	case *goja.InterruptedError:
		return codecError("codec did not finish loading within %v (an endless loop?)", LoadTimeout)
	case *goja.StackOverflowError:
		return codecError("%s overflowed the call stack while loading (endless recursion?)", e.file)
	case *goja.Exception:
		return codecError("%s threw while loading: %s", e.file, e.explain(err))
	}
	return codecError("%s failed to load: %v", e.file, err)
}

// explain describes an exception: the thrown value, as text, and where in the codec it was
// thrown. It runs inside bounded, since describing a value may run codec code.
func (e *engine) explain(ex *goja.Exception) string {
	text := "an exception"
	if v, err := e.describe(goja.Undefined(), ex.Value()); err == nil {
		if s, ok := v.Export().(string); ok {
			text = s
		}
	}
	if utf8.RuneCountInString(text) > maxExceptionText {
		text = string([]rune(text)[:maxExceptionText]) + "…"
	}
	for _, f := range ex.Stack() {
		if f.SrcName() == e.file {
			pos := f.Position()
			return fmt.Sprintf("%s (at %s:%d:%d)", text, e.file, pos.Line, pos.Column)
		}
	}
	return text
}

// Decode runs the codec's decode on a message from a device. It fails with ErrTimeout,
// ErrException, ErrGarbage or ErrInput (match with errors.Is), or with the context's error;
// a failed call leaves the codec usable.
func (c *Codec) Decode(ctx context.Context, in DecodeInput) (*DecodeResult, error) {
	if len(in.Bytes) > MaxPayloadBytes {
		return nil, fmt.Errorf("%w: decode: the message is %d bytes; at most %d are allowed", ErrInput, len(in.Bytes), MaxPayloadBytes)
	}
	session := in.Session
	if session == nil {
		session = map[string]any{}
	}
	arg, err := json.Marshal(decodeArg{Transport: in.Transport, Topic: in.Topic, URL: in.URL,
		DeviceID: in.DeviceID, Session: session})
	if err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrInput, err)
	}
	bytes := make([]any, len(in.Bytes))
	for i, b := range in.Bytes {
		bytes[i] = int64(b)
	}
	out, err := c.call(ctx, "decode", string(arg), bytes)
	if err != nil {
		return nil, err
	}
	return decodeResult(out)
}

// Encode runs the codec's encode on a message to a device. It fails like Decode.
func (c *Codec) Encode(ctx context.Context, msg map[string]any) (*EncodeResult, error) {
	if msg == nil {
		msg = map[string]any{}
	}
	arg, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrInput, err)
	}
	out, err := c.call(ctx, "encode", string(arg), nil)
	if err != nil {
		return nil, err
	}
	return encodeResult(out)
}

// call runs decode (with bytes) or encode on JSON and returns what the prelude's wrapper
// returned.
func (c *Codec) call(ctx context.Context, op, arg string, bytes []any) (string, error) {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("%s: waiting for the codec: %w", op, ctx.Err())
	}
	release := func() { <-c.turn }
	if err := ctx.Err(); err != nil {
		release()
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if c.broken != nil {
		release()
		return "", c.broken
	}
	e := c.engine
	out, err := bounded(ctx, e.rt, CallTimeout, release, func() (out string, err error) {
		defer func() {
			// goja promises to turn JavaScript failures into errors; a panic is a bug in
			// it, after which the runtime's state is unknown, so the codec stops.
			if x := recover(); x != nil {
				c.broken = fmt.Errorf("%w: %s broke the JavaScript engine (%v); load the protocol again", ErrException, op, x)
				out, err = "", c.broken
			}
		}()
		fn, b := e.encode, goja.Undefined()
		if op == "decode" {
			fn, b = e.decode, e.rt.NewArray(bytes...)
		}
		v, err := fn(goja.Undefined(), e.rt.ToValue(arg), b)
		if err != nil {
			return "", e.callError(op, err)
		}
		s, _ := v.Export().(string) // the prelude's wrapper returns a string
		return s, nil
	})
	if errors.Is(err, errStuck) {
		return "", fmt.Errorf("%w: %s did not finish within %v (stuck in a built-in function)", ErrTimeout, op, CallTimeout)
	}
	return out, err
}

func (e *engine) callError(op string, err error) error {
	// A type switch, not errors.As: unwrapping a goja.Exception may run codec code.
	switch err := err.(type) {
	case *goja.InterruptedError:
		if ctxErr, ok := err.Value().(error); ok && ctxErr != ErrTimeout {
			return fmt.Errorf("%s: %w", op, ctxErr)
		}
		return fmt.Errorf("%w: %s did not finish within %v (an endless loop?)", ErrTimeout, op, CallTimeout)
	case *goja.StackOverflowError:
		return fmt.Errorf("%w: %s overflowed the call stack (endless recursion?)", ErrException, op)
	case *goja.Exception:
		return fmt.Errorf("%w: %s threw %s", ErrException, op, e.explain(err))
	}
	return fmt.Errorf("%w: %s failed: %v", ErrException, op, err)
}

// errStuck: a job ignored its interrupt for stuckGrace.
var errStuck = errors.New("the sandbox did not stop when interrupted")

// bounded runs job on its own goroutine and interrupts the runtime after limit or when ctx
// ends. goja notices an interrupt only between JavaScript instructions, so a job inside a
// long built-in call may not stop: after stuckGrace bounded gives up with errStuck and
// leaves the job to finish in the background, which then calls release. The caller thus
// always gets an answer in time, and the runtime is never used by two goroutines.
func bounded[T any](ctx context.Context, rt *goja.Runtime, limit time.Duration, release func(), job func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	w := &watchdog{rt: rt}
	done := make(chan result, 1)
	go func() {
		defer release()
		v, err := job()
		w.finish()
		done <- result{v, err}
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-timer.C:
		w.interrupt(ErrTimeout)
	case <-ctx.Done():
		w.interrupt(ctx.Err())
	}
	grace := time.NewTimer(stuckGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-grace.C:
		var zero T
		return zero, errStuck
	}
}

// watchdog interrupts one job at most, and never after the job finished: an interrupt that
// arrived after the job could otherwise fire at the start of the next one.
type watchdog struct {
	mu   sync.Mutex
	done bool
	rt   *goja.Runtime
}

func (w *watchdog) interrupt(v any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.rt.Interrupt(v)
	}
}

func (w *watchdog) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.rt.ClearInterrupt()
}

// decodeArg is DecodeInput as decode sees it, but for the bytes, which go as an array.
type decodeArg struct {
	Transport string         `json:"transport"`
	Topic     string         `json:"topic,omitempty"`
	URL       string         `json:"url,omitempty"`
	DeviceID  string         `json:"deviceId,omitempty"`
	Session   map[string]any `json:"session"`
}

func decodeResult(out string) (*DecodeResult, error) {
	garbage := func(format string, args ...any) error {
		return fmt.Errorf("%w: decode "+format, append([]any{ErrGarbage}, args...)...)
	}
	top, err := resultObject(out, "decode", "{messages: [...]}")
	if err != nil {
		return nil, err
	}
	raw, ok := top["messages"]
	if !ok {
		return nil, garbage("must return an object like {messages: [...]}: messages is missing")
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || list == nil {
		return nil, garbage("must return messages as an array, not %s", kindOf(raw))
	}
	if len(list) > MaxMessages {
		return nil, garbage("returned %d messages; at most %d are allowed", len(list), MaxMessages)
	}
	res := &DecodeResult{Messages: make([]map[string]any, len(list))}
	for i, m := range list {
		if json.Unmarshal(m, &res.Messages[i]) != nil || res.Messages[i] == nil {
			return nil, garbage("returned messages[%d] as %s, not an object", i, kindOf(m))
		}
	}
	if raw, ok := top["errors"]; ok && kindOf(raw) != "null" {
		if json.Unmarshal(raw, &res.Errors) != nil {
			return nil, garbage("must return errors as an array of strings")
		}
		if len(res.Errors) > MaxMessages {
			return nil, garbage("returned %d errors; at most %d are allowed", len(res.Errors), MaxMessages)
		}
	}
	return res, nil
}

func encodeResult(out string) (*EncodeResult, error) {
	garbage := func(format string, args ...any) error {
		return fmt.Errorf("%w: encode "+format, append([]any{ErrGarbage}, args...)...)
	}
	top, err := resultObject(out, "encode", "{bytes: [...]}")
	if err != nil {
		return nil, err
	}
	res := &EncodeResult{}
	if raw, ok := top["topic"]; ok && kindOf(raw) != "null" {
		if json.Unmarshal(raw, &res.Topic) != nil {
			return nil, garbage("must return topic as a string, not %s", kindOf(raw))
		}
	}
	raw, ok := top["bytes"]
	if !ok {
		return nil, garbage("must return an object like {bytes: [...]}: bytes is missing")
	}
	var list []any
	if json.Unmarshal(raw, &list) != nil || list == nil {
		return nil, garbage("must return bytes as an array of numbers, not %s", kindOf(raw))
	}
	if len(list) > MaxPayloadBytes {
		return nil, garbage("returned %d bytes; at most %d are allowed", len(list), MaxPayloadBytes)
	}
	res.Bytes = make([]byte, len(list))
	for i, x := range list {
		n, ok := x.(float64)
		if !ok || n != float64(int(n)) || n < 0 || n > 255 {
			return nil, garbage("returned bytes[%d] = %s; bytes must be integers from 0 to 255", i, shortJSON(x))
		}
		res.Bytes[i] = byte(n)
	}
	return res, nil
}

// resultObject decodes the top level of what the prelude's wrapper returned for op, which
// must be a JSON object like shape.
func resultObject(out, op, shape string) (map[string]json.RawMessage, error) {
	kind, js := byte(0), ""
	if out != "" {
		kind, js = out[0], out[1:]
	}
	switch kind {
	case 'U':
		return nil, fmt.Errorf("%w: %s must return an object like %s, not %s", ErrGarbage, op, shape, js)
	case 'G':
		return nil, fmt.Errorf("%w: %s returned a value JSON cannot hold: %s", ErrGarbage, op, js)
	case 'J':
	default:
		return nil, fmt.Errorf("%w: %s: the prelude returned %q", ErrException, op, out)
	}
	if len(js) > maxResultJSON {
		return nil, fmt.Errorf("%w: %s returned more than %d bytes of JSON", ErrGarbage, op, maxResultJSON)
	}
	var top map[string]json.RawMessage
	if json.Unmarshal([]byte(js), &top) != nil || top == nil {
		return nil, fmt.Errorf("%w: %s must return an object like %s, not %s", ErrGarbage, op, shape, kindOf(json.RawMessage(js)))
	}
	return top, nil
}

// kindOf names the JSON type of a value for an error message.
func kindOf(raw json.RawMessage) string {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return "an object"
		case '[':
			return "an array"
		case '"':
			return "a string"
		case 't', 'f':
			return "a boolean"
		case 'n':
			return "null"
		default:
			return "a number"
		}
	}
	return "nothing"
}

func shortJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
