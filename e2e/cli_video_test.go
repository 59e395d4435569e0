package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"github.com/linkops/linkops/client"
	"github.com/linkops/linkops/internal/testutil"
)

// TestCLIVideo drives a GB/T 28181 camera with the binary's client commands against one
// real agent: after the camera registers and answers the Catalog, device channels lists
// its channels and gateway status shows the SIP gateway running; with a ZLMediaKit
// stand-in as the media server, video play INVITEs the camera and prints the stream's
// URLs (-o json the API's answer), and video stop sends BYE and closes the RTP port.
func TestCLIVideo(t *testing.T) {
	const (
		serverID = "34020000002000000001"
		domain   = "3402000000"
		password = "cam-password-0123"
		camID    = "34020000001320000001"
		chGate   = "34020000001310000001"
		chYard   = "34020000001310000002"
	)
	cli, token, addr, _ := loggedInCLI(t, "dev1")
	admin := tokenClient(t, token, addr)
	port := testutil.FreePort(t, "udp")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/gateways", map[string]any{"id": "gb", "name": "gb", "provider": "gb28181-2016",
		"configuration": map[string]any{"sipId": serverID, "domain": domain, "password": password,
			"host": "127.0.0.1", "port": port, "shareCluster": true}, "state": "enabled"}, nil)
	testutil.CreateProductWithDevices(t, admin, "cams", "gb", camID)

	waitCLI(t, "the SIP gateway running", func() error {
		items, _ := decodeJSON(t, cli("gateway", "status", "gb", "-o", "json"))["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["state"] != "running" {
			return fmt.Errorf("status %v", items)
		}
		return nil
	})
	t.Run("gateway status", func(t *testing.T) {
		r := cli("gateway", "status", "gb")
		if !regexp.MustCompile(`(?m)^NODE\s+STATE\s+ADDRESS\s+SINCE\s+ERROR\s*$`).MatchString(r.stdout) {
			t.Errorf("gateway status header:\n%s", r.stdout)
		}
		row := tableRow(t, r.stdout, "dev1")
		if f := strings.Fields(row); len(f) < 2 || f[1] != "running" ||
			!regexp.MustCompile(`\s\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ(\s|$)`).MatchString(row) {
			t.Errorf("gateway status row of dev1 (running, since to the second): %q\n%s", row, r.stdout)
		}
	})

	sipAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cam := testutil.DialCamera(t, sipAddr, camID, domain, serverID, password)
	cam.RegisterWithChannels(t,
		testutil.Channel{ID: chGate, Name: "Gate", Manufacturer: "Hikvision", Model: "DS-2CD", Status: "ON"},
		testutil.Channel{ID: chYard, Name: "Yard", Manufacturer: "Dahua", Model: "IPC", Status: "OFF"})

	t.Run("device channels", func(t *testing.T) {
		var r cliResult
		waitCLI(t, "the catalog", func() error {
			r = cli("device", "channels", camID)
			if !strings.Contains(r.stdout, chYard) {
				return fmt.Errorf("channels:\n%s", r.stdout)
			}
			return nil
		})
		if !regexp.MustCompile(`(?m)^CHANNEL\s+NAME\s+MANUFACTURER\s+MODEL\s+STATUS\s+PARENT\s*$`).MatchString(r.stdout) {
			t.Errorf("device channels header:\n%s", r.stdout)
		}
		for ch, want := range map[string][]string{chGate: {chGate, "Gate", "Hikvision", "DS-2CD", "ON", camID}, chYard: {chYard, "Yard", "Dahua", "IPC", "OFF", camID}} {
			if got := strings.Fields(tableRow(t, r.stdout, ch)); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("device channels row of %s: %v, want %v", ch, got, want)
			}
		}
		items, _ := decodeJSON(t, cli("device", "channels", camID, "-o", "json"))["items"].([]any)
		if len(items) != 2 {
			t.Errorf("device channels -o json: %d items, want 2", len(items))
		}
	})

	z := testutil.StartZLM(t, "127.0.0.1", "zlm-secret")
	testutil.Do(t, admin, http.MethodPost, "/api/v1/media-servers", map[string]any{"id": "zlm1", "name": "zlm1", "provider": "zlmedia",
		"configuration": map[string]any{"secret": "zlm-secret", "apiHost": "127.0.0.1", "apiPort": z.Port, "rtpIp": "127.0.0.1", "rtspPort": 554},
		"state":         "enabled"}, nil)
	stream := camID + "_" + chGate

	t.Run("video play", func(t *testing.T) {
		if r := runCLI(t, token, "", "video", "play", camID, "--addr", addr); r.code == 0 || !strings.Contains(r.stderr, "channel") {
			t.Errorf("play without --channel: exit %d, stderr %q", r.code, r.stderr)
		}
		done := startCLI(token, "video", "play", camID, "--channel", chGate, "--addr", addr)
		inv := cam.NextRequest(t, sip.INVITE)
		cam.AnswerInvite(t, inv)
		cam.NextRequest(t, sip.ACK)
		r := <-done
		if r.code != 0 {
			t.Fatalf("video play: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		flv := fmt.Sprintf("http://127.0.0.1:%d/rtp/%s.live.flv", z.Port, stream)
		for _, re := range []string{`(?m)^stream\s+` + regexp.QuoteMeta(stream) + `\s*$`, `(?m)^media server\s+\S+\s*$`, `(?m)^ssrc\s+\d+\s*$`,
			`(?m)^flv\s+` + regexp.QuoteMeta(flv) + `\s*$`, `(?m)^hls\s+http://\S+\s*$`} {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("video play output lacks a line %s:\n%s", re, r.stdout)
			}
		}

		// The channel is playing: asking again answers the same stream.
		again := startCLI(token, "video", "play", camID, "--channel", chGate, "--addr", addr, "-o", "json")
		r2 := <-again
		if r2.code != 0 {
			t.Fatalf("video play -o json: exit %d\nstderr:\n%s", r2.code, r2.stderr)
		}
		var out struct {
			StreamID string            `json:"streamId"`
			URLs     map[string]string `json:"urls"`
		}
		if err := json.Unmarshal([]byte(r2.stdout), &out); err != nil || out.StreamID != stream || out.URLs["flv"] != flv {
			t.Errorf("video play -o json (%v):\n%s", err, r2.stdout)
		}
	})

	t.Run("video stop", func(t *testing.T) {
		done := startCLI(token, "video", "stop", camID, "--channel", chGate, "--addr", addr)
		bye := cam.NextRequest(t, sip.BYE)
		cam.Answer(t, bye, 200, nil)
		r := <-done
		if r.code != 0 {
			t.Fatalf("video stop: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "Stopped channel "+chGate+" of device "+camID) {
			t.Errorf("video stop output: %q", r.stdout)
		}
		if calls := z.Calls("closeRtpServer"); len(calls) != 1 {
			t.Errorf("closeRtpServer calls: %v, want one", calls)
		}
	})

	t.Run("errors", func(t *testing.T) {
		r := runCLI(t, token, "", "video", "play", "no-such-device", "--channel", chGate, "--addr", addr)
		if r.code == 0 || !regexp.MustCompile(`^Error: 4\d\d [a-z_]+: `).MatchString(r.stderr) {
			t.Errorf("play on an unknown device: exit %d, stderr %q (want the API's problem)", r.code, r.stderr)
		}
		// The camera listed its channels: another one is refused at once, without an INVITE.
		r = runCLI(t, token, "", "video", "play", camID, "--channel", "34020000001310000099", "--addr", addr)
		if r.code == 0 || !strings.Contains(r.stderr, "404 channel_not_found") {
			t.Errorf("play of a channel the Catalog lacks: exit %d, stderr %q", r.code, r.stderr)
		}
		r = runCLI(t, token, "", "device", "channels", "no-such-device", "--addr", addr)
		if r.code == 0 || !strings.Contains(r.stderr, "404") {
			t.Errorf("channels of an unknown device: exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// tokenClient is an API client with the token `linkops login` saved in tokenFile.
func tokenClient(t *testing.T, tokenFile, addr string) *client.Client {
	t.Helper()
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ Token string }
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		t.Fatalf("token file %s: %v", tokenFile, err)
	}
	return client.New(addr, s.Token)
}

// startCLI runs `linkops args...` in the background (for a command that waits on a
// device the test plays); its result arrives on the channel.
func startCLI(tokenFile string, args ...string) <-chan cliResult {
	done := make(chan cliResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, binPath, args...)
		cmd.Env = childEnv("LINKOPS_TOKEN_FILE=" + tokenFile)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		if err != nil && code == 0 {
			code = -1
		}
		if ctx.Err() != nil {
			fmt.Fprintf(&stderr, "\n(did not finish within %s)", cliTimeout)
		}
		done <- cliResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
	}()
	return done
}
