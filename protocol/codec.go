package protocol

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
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
	// authenticate is nil when the codec exports none.
	authenticate goja.Callable
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

// AuthInput is what authenticate receives, as a JavaScript object with these JSON names
// (SPEC §4.4.1). Password is a string: MQTT passwords are bytes, and bytes that are not
// UTF-8 reach the codec as U+FFFD.
type AuthInput struct {
	Transport string `json:"transport"`
	ClientID  string `json:"clientId"`
	Username  string `json:"username"`
	Password  string `json:"password"`
	Remote    string `json:"remote"` // the peer's address, host:port
}

// AuthResult is what authenticate returned: {success, deviceId, message}. DeviceID is set
// whenever Success is; Message is the codec's reason, for the log.
type AuthResult struct {
	Success  bool   `json:"success"`
	DeviceID string `json:"deviceId"`
	Message  string `json:"message"`
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
// LoadTimeout, and finds decode, encode and the optional authenticate. It returns an *Error
// with Field "codec" when the script does not compile, throws, does not finish, lacks decode
// or encode, or exports something other than a function under one of the three names.
func Compile(p *Package) (*Codec, error) {
	file, prg, err := compileCodec(p)
	if err != nil {
		return nil, err
	}
	e, err := loadEngine(file, prg)
	if err != nil {
		return nil, err
	}
	return &Codec{turn: make(chan struct{}, 1), engine: e}, nil
}

// compileCodec compiles a package's codec once; each runtime then loads the program.
func compileCodec(p *Package) (string, *goja.Program, error) {
	file := p.Manifest.Main
	if file == "" {
		file = defaultMain
	}
	if !utf8.ValidString(p.Source) {
		return "", nil, codecError("%s is not UTF-8 text", file)
	}
	prg, err := compileScript(file, p.Source)
	if err != nil {
		return "", nil, err
	}
	return file, prg, nil
}

// loadEngine makes a new runtime with the prelude and the codec loaded, bounded by
// LoadTimeout.
func loadEngine(file string, prg *goja.Program) (*engine, error) {
	e := &engine{rt: goja.New(), file: file}
	e.rt.SetMaxCallStackSize(maxCallStack)
	_, err := bounded(context.Background(), e.rt, LoadTimeout, func() {}, func() (struct{}, error) {
		return struct{}{}, e.load(prg)
	})
	if errors.Is(err, errStuck) {
		return nil, codecError("codec did not finish loading within %v (an endless loop?)", LoadTimeout)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
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

// load runs the prelude and the codec and binds decode, encode and authenticate. It runs
// inside bounded.
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
	for i, name := range []string{"decode", "encode", "authenticate"} {
		kind := found.Get(strconv.Itoa(3 * i)).String()
		where := found.Get(strconv.Itoa(3*i + 1)).String()
		switch kind {
		case "function":
		case "undefined":
			if name == "authenticate" {
				continue // optional: without it the official authentication applies
			}
			return codecError("%s defines no %s function: declare function %s(...) {...} or set module.exports.%s",
				e.file, name, name, name)
		default:
			// Also for authenticate: a codec that means to authenticate devices and does
			// not is better refused on save than found out when devices connect.
			article := "a"
			if kind == "object" {
				article = "an" // typeof gives only object, number, string, boolean, symbol, bigint
			}
			return codecError("%s: %s is %s %s, not a function", e.file, where, article, kind)
		}
		fn, _ := goja.AssertFunction(found.Get(strconv.Itoa(3*i + 2)))
		switch name {
		case "decode":
			e.decode = fn
		case "encode":
			e.encode = fn
		default:
			e.authenticate = fn
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
	arg, bytes, err := decodeCall(in)
	if err != nil {
		return nil, err
	}
	out, err := c.call(ctx, "decode", arg, bytes)
	if err != nil {
		return nil, err
	}
	return decodeResult(out)
}

// decodeCall checks decode's input and turns it into the JSON argument and the bytes (never
// nil) that cross into the sandbox.
func decodeCall(in DecodeInput) (string, []any, error) {
	if len(in.Bytes) > MaxPayloadBytes {
		return "", nil, fmt.Errorf("%w: decode: the message is %d bytes; at most %d are allowed", ErrInput, len(in.Bytes), MaxPayloadBytes)
	}
	session := in.Session
	if session == nil {
		session = map[string]any{}
	}
	arg, err := json.Marshal(decodeArg{Transport: in.Transport, Topic: in.Topic, URL: in.URL,
		DeviceID: in.DeviceID, Session: session})
	if err != nil {
		return "", nil, fmt.Errorf("%w: decode: %v", ErrInput, err)
	}
	bytes := make([]any, len(in.Bytes))
	for i, b := range in.Bytes {
		bytes[i] = int64(b)
	}
	return string(arg), bytes, nil
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
	fn := e.encode
	if op == "decode" {
		fn = e.decode
	}
	return e.invoke(ctx, op, fn, arg, bytes, release, func(err error) error {
		// A Codec has no way to load itself again (a Pool does): it stops.
		c.broken = fmt.Errorf("%w; load the protocol again", err)
		return c.broken
	}, func(f func()) { go f() })
}

// invoke calls fn, one of the prelude's wrappers in e, on arg (JSON) and, unless bytes is
// nil, bytes as an array, bounded by CallTimeout and ctx, and returns what the wrapper
// returned. release runs once the runtime is free again: after a call stuck in a built-in
// that is later than invoke returns (see bounded). broken runs, while the runtime is still
// held, when goja panicked; it makes the error the call returns. start runs the call on
// another goroutine (see boundedOn).
func (e *engine) invoke(ctx context.Context, op string, fn goja.Callable, arg string, bytes []any,
	release func(), broken func(error) error, start func(func())) (string, error) {
	out, err := boundedOn(ctx, e.rt, CallTimeout, release, func() (out string, err error) {
		defer func() {
			// goja promises to turn JavaScript failures into errors; a panic is a bug in
			// it, after which the runtime's state is unknown, so it is not used again.
			if x := recover(); x != nil {
				out, err = "", broken(fmt.Errorf("%w: %s broke the JavaScript engine (%v)", ErrException, op, x))
			}
		}()
		b := goja.Undefined()
		if bytes != nil {
			b = e.rt.NewArray(bytes...)
		}
		v, err := fn(goja.Undefined(), e.rt.ToValue(arg), b)
		if err != nil {
			return "", e.callError(op, err)
		}
		s, _ := v.Export().(string) // the prelude's wrapper returns a string
		return s, nil
	}, start)
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
// always gets an answer in time, and the runtime is never used by two goroutines. A job
// that finishes in time is released before bounded returns, so a caller's next call finds
// the runtime free (a Pool's affinity relies on it).
func bounded[T any](ctx context.Context, rt *goja.Runtime, limit time.Duration, release func(), job func() (T, error)) (T, error) {
	return boundedOn(ctx, rt, limit, release, job, func(f func()) { go f() })
}

// boundedOn is bounded with the job run by start, which must run it on another goroutine
// than the caller's (a Pool keeps one per runtime).
func boundedOn[T any](ctx context.Context, rt *goja.Runtime, limit time.Duration, release func(), job func() (T, error),
	start func(func())) (T, error) {
	type result struct {
		v   T
		err error
	}
	w := &watchdog{rt: rt}
	done := make(chan result, 1)
	start(func() {
		// Jobs recover their own panics (a panic here would end the process anyway).
		v, err := job()
		w.finish()
		release()
		done <- result{v, err}
	})
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
	list, errs, err := decodeTop(out)
	if err != nil {
		return nil, err
	}
	res := &DecodeResult{Messages: make([]map[string]any, len(list)), Errors: errs}
	for i, m := range list {
		if json.Unmarshal(m, &res.Messages[i]) != nil || res.Messages[i] == nil {
			return nil, fmt.Errorf("%w: decode returned messages[%d] as %s, not an object", ErrGarbage, i, kindOf(m))
		}
	}
	return res, nil
}

// decodeMessages reads decode's result as device messages. A result of the wrong shape
// fails the call; a message that is not a device message is dropped alone, and the reason
// is added to the errors, after the codec's own.
func decodeMessages(out string) ([]Message, []string, error) {
	list, errs, err := decodeTop(out)
	if err != nil {
		return nil, nil, err
	}
	msgs := make([]Message, 0, len(list))
	for i, raw := range list {
		var m Message
		var err error
		kind := kindOf(raw)
		if kind == "an object" {
			err = json.Unmarshal(raw, &m)
		}
		problem := ""
		switch {
		case kind != "an object":
			problem = fmt.Sprintf("as %s, not an object", kind)
		case err != nil:
			problem = "that is not a device message: " + messageProblem(err)
		case m.Type == "":
			problem = "without a type"
		case !IsUp(m.Type):
			problem = fmt.Sprintf("of type %s, which is not one a device sends (%s)", shortJSON(m.Type), upTypeList)
		default:
			msgs = append(msgs, m)
			continue
		}
		errs = append(errs, fmt.Errorf("%w: decode returned messages[%d] %s", ErrGarbage, i, problem).Error())
	}
	return msgs, errs, nil
}

// upTypeList names the up types for an error message.
var upTypeList = func() string {
	names := make([]string, 0, len(upTypes))
	for t := range upTypes {
		names = append(names, t)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}()

// messageProblem says why a message did not unmarshal into a Message, naming the field by
// its JSON name.
func messageProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
		want := "of another type"
		if te.Type != nil {
			switch te.Type.Kind() {
			case reflect.String:
				want = "a string"
			case reflect.Bool:
				want = "a boolean"
			case reflect.Int, reflect.Int64:
				want = "an integer"
			case reflect.Map:
				want = "an object"
			case reflect.Slice:
				want = "an array"
			}
		}
		return fmt.Sprintf("%s must be %s, not %s", field, want, te.Value)
	}
	return err.Error()
}

// decodeTop checks the top level of decode's result: the raw messages and the codec's own
// errors.
func decodeTop(out string) ([]json.RawMessage, []string, error) {
	garbage := func(format string, args ...any) error {
		return fmt.Errorf("%w: decode "+format, append([]any{ErrGarbage}, args...)...)
	}
	top, err := resultObject(out, "decode", "{messages: [...]}")
	if err != nil {
		return nil, nil, err
	}
	raw, ok := top["messages"]
	if !ok {
		return nil, nil, garbage("must return an object like {messages: [...]}: messages is missing")
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil || list == nil {
		return nil, nil, garbage("must return messages as an array, not %s", kindOf(raw))
	}
	if len(list) > MaxMessages {
		return nil, nil, garbage("returned %d messages; at most %d are allowed", len(list), MaxMessages)
	}
	var errs []string
	if raw, ok := top["errors"]; ok && kindOf(raw) != "null" {
		if json.Unmarshal(raw, &errs) != nil {
			return nil, nil, garbage("must return errors as an array of strings")
		}
		if len(errs) > MaxMessages {
			return nil, nil, garbage("returned %d errors; at most %d are allowed", len(errs), MaxMessages)
		}
	}
	return list, errs, nil
}

// authResult checks what authenticate returned: {success: boolean, deviceId: string,
// message: string}, where deviceId is required when success is true, since the device is
// then known by it alone.
func authResult(out string) (*AuthResult, error) {
	garbage := func(format string, args ...any) error {
		return fmt.Errorf("%w: authenticate "+format, append([]any{ErrGarbage}, args...)...)
	}
	top, err := resultObject(out, "authenticate", "{success: true, deviceId: \"...\"}")
	if err != nil {
		return nil, err
	}
	res := &AuthResult{}
	raw, ok := top["success"]
	if !ok {
		return nil, garbage("must return an object like {success: true, deviceId: \"...\"}: success is missing")
	}
	if json.Unmarshal(raw, &res.Success) != nil {
		return nil, garbage("must return success as a boolean, not %s", kindOf(raw))
	}
	for _, f := range []struct {
		name string
		to   *string
	}{{"deviceId", &res.DeviceID}, {"message", &res.Message}} {
		if raw, ok := top[f.name]; ok && kindOf(raw) != "null" {
			if json.Unmarshal(raw, f.to) != nil {
				return nil, garbage("must return %s as a string, not %s", f.name, kindOf(raw))
			}
		}
	}
	if res.Success && res.DeviceID == "" {
		return nil, garbage("returned success without a deviceId: it must name the device it accepts")
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
