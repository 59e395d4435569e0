package cli

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/linkops/linkops/client"
)

const firmwarePath = "/api/v1/firmwares"

var firmwareColumns = []column{{"ID", "id"}, {"NAME", "name"}, {"PRODUCT", "productId"}, {"VERSION", "version"},
	{"ORDER", "versionOrder"}, {"SIZE", "size"}, {"SIGN METHOD", "signMethod"}}

// Errors of the firmware commands, for callers that match them with errors.Is.
var (
	// ErrChecksumMismatch: a downloaded file's sha256 is not the one the server holds.
	ErrChecksumMismatch = errors.New("sha256 mismatch")
	// ErrSignMethod: --sign-method names a hash the firmware API does not know.
	ErrSignMethod = errors.New("--sign-method must be md5 or sha256")
)

// firmwareCmd is `linkops firmware`: the generic list, get, update and delete, plus
// upload and download, which stream the file rather than sending JSON (SPEC §4.7).
func firmwareCmd(g *globals) *cobra.Command {
	cmd := resourceCmds(g, "firmware", "Manage firmware files for remote upgrade (OTA)", firmwarePath, firmwareColumns)
	cmd.Aliases = []string{"firmwares"}
	addListFilter(cmd, "product", "productId", "only firmware of this product")
	addListFilter(cmd, "version", "version", "only firmware of this version")
	update := writeCmd(g, opResource{use: "firmware", path: firmwarePath, cols: firmwareColumns, flags: []string{"version"}}, "update")
	update.Short = "Edit a firmware's fields (never its file: upload a new firmware for that)"
	update.Example = "  linkops firmware update --id fw-120 --description 'fixes the clock drift' --set versionOrder=121"
	cmd.AddCommand(update, firmwareUploadCmd(g), firmwareDownloadCmd(g))
	return cmd
}

// addListFilter gives the list subcommand of cmd a flag for one equality filter, passed on
// as --filter field=value so that the generic list stays the one that talks to the API.
func addListFilter(cmd *cobra.Command, flag, field, usage string) {
	for _, list := range cmd.Commands() {
		if list.Name() != "list" {
			continue
		}
		v := list.Flags().String(flag, "", usage)
		prev := list.PreRunE
		list.PreRunE = func(c *cobra.Command, args []string) error {
			if *v != "" {
				if err := c.Flags().Set("filter", field+"="+*v); err != nil {
					return err
				}
			}
			if prev != nil {
				return prev(c, args)
			}
			return nil
		}
	}
}

// firmwareProperty is one of a firmware's extra settings, as the form's properties field
// carries them.
type firmwareProperty struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Value string `json:"value"`
}

func firmwareUploadCmd(g *globals) *cobra.Command {
	var id, name, product, version, method, desc string
	var order int
	var props []string
	c := &cobra.Command{
		Use:   "upload FILE",
		Short: "Upload a firmware file: its sign is computed here, then the file streams to the cluster's blob store",
		Example: "  linkops firmware upload meter-1.2.0.bin --product meter --version 1.2.0 --order 120\n" +
			"  linkops firmware upload meter.bin --product meter --version 1.2.1 --order 121 --sign-method md5 --property mode=full",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			file := args[0]
			method = strings.ToLower(method)
			properties, err := parseFirmwareProperties(props)
			if err != nil {
				return err
			}
			sign, size, err := fileSign(file, method)
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(file)
			}
			fields := [][2]string{{"id", id}, {"name", name}, {"productId", product}, {"version", version},
				{"versionOrder", strconv.Itoa(order)}, {"signMethod", method}, {"sign", sign}, {"description", desc}}
			if len(properties) > 0 {
				b, err := json.Marshal(properties)
				if err != nil {
					return err
				}
				fields = append(fields, [2]string{"properties", string(b)})
			}
			out, err := g.uploadFirmware(file, size, fields)
			if err != nil {
				return err
			}
			return g.print(out, firmwareColumns)
		},
	}
	f := c.Flags()
	f.StringVar(&product, "product", "", "id of the product whose devices run this firmware (required)")
	f.StringVar(&version, "version", "", "firmware version, like 1.2.0 (required)")
	f.IntVar(&order, "order", 0, "version order, 1-99999, unique per product: devices pulling upgrade to higher orders (required)")
	f.StringVar(&name, "name", "", "name (default: the file's base name)")
	f.StringVar(&method, "sign-method", "sha256", "hash the file is signed with: md5 or sha256")
	f.StringVar(&id, "id", "", "id of the new firmware (generated when empty)")
	f.StringVar(&desc, "description", "", "description, at most 200 characters")
	f.StringArrayVar(&props, "property", nil, "extra setting sent to devices with the upgrade, id=value (repeatable)")
	for _, req := range []string{"product", "version", "order"} {
		_ = c.MarkFlagRequired(req)
	}
	return c
}

// parseFirmwareProperties reads --property id=value flags.
func parseFirmwareProperties(flags []string) ([]firmwareProperty, error) {
	out := make([]firmwareProperty, 0, len(flags))
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--property %q: want id=value, e.g. mode=full", kv)
		}
		out = append(out, firmwareProperty{ID: k, Value: v})
	}
	return out, nil
}

// newSignHash returns the hash of a sign method.
func newSignHash(method string) (hash.Hash, error) {
	switch method {
	case "md5":
		return md5.New(), nil
	case "sha256":
		return sha256.New(), nil
	}
	return nil, fmt.Errorf("%w (got %q)", ErrSignMethod, method)
}

// fileSign hashes the file by method, reading it once as a stream, and returns the sign
// in lower-case hex with the file's size. The sign goes with the upload so that the server
// refuses a file damaged on the way (SPEC §4.7 sign_mismatch).
func fileSign(path, method string) (sign string, size int64, err error) {
	h, err := newSignHash(method)
	if err != nil {
		return "", 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// transferClient is the API client of a firmware transfer: without the client's
// whole-request timeout, since a 2 GiB file over a slow link outlasts any fixed bound, but
// with one on the wait for the answer once the request is sent, so that a stuck node does
// not hang it. Ctrl-C ends a transfer.
func (g *globals) transferClient() *client.Client {
	c := g.client()
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 5 * time.Minute
	c.HTTP = &http.Client{Transport: t}
	return c
}

// errUploadAnswered ends the form writer when the server answered before reading the
// whole file (a refusal: 401, 413, 503 …), which is then the error shown.
var errUploadAnswered = errors.New("the server answered before the upload ended")

// uploadFirmware posts the form streamed: a goroutine writes the text fields and then the
// file into a pipe that is the request body, so that the file is never whole in memory.
func (g *globals) uploadFirmware(path string, size int64, fields [][2]string) (map[string]any, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src := &readErrReader{r: f}
	var body io.Reader = src
	bar := g.progressBar(size, "uploading")
	if bar != nil {
		body = &barReader{r: src, bar: bar}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(writeFirmwareForm(mw, fields, filepath.Base(path), body))
	}()
	// Expect: 100-continue lets a node refuse (no token, no leader) before the file is sent.
	resp, err := g.transferClient().Raw(ctx, http.MethodPost, firmwarePath, pr, mw.FormDataContentType(),
		http.Header{"Expect": {"100-continue"}})
	pr.CloseWithError(errUploadAnswered)
	<-done
	if bar != nil && !bar.IsFinished() {
		_ = bar.Exit()
	}
	if err != nil {
		var p *client.Problem
		switch {
		case errors.As(err, &p):
			return nil, err
		case src.err != nil:
			return nil, fmt.Errorf("read %s: %w", path, src.err)
		case ctx.Err() != nil:
			return nil, errors.New("upload interrupted: nothing was stored")
		}
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode the uploaded firmware: %w", err)
	}
	return out, nil
}

// writeFirmwareForm writes the non-empty text fields in their order, then the file: the
// server reads the fields first, as browsers and curl -F send them, to check the file as
// it streams (SPEC §4.7).
func writeFirmwareForm(mw *multipart.Writer, fields [][2]string, filename string, file io.Reader) error {
	for _, kv := range fields {
		if kv[1] == "" {
			continue
		}
		if err := mw.WriteField(kv[0], kv[1]); err != nil {
			return err
		}
	}
	part, err := mw.CreateFormFile("file", filename)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, file); err != nil {
		return err
	}
	return mw.Close()
}

// readErrReader keeps the error of reading the file, to tell it from the pipe's errors.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// barReader moves a progress bar by what is read; the bar's own errors (a file that grew
// past its size) never fail the transfer.
type barReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (r *barReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	_ = r.bar.Add(n)
	return n, err
}

// progressBar returns a byte progress bar on stderr when stderr is a terminal, else nil:
// a script's log or a pipe gets no carriage-return noise.
func (g *globals) progressBar(size int64, what string) *progressbar.ProgressBar {
	f, ok := g.stderr.(*os.File)
	if !ok || size <= 0 || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetWidth(10),
		progressbar.OptionThrottle(65*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(f) }),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func firmwareDownloadCmd(g *globals) *cobra.Command {
	var out string
	var resume bool
	c := &cobra.Command{
		Use:   "download ID",
		Short: "Download a firmware file and check its sha256 (to -o FILE, else standard output)",
		Example: "  linkops firmware download fw-120 -o meter-1.2.0.bin\n" +
			"  linkops firmware download fw-120 -o meter-1.2.0.bin --resume\n" +
			"  linkops firmware download fw-120 > meter-1.2.0.bin",
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return g.downloadFirmware(args[0], out, resume)
		},
	}
	// This -o names the file: a download has no table to format, so it takes the global
	// flag's place here.
	c.Flags().StringVarP(&out, "output", "o", "", "file to write ('-' or none: standard output)")
	c.Flags().BoolVar(&resume, "resume", false, "continue a partial file from where it ends (HTTP Range); the whole file's sha256 is checked")
	return c
}

// downloadFirmware streams GET /firmwares/{id}/file to path (or stdout), hashing it on
// the way, and fails with ErrChecksumMismatch when the sha256 is not the server's ETag.
func (g *globals) downloadFirmware(id, path string, resume bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	toStdout := path == "" || path == "-"
	if toStdout && resume {
		return errors.New("--resume needs -o FILE: standard output cannot be continued")
	}
	if toStdout && isTerminal(g.stdout) {
		return errors.New("refusing to write a firmware file to the terminal: use -o FILE or redirect standard output")
	}
	h := sha256.New()
	var w io.Writer = g.stdout
	var file *os.File
	var offset int64
	if !toStdout && resume {
		var err error
		switch file, err = os.OpenFile(path, os.O_RDWR, 0); {
		case errors.Is(err, os.ErrNotExist):
			// Nothing to continue: a whole download, to a file made once the server answers.
		case err != nil:
			return err
		default:
			defer file.Close()
			// The part already there is hashed now, so that the whole file is checked; the
			// read leaves the file's offset at its end, where the rest is appended.
			if offset, err = io.Copy(h, file); err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			w = file
		}
	}
	c := g.transferClient()
	filePath := firmwarePath + "/" + url.PathEscape(id) + "/file"
	header := http.Header{}
	if offset > 0 {
		header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.Raw(ctx, http.MethodGet, filePath, nil, "", header)
	if err != nil {
		var p *client.Problem
		if offset > 0 && errors.As(err, &p) && p.Status == http.StatusRequestedRangeNotSatisfiable {
			// Nothing lies beyond the partial file: it may be whole already.
			return g.checkWhole(ctx, c, id, path, offset, hex.EncodeToString(h.Sum(nil)))
		}
		if ctx.Err() != nil {
			return errors.New("download interrupted")
		}
		return err
	}
	defer resp.Body.Close()
	if !toStdout && file == nil {
		// Made (or emptied) only now that the server sends the file: a refused download
		// (a wrong id, no token) leaves whatever was at path untouched.
		if file, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	if offset > 0 {
		if resp.StatusCode == http.StatusPartialContent {
			if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
				return fmt.Errorf("the server sent Content-Range %q for a request from byte %d", resp.Header.Get("Content-Range"), offset)
			}
		} else {
			// The server sent the whole file, not the range asked: start over.
			if err := file.Truncate(0); err != nil {
				return err
			}
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return err
			}
			h.Reset()
			offset = 0
		}
	}
	var body io.Reader = resp.Body
	if bar := g.progressBar(offset+resp.ContentLength, "downloading"); bar != nil && resp.ContentLength > 0 {
		_ = bar.Set64(offset)
		body = &barReader{r: resp.Body, bar: bar}
		defer func() {
			if !bar.IsFinished() {
				_ = bar.Exit()
			}
		}()
	}
	n, err := io.Copy(io.MultiWriter(w, h), body)
	if err != nil {
		what := "download broke"
		if ctx.Err() != nil {
			what = "download interrupted"
		}
		if toStdout {
			return fmt.Errorf("%s after %d bytes: %w", what, offset+n, err)
		}
		return fmt.Errorf("%s after %d bytes (run again with --resume to continue %s): %w", what, offset+n, path, err)
	}
	if file != nil {
		if err := file.Close(); err != nil {
			return err
		}
	}
	got := hex.EncodeToString(h.Sum(nil))
	want, ok := etagSHA256(resp.Header.Get("ETag"))
	if !ok {
		// Without the hash in the answer, the record's is the reference.
		rec, err := firmwareRecord(ctx, c, id)
		if err != nil {
			return fmt.Errorf("downloaded %s, but could not learn its sha256 to check it: %w", id, err)
		}
		want = rec.SHA256
	}
	if got != want {
		if toStdout {
			return fmt.Errorf("%w: the %d bytes written have sha256 %s, the server's is %s: do not use them", ErrChecksumMismatch, offset+n, got, want)
		}
		// A damaged firmware file is removed so that nobody flashes it by mistake.
		_ = os.Remove(path)
		return fmt.Errorf("%w: %s had sha256 %s, the server's is %s; it was removed: download it again", ErrChecksumMismatch, path, got, want)
	}
	if !toStdout {
		fmt.Fprintf(g.stdout, "Downloaded firmware %s to %s (%d bytes, sha256 %s)\n", id, path, offset+n, got)
	}
	return nil
}

// checkWhole decides a resume that the server refused as beyond the end: the partial file
// is whole when its size and sha256 are the record's.
func (g *globals) checkWhole(ctx context.Context, c *client.Client, id, path string, size int64, sum string) error {
	rec, err := firmwareRecord(ctx, c, id)
	if err != nil {
		return err
	}
	if size != rec.Size || sum != rec.SHA256 {
		return fmt.Errorf("%w: %s has %d bytes with sha256 %s; firmware %s has %d bytes with sha256 %s: delete it and download again without --resume",
			ErrChecksumMismatch, path, size, sum, id, rec.Size, rec.SHA256)
	}
	fmt.Fprintf(g.stdout, "Firmware %s is already whole in %s (%d bytes, sha256 %s)\n", id, path, size, sum)
	return nil
}

type firmwareSums struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func firmwareRecord(ctx context.Context, c *client.Client, id string) (firmwareSums, error) {
	var rec firmwareSums
	_, err := c.Do(ctx, http.MethodGet, firmwarePath+"/"+url.PathEscape(id), nil, &rec)
	rec.SHA256 = strings.ToLower(rec.SHA256)
	return rec, err
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// etagSHA256 reads the file's ETag, `"<sha256 hex>"` (SPEC §4.7).
func etagSHA256(etag string) (string, bool) {
	s := strings.ToLower(strings.Trim(strings.TrimPrefix(strings.TrimSpace(etag), "W/"), `"`))
	return s, sha256Hex.MatchString(s)
}

// contentRangeStart reads the first byte of "bytes START-END/SIZE".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}
