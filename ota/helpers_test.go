package ota

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/linkops/linkops/fsm"
	"github.com/linkops/linkops/ota/blob"
	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/resource"
)

var (
	t0      = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	discard = slog.New(slog.DiscardHandler)
)

// world is one FSM fed committed entries at increasing indexes, as raft would; Propose and
// Apply of the parts under test write to it too.
type world struct {
	t   testing.TB
	f   *fsm.FSM
	mu  sync.Mutex // raft applies one entry at a time
	idx uint64
}

func newWorld(t testing.TB) *world { return &world{t: t, f: fsm.New(discard)} }

func (w *world) store() *fsm.Store { return w.f.Store() }

func (w *world) apply(data []byte) any {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idx++
	return w.f.Apply(&raft.Log{Index: w.idx, Term: 1, Type: raft.LogCommand, Data: data})
}

// must applies a command that must be accepted.
func (w *world) must(data []byte, err error) any {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
	res := w.apply(data)
	if err, ok := res.(error); ok {
		w.t.Fatalf("command refused: %v", err)
	}
	return res
}

// propose is a Propose that commits to this FSM (a one-node raft).
func (w *world) propose(_ context.Context, cmd []byte) error {
	if err, ok := w.apply(cmd).(error); ok {
		return err
	}
	return nil
}

// applyCmd is the leader's Apply on this FSM.
func (w *world) applyCmd(_ context.Context, cmd []byte) (any, error) {
	res := w.apply(cmd)
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

func (w *world) init(key string) {
	w.t.Helper()
	w.must(fsm.Encode(fsm.InitType, fsm.InitRequest{TokenKey: []byte(key), Now: t0,
		Admin: &resource.User{Meta: resource.Meta{ID: "admin"}, Username: "admin", Role: resource.RoleAdmin}}))
}

func (w *world) product(id string) {
	w.t.Helper()
	w.must(fsm.NewUpsert(resource.Products, &resource.Product{Meta: resource.Meta{ID: id}, Name: id, SecureID: "sid-" + id}, true, 0, t0))
}

func (w *world) devices(product string, ids ...string) {
	w.t.Helper()
	for _, id := range ids {
		w.must(fsm.NewUpsert(resource.Devices, &resource.Device{Meta: resource.Meta{ID: id}, Name: id, ProductID: product}, true, 0, t0))
	}
}

func (w *world) putFirmware(fw *resource.Firmware) {
	w.t.Helper()
	w.must(fsm.NewUpsert(resource.Firmwares, fw, true, 0, t0))
}

func (w *world) deleteFirmware(id string) {
	w.t.Helper()
	w.must(fsm.NewDelete(resource.Firmwares, id, 0))
}

// ota applies one batch of OTA ops stamped now.
func (w *world) ota(now time.Time, ops ...fsm.OTAOp) *fsm.OTAResult {
	w.t.Helper()
	res := w.must(fsm.NewOTA(now, ops...))
	out, ok := res.(*fsm.OTAResult)
	if !ok {
		w.t.Fatalf("OTA %+v answered %T", ops, res)
	}
	return out
}

// task creates an upgrade task as the API would (validated, defaults filled); edit may
// change it before validation.
func (w *world) task(now time.Time, id, mode, firmware string, devices []string, edit func(*resource.UpgradeTask)) *resource.UpgradeTask {
	w.t.Helper()
	t := &resource.UpgradeTask{Meta: resource.Meta{ID: id}, Name: "task " + id, FirmwareID: firmware, Mode: mode, DeviceIDs: devices}
	if edit != nil {
		edit(t)
	}
	if errs := t.Validate(); len(errs) > 0 {
		w.t.Fatalf("task %q does not validate: %v", id, errs)
	}
	return w.ota(now, fsm.OTAOp{Op: fsm.OpCreate, Task: t}).Task
}

// presence records devices going online on server (or offline) at at.
func (w *world) presence(server string, online bool, at time.Time, ids ...string) {
	w.t.Helper()
	var changes []fsm.PresenceChange
	for _, id := range ids {
		changes = append(changes, fsm.PresenceChange{DeviceID: id, ServerID: server, Session: "s-" + id, Online: online, At: at, ConnectedAt: at})
	}
	w.must(fsm.NewPresence(changes))
}

func (w *world) record(task, device string) *fsm.OTARecord {
	w.t.Helper()
	r := w.store().OTARecord(task, device)
	if r == nil {
		w.t.Fatalf("task %q has no record of device %q", task, device)
	}
	return r
}

func (w *world) states(task string) map[string]string {
	out := map[string]string{}
	for _, r := range w.store().OTARecords(task, "") {
		out[r.DeviceID] = r.State
	}
	return out
}

// clock is a settable Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newBlobs(t testing.TB) blob.Store {
	t.Helper()
	s, err := blob.Open(context.Background(), "file://"+t.TempDir(), os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// firmwareOf is the record an upload leaves.
func firmwareOf(id, product, version string, order int, up Upload) *resource.Firmware {
	return &resource.Firmware{Meta: resource.Meta{ID: id}, Name: "fw " + id, ProductID: product, Version: version, VersionOrder: order,
		SignMethod: resource.SignSHA256, Sign: up.SHA256, Size: up.Size, MD5: up.MD5, SHA256: up.SHA256, BlobKey: up.Key}
}

// fakeFirmware is a record whose file is never read.
func fakeFirmware(id, product, version string, order int) *resource.Firmware {
	return firmwareOf(id, product, version, order, Upload{Key: "firmwares/" + id + "/k", Size: 1024,
		MD5: strings.Repeat("a", 32), SHA256: strings.Repeat("b", 64)})
}

// peer is another node's blob store behind its internal blob route (Firmware.ServeBlob
// over HTTP), as FetchBlob reaches it in a cluster.
type peer struct {
	blobs blob.Store
	fw    *Firmware
	srv   *httptest.Server
}

func newPeer(t *testing.T, w *world) *peer {
	t.Helper()
	p := &peer{blobs: newBlobs(t)}
	p.fw = NewFirmware(FirmwareConfig{NodeID: "peer", Store: w.store(), Blobs: p.blobs, Log: discard})
	p.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if err := p.fw.ServeBlob(rw, r, r.URL.Query().Get("key")); err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, blob.ErrNotFound) {
				code = http.StatusNotFound
			}
			http.Error(rw, err.Error(), code)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// fetch is FetchBlob against this peer.
func (p *peer) fetch(ctx context.Context, key string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.srv.URL+"/blob?key="+url.QueryEscape(key), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("%w: %s", blob.ErrNotFound, b)
		}
		return nil, fmt.Errorf("peer answered %d: %s", resp.StatusCode, b)
	}
	return resp.Body, nil
}

// upload stores data on the peer as an upload would and returns the record.
func (p *peer) upload(t *testing.T, w *world, id, version string, order int, data []byte) *resource.Firmware {
	t.Helper()
	up, err := p.fw.Upload(context.Background(), "firmwares/"+id+"/r1", bytes.NewReader(data), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	fw := firmwareOf(id, "p", version, order, up)
	w.putFirmware(fw)
	return fw
}

// value reads a counter.
func value(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// eventually polls cond until it holds, failing after a generous bound: the bound only
// catches a hang, it is not what the test checks.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// linkParts splits a device link into the firmware id, expires and signature.
func linkParts(t testing.TB, link string) (id, expires, signature string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatalf("link %q: %v", link, err)
	}
	if path.Base(u.Path) != "download" {
		t.Fatalf("link %q: path does not end in /download", link)
	}
	return path.Base(path.Dir(u.Path)), u.Query().Get("expires"), u.Query().Get("signature")
}

// opString is what matters of an op, for comparing batches.
func opString(op fsm.OTAOp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", op.Op)
	if op.TaskID != "" {
		fmt.Fprintf(&b, " task=%s", op.TaskID)
	}
	if op.DeviceID != "" {
		fmt.Fprintf(&b, " %s", op.DeviceID)
	}
	if len(op.DeviceIDs) > 0 {
		fmt.Fprintf(&b, " %v", op.DeviceIDs)
	}
	if op.Kind != "" {
		fmt.Fprintf(&b, " kind=%s", op.Kind)
	}
	if op.Progress != 0 {
		fmt.Fprintf(&b, " p=%d", op.Progress)
	}
	if op.Complete {
		b.WriteString(" complete")
	}
	if op.Success != nil {
		fmt.Fprintf(&b, " success=%v", *op.Success)
	}
	if op.ErrorReason != "" {
		fmt.Fprintf(&b, " reason=%q", op.ErrorReason)
	}
	if op.Version != "" {
		fmt.Fprintf(&b, " version=%s", op.Version)
	}
	return b.String()
}

func opStrings(ops []fsm.OTAOp) []string {
	out := []string{}
	for _, op := range ops {
		out = append(out, opString(op))
	}
	return out
}

// decodeOTA reads back the ops of an encoded OTA command.
func decodeOTA(t testing.TB, cmd []byte) fsm.OTARequest {
	t.Helper()
	if len(cmd) == 0 || fsm.MessageType(cmd[0]) != fsm.OTAType {
		t.Fatalf("command is not an OTA command: %q", cmd)
	}
	var req fsm.OTARequest
	if err := json.Unmarshal(cmd[1:], &req); err != nil {
		t.Fatal(err)
	}
	return req
}

func ptr[T any](v T) *T { return &v }

// sent is one message a Send delivered.
type sent struct {
	device string
	m      protocol.Message
}

// sender is a Send that records messages and fails for the devices told.
type sender struct {
	mu   sync.Mutex
	msgs []sent
	fail map[string]error
	ch   chan sent
}

func newSender() *sender { return &sender{fail: map[string]error{}, ch: make(chan sent, 100)} }

func (s *sender) send(_ context.Context, device string, m protocol.Message) error {
	s.mu.Lock()
	err := s.fail[device]
	if err == nil {
		s.msgs = append(s.msgs, sent{device, m})
	}
	s.mu.Unlock()
	if err == nil {
		s.ch <- sent{device, m}
	}
	return err
}

func (s *sender) setFail(device string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, device)
	} else {
		s.fail[device] = err
	}
}

func (s *sender) all() []sent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sent(nil), s.msgs...)
}

// next waits for the next message delivered.
func (s *sender) next(t testing.TB) sent {
	t.Helper()
	select {
	case m := <-s.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message sent within 10s")
	}
	return sent{}
}
