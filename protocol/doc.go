// Package protocol owns protocol packages: parsing a .zip package or a local directory into
// a manifest and a JavaScript codec, and running that codec in a sandbox; it must not touch
// HTTP, raft or the state store.
//
// # Packages
//
// A package is a zip holding manifest.json and the JavaScript file the manifest names as
// "main" (codec.js by default), either at the root or inside one top-level folder, as
// "Compress folder" tools produce. Nothing else in the zip is ever decompressed. A package
// comes from an untrusted upload, so ParsePackage refuses what a hostile zip can do: more
// than MaxEntries entries, absolute names, ".." elements, backslashes and NUL bytes,
// symlinks, a declared unpacked size over MaxUnpackedBytes, and entries over 1 MiB that
// claim a compression ratio above 100:1. Zip headers can lie, so the two files that are
// read are read through a limit as well; archive/zip itself refuses an entry that inflates
// past the size its header declares.
//
// A refusal is an *Error whose Field tells the caller which form field to blame: "file" for
// the archive (or, from LoadDir, the directory), "manifest" for manifest.json, "codec" for
// the JavaScript.
//
// # The sandbox
//
// Compile loads the codec into its own goja runtime. goja implements ECMAScript only: the
// runtime has no require, no file system, no process, no network and no timers, and this
// package registers no Go function in it. Codecs may export decode, encode and the optional
// authenticate as global function declarations or through CommonJS module.exports /
// exports (module.exports wins); console.log and its siblings exist as no-ops so that
// codecs written for Node load unchanged. Any of the three names bound to something other
// than a function refuses the codec.
//
// Untrusted code is bounded where goja allows it:
//
//   - time: loading is interrupted after LoadTimeout and each call after CallTimeout (or
//     when its context ends), through Runtime.Interrupt;
//   - recursion: the JavaScript call stack is limited to 1024 frames;
//   - size: decode receives at most MaxPayloadBytes bytes and returns at most MaxMessages
//     messages, encode returns at most MaxPayloadBytes bytes. Bytes cross the sandbox as
//     arrays of numbers, which goja handles at about a microsecond an element, so the
//     limit is what fits well inside CallTimeout.
//
// Two limits cannot be enforced. goja has no memory limit: a codec that allocates a huge
// string or array within its time budget allocates it on the node's heap. And an interrupt
// is only noticed between JavaScript instructions, so a single built-in call over a
// pathological value (JSON.stringify of a very deep object, say) runs to its end. Every load
// and call therefore runs on its own goroutine: the caller gets its timeout error on time,
// while the stuck runtime finishes in the background and the codec stays busy until it does.
//
// Reading a JavaScript value from Go can run codec code (getters, proxies, toString), which
// would then escape the time limit. So a trusted prelude (prelude.js) reads the exports,
// calls the codec and serialises its result inside the limit, and Go exchanges only JSON
// strings and the input bytes with the runtime.
//
// A TCP_SERVER's SCRIPT parser (CompileSplitter) runs in the same sandbox, after the same
// prelude, with the same limits; it gets at most MaxSplitBytes bytes per call. Since split
// is a function of its argument, a Splitter pools its runtimes instead of sharing one, so
// a connection whose script loops holds up only itself.
//
// A Codec is one runtime behind a one-slot semaphore, so codec state kept in globals
// behaves as the author expects, and waiting for the codec respects the caller's context.
// A runtime in which goja panicked is not used again: the Codec fails from then on.
//
// # The pool
//
// The gateway pipeline runs a protocol's codec through a Pool (NewPool): the program is
// compiled once and loaded into several runtimes (by default twice the cores, at least 4
// and at most 16), so that messages of different devices decode in parallel and one slow
// device does not hold up the others (SPEC §4.4.1).
//
//   - Affinity. A device's calls go to the runtime its id hashes to, so that state a codec
//     keeps in globals (a counter, the last frame) stays per device, as authors expect.
//   - Isolation wins over affinity. If that runtime is busy with another device for longer
//     than affinityWait (10 ms, a hundred times a normal call), the call takes any free
//     runtime and sees that runtime's globals. A device sharing a runtime with a looping
//     one thus loses at most the wait per message, and its globals' continuity; codecs
//     that need state to survive must keep it in the session.
//   - One runtime per device. A device's calls run one at a time, the next waiting, within
//     its context, until the last one's runtime is free again, even when that call is stuck
//     in a built-in after its timeout. However many messages a looping or stuck device
//     sends, it holds one runtime, and its messages (not the others') wait and time out.
//     The clock of a call starts when it has a runtime, so a queued call gets its full
//     CallTimeout.
//   - Calls without a device id (authenticate, which runs before the device is known, and
//     decode on a connection not yet identified) take any free runtime. Nothing serialises
//     them, so the caller should run one at a time per connection, and give decode the
//     device id as soon as it is known.
//   - A runtime in which goja panicked is dropped, and the next call that gets its slot
//     loads a fresh one (whose globals start over).
//
// Each runtime keeps one goroutine for its calls while it is in use, since goja needs a
// deep stack that a fresh goroutine would grow on every call; it ends after ten idle
// seconds, so a dropped Pool leaves nothing behind.
//
// Pool.Decode returns protocol messages (Message): a result of the wrong shape (not
// {messages: [...]}, too many messages) fails the call, while a message that is not a
// device message (not an object, a field of the wrong type, no type, or a type a device
// does not send) is dropped alone and its reason added to the returned errors, after the
// codec's own, as text starting with ErrGarbage's, so that one bad message in a batch
// costs only itself. Over MQTT, a codec exporting authenticate({transport, clientId,
// username, password, remote}) identifies devices (HasAuthenticate): it must return
// {success: boolean, deviceId: string, message: string}, with a deviceId whenever success
// is true, or the call is ErrGarbage.
//
// The package registers no metrics: the caller times and counts calls where they cross its
// boundary, and can tell outcomes apart with the sentinel errors (ErrTimeout, ErrException,
// ErrGarbage, ErrInput, ErrNoAuthenticate).
package protocol
