package testutil

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// ZLM is a stand-in for a ZLMediaKit server's HTTP API (ZLMediaKit is not packaged here):
// getServerConfig, openRtpServer, closeRtpServer and getMediaList with the paths, parameters
// and JSON answers of ZLMediaKit's documentation, `secret` required on every call.
type ZLM struct {
	Host   string
	Port   int
	Secret string
	srv    *httptest.Server

	mu      sync.Mutex
	down    bool
	calls   []ZLMCall
	open    map[string]int // stream -> port
	busy    map[int]bool
	nextRTP int
}

// ZLMCall is one API call the stand-in received.
type ZLMCall struct {
	Method string
	Params map[string]string
}

// StartZLM serves the stand-in on host (an address of this machine) and a free port.
func StartZLM(t testing.TB, host, secret string) *ZLM {
	t.Helper()
	z := &ZLM{Host: host, Secret: secret, open: map[string]int{}, busy: map[int]bool{}, nextRTP: 30000}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	z.srv = httptest.NewUnstartedServer(http.HandlerFunc(z.serve))
	z.srv.Listener.Close()
	z.srv.Listener = ln
	z.srv.Start()
	t.Cleanup(z.srv.Close)
	z.Port = ln.Addr().(*net.TCPAddr).Port
	return z
}

// SetDown makes the API answer 500 (down) or work again.
func (z *ZLM) SetDown(down bool) {
	z.mu.Lock()
	z.down = down
	z.mu.Unlock()
}

// SetBusy makes openRtpServer refuse port, as ZLMediaKit does for a port in use.
func (z *ZLM) SetBusy(port int) {
	z.mu.Lock()
	z.busy[port] = true
	z.mu.Unlock()
}

// Calls returns the calls of method ("" for all) received so far.
func (z *ZLM) Calls(method string) []ZLMCall {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []ZLMCall
	for _, c := range z.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Open returns the streams whose RTP port is open, by stream id.
func (z *ZLM) Open() map[string]int {
	z.mu.Lock()
	defer z.mu.Unlock()
	out := make(map[string]int, len(z.open))
	for k, v := range z.open {
		out[k] = v
	}
	return out
}

func (z *ZLM) serve(w http.ResponseWriter, r *http.Request) {
	answer := func(v map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	q := r.URL.Query()
	params := map[string]string{}
	for k := range q {
		params[k] = q.Get(k)
	}
	const prefix = "/index/api/"
	if len(r.URL.Path) <= len(prefix) || r.URL.Path[:len(prefix)] != prefix {
		http.NotFound(w, r)
		return
	}
	method := r.URL.Path[len(prefix):]
	z.mu.Lock()
	defer z.mu.Unlock()
	z.calls = append(z.calls, ZLMCall{Method: method, Params: params})
	if z.down {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	if q.Get("secret") != z.Secret {
		answer(map[string]any{"code": -100, "msg": "Incorrect secret"})
		return
	}
	switch method {
	case "getServerConfig":
		answer(map[string]any{"code": 0, "data": []map[string]any{{"general.mediaServerId": "zlm-" + strconv.Itoa(z.Port), "rtp_proxy.port": "10000"}}})
	case "openRtpServer":
		stream := q.Get("stream_id")
		port, _ := strconv.Atoi(q.Get("port"))
		if stream == "" {
			answer(map[string]any{"code": -300, "msg": "stream_id is required"})
			return
		}
		if _, dup := z.open[stream]; dup {
			answer(map[string]any{"code": -300, "msg": "该stream_id已存在"})
			return
		}
		if port == 0 {
			port = z.nextRTP
			z.nextRTP++
		}
		if z.busy[port] {
			answer(map[string]any{"code": -1, "msg": "bind udp socket failed: Address already in use"})
			return
		}
		z.open[stream] = port
		answer(map[string]any{"code": 0, "port": port})
	case "closeRtpServer":
		stream := q.Get("stream_id")
		hit := 0
		if _, ok := z.open[stream]; ok {
			delete(z.open, stream)
			hit = 1
		}
		answer(map[string]any{"code": 0, "hit": hit})
	case "getMediaList":
		if len(z.open) == 0 {
			answer(map[string]any{"code": 0}) // ZLMediaKit leaves out data when empty
			return
		}
		var data []map[string]any
		for s := range z.open {
			data = append(data, map[string]any{"app": "rtp", "stream": s, "schema": "rtsp"})
		}
		answer(map[string]any{"code": 0, "data": data})
	default:
		answer(map[string]any{"code": -500, "msg": "unknown api"})
	}
}
