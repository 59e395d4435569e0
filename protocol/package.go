package protocol

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/linkops/linkops/resource"
)

// Transports a package may declare, in their canonical spelling.
var Transports = []string{"MQTT", "TCP", "UDP", "CoAP", "HTTP", "WebSocket"}

// Limits on packages and codecs.
const (
	// MaxPackageBytes bounds the zip itself. The caller enforces it on the upload; ParsePackage
	// checks it again so that no other path can bring in a larger one.
	MaxPackageBytes = 4 << 20
	// MaxUnpackedBytes bounds the sum of the entries' uncompressed sizes, declared and read.
	MaxUnpackedBytes = 16 << 20
	// MaxEntries bounds the number of entries in the zip.
	MaxEntries = 256
	// LoadTimeout bounds evaluating the codec's script when it is compiled.
	LoadTimeout = 100 * time.Millisecond
	// CallTimeout bounds each Decode and Encode call.
	CallTimeout = 100 * time.Millisecond
)

const (
	manifestName = "manifest.json"
	defaultMain  = "codec.js"
	// maxManifestBytes bounds manifest.json, which holds five short fields.
	maxManifestBytes = 64 << 10
	// An entry that unpacks to more than bombMinBytes at a ratio above bombRatio is refused
	// from its header alone: source code compresses about 5:1, a zip bomb 1000:1.
	bombMinBytes = 1 << 20
	bombRatio    = 100
	// macOSJunk is the folder of resource forks that the macOS Finder adds to every zip.
	macOSJunk = "__MACOSX"
)

// Manifest is manifest.json of a package.
type Manifest struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Transports []string `json:"transports"`
	Main       string   `json:"main"` // defaults to "codec.js"
}

// Package is a parsed protocol package: its manifest and the codec source it names.
type Package struct {
	Manifest Manifest
	Source   string // the JavaScript of Manifest.Main
}

// ParsePackage reads a protocol package from a zip. It returns an *Error when the zip or its
// manifest is refused; the JavaScript is only read here, Compile loads it.
func ParsePackage(zipBytes []byte) (*Package, error) {
	if len(zipBytes) > MaxPackageBytes {
		return nil, &Error{Field: "file", TooLarge: true,
			Message: fmt.Sprintf("the package is %d bytes; at most %d (4 MiB) are allowed", len(zipBytes), MaxPackageBytes)}
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	// With GODEBUG zipinsecurepath=0 archive/zip reports unsafe names but still returns the
	// reader; the checks below refuse those names with a message naming the entry.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, fileError("the package is not a zip archive (%v)", err)
	}
	files, perr := checkEntries(zr.File)
	if perr != nil {
		return nil, perr
	}
	root, ok := packageRoot(files)
	if !ok {
		return nil, fileError("manifest.json is missing: put it at the root of the zip, or inside its only top-level folder")
	}
	mb, perr := readEntry(files[root+manifestName], maxManifestBytes)
	if perr != nil {
		return nil, perr
	}
	m, perr := parseManifest(mb)
	if perr != nil {
		return nil, perr
	}
	f, ok := files[root+m.Main]
	if !ok || f.Mode().IsDir() {
		return nil, manifestError("main %q is not in the package", m.Main)
	}
	src, perr := readEntry(f, MaxUnpackedBytes-int64(len(mb)))
	if perr != nil {
		return nil, perr
	}
	return &Package{Manifest: m, Source: string(src)}, nil
}

// checkEntries refuses unsafe entries and bombs from the central directory alone, before
// anything is decompressed, and indexes the entries by their clean name.
func checkEntries(entries []*zip.File) (map[string]*zip.File, *Error) {
	if len(entries) > MaxEntries {
		return nil, fileError("the package has %d entries; at most %d are allowed", len(entries), MaxEntries)
	}
	files := make(map[string]*zip.File, len(entries))
	var total uint64
	for _, f := range entries {
		if problem := checkName(f.Name); problem != "" {
			return nil, fileError("entry %q %s", f.Name, problem)
		}
		mode := f.Mode()
		if mode&fs.ModeSymlink != 0 {
			return nil, fileError("entry %q is a symlink; a package holds only files and folders", f.Name)
		}
		if !mode.IsRegular() && !mode.IsDir() {
			return nil, fileError("entry %q is not a regular file", f.Name)
		}
		size := f.UncompressedSize64
		// Compared by subtraction: hostile headers may carry sizes near 2^64.
		if size > MaxUnpackedBytes-total {
			return nil, fileError("the package unpacks to more than %d bytes (16 MiB)", MaxUnpackedBytes)
		}
		total += size
		if size > bombMinBytes && size/bombRatio > f.CompressedSize64 {
			return nil, fileError("entry %q is compressed more than %d:1 (a zip bomb?)", f.Name, bombRatio)
		}
		name := path.Clean(f.Name)
		if _, dup := files[name]; dup {
			// Two entries of one name would let a reviewer see one file and the codec run another.
			return nil, fileError("entry %q appears twice", f.Name)
		}
		files[name] = f
	}
	return files, nil
}

// checkName returns what is wrong with a slash-separated path inside a package, or "".
func checkName(name string) string {
	switch {
	case name == "":
		return "has an empty name"
	case strings.ContainsRune(name, 0):
		return "contains a NUL byte"
	case strings.Contains(name, `\`):
		return "contains a backslash"
	case strings.HasPrefix(name, "/"), len(name) >= 2 && name[1] == ':':
		return "is an absolute path"
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return `leaves the package (it has a ".." element)`
		}
	}
	return ""
}

// packageRoot finds the folder holding manifest.json: the zip's root, or the one folder
// that everything is in.
func packageRoot(files map[string]*zip.File) (string, bool) {
	if f, ok := files[manifestName]; ok && !f.Mode().IsDir() {
		return "", true
	}
	top := ""
	for name := range files {
		first, _, _ := strings.Cut(name, "/")
		if first == macOSJunk {
			continue
		}
		if top != "" && first != top {
			return "", false
		}
		top = first
	}
	if f, ok := files[top+"/"+manifestName]; ok && top != "" && !f.Mode().IsDir() {
		return top + "/", true
	}
	return "", false
}

// readEntry decompresses one entry, trusting nothing in its header.
func readEntry(f *zip.File, limit int64) ([]byte, *Error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fileError("cannot read entry %q: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	switch {
	case errors.Is(err, zip.ErrFormat):
		// While reading, archive/zip reports ErrFormat when an entry inflates to another
		// size than its header declares: the way a zip bomb hides from the checks above.
		return nil, fileError("entry %q does not unpack to the size its header declares (a zip bomb?)", f.Name)
	case err != nil:
		return nil, fileError("cannot read entry %q: %v", f.Name, err)
	case int64(len(b)) > limit:
		return nil, fileError("entry %q unpacks to more than %d bytes", f.Name, limit)
	}
	return b, nil
}

// LoadDir reads a local protocol from a directory, with the rules of ParsePackage: dir holds
// manifest.json and the main file it names, which must stay inside dir. dir must be
// absolute, because it must mean the same directory on every node.
func LoadDir(dir string) (*Package, error) {
	if !filepath.IsAbs(dir) {
		return nil, fileError("the directory %q is not an absolute path, like /opt/protocols/demo", dir)
	}
	// os.Root also keeps symlinks inside the directory from leading out of it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fileError("cannot open the directory: %v", err)
	}
	defer root.Close()
	mb, err := readRootFile(root, manifestName, maxManifestBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileError("manifest.json is missing from %s", dir)
	} else if err != nil {
		return nil, fileError("%v", err)
	}
	m, perr := parseManifest(mb)
	if perr != nil {
		return nil, perr
	}
	src, err := readRootFile(root, filepath.FromSlash(m.Main), MaxUnpackedBytes-int64(len(mb)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, manifestError("main %q is not in %s", m.Main, dir)
	} else if err != nil {
		return nil, fileError("%v", err)
	}
	return &Package{Manifest: m, Source: string(src)}, nil
}

func readRootFile(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// parseManifest decodes and checks manifest.json, naming every problem it finds, and
// returns it with canonical transports and a clean main path.
func parseManifest(b []byte) (Manifest, *Error) {
	var m Manifest
	// Editors on Windows save JSON with a byte order mark, which encoding/json refuses.
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return m, manifestError(`not a JSON object; write one like {"id": "demo", "name": "Demo", "version": "1.0.0", "transports": ["MQTT"]}`)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			want := "a string"
			if te.Type != nil && te.Type.Kind() == reflect.Slice {
				want = "an array of strings"
			}
			return m, manifestError("%s must be %s, not %s", te.Field, want, te.Value)
		}
		return m, manifestError("not valid JSON (%v)", err)
	}

	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	switch {
	case m.ID == "":
		add("id is required")
	case !idPattern.MatchString(m.ID):
		add("id %q must be 1 to 64 letters, digits, '_', '.' or '-'", m.ID)
	}
	checkText(add, "name", m.Name, 64)
	checkText(add, "version", m.Version, 32)

	if len(m.Transports) == 0 {
		add("transports is required: list at least one of %s", strings.Join(Transports, ", "))
	}
	canonical := make([]string, 0, len(m.Transports))
	seen := make(map[string]int, len(m.Transports))
	for i, t := range m.Transports {
		c, ok := canonicalTransport(t)
		if !ok {
			add("transports[%d] %q is not one of %s", i, t, strings.Join(Transports, ", "))
			continue
		}
		if j, dup := seen[c]; dup {
			add("transports[%d] %q repeats transports[%d]", i, t, j)
			continue
		}
		seen[c] = i
		canonical = append(canonical, c)
	}
	m.Transports = canonical

	if m.Main == "" {
		m.Main = defaultMain
	}
	if problem := checkName(m.Main); problem != "" {
		add("main %q %s", m.Main, problem)
	} else if m.Main = path.Clean(m.Main); !strings.HasSuffix(m.Main, ".js") {
		add("main %q must name a .js file", m.Main)
	}

	if len(problems) > 0 {
		return m, manifestError("%s", strings.Join(problems, "; "))
	}
	return m, nil
}

// checkText checks a required one-line field of at most max characters.
func checkText(add func(string, ...any), key, s string, max int) {
	switch {
	case strings.TrimSpace(s) == "":
		add("%s is required", key)
	case utf8.RuneCountInString(s) > max:
		add("%s must be at most %d characters", key, max)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		add("%s must not contain control characters", key)
	}
}

func canonicalTransport(t string) (string, bool) {
	for _, c := range Transports {
		if strings.EqualFold(t, c) {
			return c, true
		}
	}
	return "", false
}

func manifestError(format string, args ...any) *Error {
	return &Error{Field: "manifest", Message: "manifest.json: " + fmt.Sprintf(format, args...)}
}

// Load reads a protocol resource's codec: its uploaded package, or its local directory.
func Load(p *resource.Protocol) (*Package, error) {
	switch p.Type {
	case resource.ProtocolPackage:
		return ParsePackage(p.Package)
	case resource.ProtocolLocal:
		return LoadDir(p.Configuration.Location)
	}
	return nil, fmt.Errorf("protocol %s has type %q, which has no codec", p.ID, p.Type)
}
