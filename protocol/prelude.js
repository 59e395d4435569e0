// The prelude runs in every codec's runtime before the codec. It is trusted code: it takes
// the built-ins it needs before the codec can replace them, and it is the only code that
// touches the codec's values, so that the Go side exchanges nothing but strings with the
// sandbox. Everything it does on the codec's behalf (reading exports, calling decode,
// serialising the result) runs inside the time limit of the load or the call.
(function () {
	"use strict";
	var parse = JSON.parse, stringify = JSON.stringify, apply = Reflect.apply;
	var defineProperty = Object.defineProperty, create = Object.create;
	var global = globalThis;

	function noop() {}
	// CommonJS and a silent console, so codecs written for Node load unchanged. Assigned
	// rather than declared, so a codec may declare its own module, exports or console.
	var module = { exports: {} };
	global.module = module;
	global.exports = module.exports;
	global.console = { log: noop, info: noop, warn: noop, error: noop, debug: noop, trace: noop };

	// describe turns a thrown value into text without letting a hostile toString escape.
	function describe(e) {
		try {
			if (e !== null && typeof e === "object" && typeof e.message === "string") {
				var name = e.name;
				return (typeof name === "string" && name !== "" ? name : "Error") + ": " + e.message;
			}
			return String(e);
		} catch (ignored) {
			return "a value that cannot be shown";
		}
	}

	// wrap returns the function Go calls: in, the argument as JSON and, for decode, the bytes
	// as an array (Go builds it directly: JSON.parse takes about 0.5µs a number); out, "J" +
	// the result as JSON, "U" + the type of a result JSON cannot hold, or "G" + why
	// serialising it failed. Exceptions of the codec itself propagate to Go.
	function wrap(fn, self) {
		return function (json, bytes) {
			var input = parse(json);
			if (bytes !== undefined) {
				// A descriptor without a prototype, so nothing a codec adds to
				// Object.prototype can change what it says.
				var desc = create(null);
				desc.value = bytes;
				desc.writable = desc.enumerable = desc.configurable = true;
				defineProperty(input, "bytes", desc);
			}
			var out = apply(fn, self, [input]);
			var json;
			try {
				json = stringify(out);
			} catch (e) {
				return "G" + describe(e);
			}
			if (json === undefined) {
				return "U" + (typeof out);
			}
			return "J" + json;
		};
	}

	// bind finds decode, encode and the optional authenticate once the codec has run:
	// module.exports wins, then a global of that name. It returns, for each, its type, where
	// it was looked up and the wrapped function.
	function bind() {
		var exp = module.exports;
		var hasExports = exp !== null && (typeof exp === "object" || typeof exp === "function");
		function find(name, globalValue) {
			if (hasExports) {
				var f = exp[name];
				if (f !== undefined) {
					return [f, exp, "module.exports." + name];
				}
			}
			return [globalValue, undefined, name];
		}
		var d = find("decode", typeof decode === "undefined" ? undefined : decode);
		var e = find("encode", typeof encode === "undefined" ? undefined : encode);
		var a = find("authenticate", typeof authenticate === "undefined" ? undefined : authenticate);
		return [
			typeof d[0], d[2], typeof d[0] === "function" ? wrap(d[0], d[1]) : undefined,
			typeof e[0], e[2], typeof e[0] === "function" ? wrap(e[0], e[1]) : undefined,
			typeof a[0], a[2], typeof a[0] === "function" ? wrap(a[0], a[1]) : undefined,
		];
	}

	return [bind, describe];
})();
