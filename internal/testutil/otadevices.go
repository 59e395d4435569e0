package testutil

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkops/linkops/protocol"
	"github.com/linkops/linkops/protocol/official"
)

// OTABehaviour is how a simulated device answers a firmware push.
type OTABehaviour struct {
	// Silent devices never answer the push (they fail by the response timeout).
	Silent bool
	// Stall devices answer and report some progress, then nothing (the upgrade timeout).
	Stall bool
	// Fail reports success: false with this reason after downloading.
	Fail string
	// DownloadVia rewrites the link's host:port: the device downloads through another node.
	DownloadVia string
	// Resume downloads half the file, drops the connection, and fetches the rest with Range.
	Resume bool
	// ByReport ends with a firmware/report of the new version instead of a completing
	// progress report.
	ByReport bool
	// Delay is how long the device takes to install after downloading: it sleeps this long
	// before its completing report, so a campaign lasts long enough to act in the middle.
	Delay time.Duration
}

// OTADevice is an official MQTT device that upgrades itself like a real one: on
// firmware/upgrade it answers, downloads the file from the link without a token, checks the
// sign, reports progress and completes — unless its behaviour says otherwise.
type OTADevice struct {
	*MQTTDevice
	mu        sync.Mutex
	behaviour OTABehaviour
	pushes    []protocol.Message
	pulls     []protocol.Message
	version   string
	errs      []error
	done      chan string
}

// ConnectOTADevice connects an OTA-capable device running firmware version current.
func ConnectOTADevice(t testing.TB, addr, id string, p Product, current string, b OTABehaviour) *OTADevice {
	t.Helper()
	d := &OTADevice{MQTTDevice: ConnectMQTTDevice(t, addr, id, p), behaviour: b, version: current, done: make(chan string, 16)}
	d.MQTTDevice.mu.Lock()
	d.MQTTDevice.onOther = d.handle
	d.MQTTDevice.mu.Unlock()
	return d
}

// SetBehaviour changes how the next pushes are answered.
func (d *OTADevice) SetBehaviour(b OTABehaviour) {
	d.mu.Lock()
	d.behaviour = b
	d.mu.Unlock()
}

// Pushes are the firmware/upgrade messages received so far.
func (d *OTADevice) Pushes() []protocol.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]protocol.Message(nil), d.pushes...)
}

// PullAnswers are the firmware/pull/reply messages received so far.
func (d *OTADevice) PullAnswers() []protocol.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]protocol.Message(nil), d.pulls...)
}

// Version is the firmware version the device runs.
func (d *OTADevice) Version() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Errors are what went wrong on the device's side (bad link, bad sign).
func (d *OTADevice) Errors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.errs...)
}

// Pull asks for firmware (firmware/pull) and waits for the answer.
func (d *OTADevice) Pull(t testing.TB, requestVersion string) protocol.Message {
	t.Helper()
	before := len(d.PullAnswers())
	id := fmt.Sprintf("pull-%d", time.Now().UnixNano())
	d.Publish(t, protocol.Message{Type: protocol.TypeFirmwarePull, MessageID: id, CurrentVersion: d.Version(), RequestVersion: requestVersion})
	var got protocol.Message
	WaitFor(t, 20*time.Second, "the pull answer", func() bool {
		answers := d.PullAnswers()
		if len(answers) > before {
			got = answers[len(answers)-1]
			return true
		}
		return false
	})
	if got.MessageID != id {
		t.Fatalf("pull answer echoes messageId %q, want %q", got.MessageID, id)
	}
	return got
}

// Install downloads and installs what a pull answer offered, like a pushed upgrade.
func (d *OTADevice) Install(m protocol.Message) { d.upgrade(m) }

func (d *OTADevice) handle(m protocol.Message) {
	switch m.Type {
	case protocol.TypeFirmwareUpgrade:
		d.mu.Lock()
		d.pushes = append(d.pushes, m)
		d.mu.Unlock()
		d.upgrade(m)
	case protocol.TypeFirmwarePullReply:
		d.mu.Lock()
		d.pulls = append(d.pulls, m)
		d.mu.Unlock()
	}
}

func (d *OTADevice) fail(err error) {
	d.mu.Lock()
	d.errs = append(d.errs, err)
	d.mu.Unlock()
}

// send publishes without a testing.T: the device runs in the client's goroutines.
func (d *OTADevice) send(m protocol.Message) {
	m.DeviceID = d.ID
	topic, payload, err := official.EncodeUpJSON(d.Product.ID, m)
	if err != nil {
		d.fail(err)
		return
	}
	d.Client.Publish(topic, 1, false, payload).WaitTimeout(10 * time.Second)
}

func (d *OTADevice) upgrade(m protocol.Message) {
	d.mu.Lock()
	b := d.behaviour
	d.mu.Unlock()
	if b.Silent {
		return
	}
	if m.Type == protocol.TypeFirmwareUpgrade {
		d.send(protocol.Message{Type: protocol.TypeFirmwareUpgradeAck, MessageID: m.MessageID, Success: protocol.Bool(true), FirmwareID: m.FirmwareID})
	}
	d.send(protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 10, FirmwareID: m.FirmwareID, Version: m.Version})
	if b.Stall {
		return
	}
	sum, err := download(m.URL, b.DownloadVia, b.Resume, m.SignMethod)
	if err == nil && !strings.EqualFold(sum, m.Sign) {
		err = fmt.Errorf("downloaded file's %s is %s, the push says %s", m.SignMethod, sum, m.Sign)
	}
	if err != nil {
		d.fail(err)
		d.send(protocol.Message{Type: protocol.TypeFirmwareProgress, FirmwareID: m.FirmwareID, Success: protocol.Bool(false), ErrorReason: err.Error()})
		return
	}
	if b.Fail != "" {
		d.send(protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 80, FirmwareID: m.FirmwareID, Success: protocol.Bool(false), ErrorReason: b.Fail})
		return
	}
	d.send(protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 60, FirmwareID: m.FirmwareID, Version: m.Version})
	if b.Delay > 0 {
		time.Sleep(b.Delay)
	}
	d.mu.Lock()
	d.version = m.Version
	d.mu.Unlock()
	if b.ByReport {
		d.send(protocol.Message{Type: protocol.TypeFirmwareReport, Version: m.Version})
	} else {
		d.send(protocol.Message{Type: protocol.TypeFirmwareProgress, Progress: 100, Complete: true, Success: protocol.Bool(true), FirmwareID: m.FirmwareID, Version: m.Version})
	}
	select {
	case d.done <- m.Version:
	default:
	}
}

// download fetches a firmware link without a token (through via when set; resuming with
// Range when asked) and returns the file's hash by method.
func download(link, via string, resume bool, method string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", err
	}
	if via != "" {
		u.Host = via
	}
	var h hash.Hash = sha256.New()
	if method == "md5" {
		h = md5.New()
	}
	resp, err := http.Get(u.String())
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return "", fmt.Errorf("GET %s: %s", u.Path, resp.Status)
	}
	total := resp.ContentLength
	if !resume || total < 2 {
		_, err = io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	// The connection drops halfway; the device asks for the rest.
	half := total / 2
	if _, err := io.CopyN(h, resp.Body, half); err != nil {
		resp.Body.Close()
		return "", err
	}
	resp.Body.Close()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", half))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return "", fmt.Errorf("resuming with Range: %s, want 206", resp.Status)
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
