package listeners

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The session Env.Open returns answers AuthorizeSubscribe as the handler's session does,
// allows everything when that session has no say, and counts a refusal as unauthorized.
func TestTappedSessionForwardsSubscribeAuthorization(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inner   Session
		filter  string
		allowed bool
	}{
		{"no say", dropAll{}, "/other/#", true},
		{"own topics", ownOnly{}, "/p/d/#", true},
		{"other topics", ownOnly{}, "/p/e/#", false},
	} {
		reg := prometheus.NewRegistry()
		env := NewEnv("c1", "n1", sessionHandler{tc.inner}, nil, NewMetrics(reg), nil, nil)
		s, err := env.Open(context.Background(), fakeConn{})
		if err != nil {
			t.Fatal(err)
		}
		a, ok := s.(SubscribeAuthorizer)
		if !ok {
			t.Fatalf("%s: the tapped session is not a SubscribeAuthorizer", tc.name)
		}
		if got := a.AuthorizeSubscribe(tc.filter); got != tc.allowed {
			t.Fatalf("%s: AuthorizeSubscribe(%q) = %v, want %v", tc.name, tc.filter, got, tc.allowed)
		}
		want := 0.0
		if !tc.allowed {
			want = 1
		}
		if n := errorCount(t, reg, "unauthorized"); n != want {
			t.Fatalf("%s: %v unauthorized errors counted, want %v", tc.name, n, want)
		}
		s.Closed("done")
	}
}

type sessionHandler struct{ s Session }

func (h sessionHandler) Open(context.Context, Conn) (Session, error) { return h.s, nil }

type ownOnly struct{ dropAll }

func (ownOnly) AuthorizeSubscribe(filter string) bool { return strings.HasPrefix(filter, "/p/d/") }

type fakeConn struct{}

func (fakeConn) Info() ConnInfo   { return ConnInfo{Transport: TransportMQTT, ClientID: "d"} }
func (fakeConn) Send(Frame) error { return nil }
func (fakeConn) Close(string)     {}

func errorCount(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "linkops_listener_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
