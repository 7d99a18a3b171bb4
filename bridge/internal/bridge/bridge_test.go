package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tailscale.com/disco"
	"tailscale.com/types/key"
	"tailscale.com/wgengine/magicsock"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeRelayd answers allocations with handler, recording what it was sent.
type fakeRelayd struct {
	srv     *httptest.Server
	last    atomic.Value // map[string]any of the last body
	auth    atomic.Value // string
	handler func(w http.ResponseWriter, req map[string]any)
}

func newFakeRelayd(t *testing.T, h func(w http.ResponseWriter, req map[string]any)) *fakeRelayd {
	f := &fakeRelayd{handler: h}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		f.last.Store(req)
		f.auth.Store(r.Header.Get("Authorization"))
		f.handler(w, req)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func endpointJSON(req map[string]any, mutate func(m map[string]any)) []byte {
	keys := req["DiscoKeys"].([]any)
	m := map[string]any{
		"ServerDisco":         key.NewDisco().Public().String(),
		"ClientDisco":         []any{keys[1], keys[0]}, // relayd sorts them
		"LamportID":           7,
		"AddrPorts":           []string{"127.0.0.1:7777", "[::1]:7777"},
		"VNI":                 42,
		"BindLifetime":        "30s",
		"SteadyStateLifetime": "5m0s",
	}
	if mutate != nil {
		mutate(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func request() magicsock.UDPRelayAllocReq {
	return magicsock.UDPRelayAllocReq{
		RxFromNodeKey:  key.NewNode().Public(),
		RxFromDiscoKey: key.NewDisco().Public(),
		Message: &disco.AllocateUDPRelayEndpointRequest{
			ClientDisco: [2]key.DiscoPublic{key.NewDisco().Public(), key.NewDisco().Public()},
			Generation:  1234,
		},
	}
}

func TestAnswerEchoesGenerationAndCarriesRelaydsEndpoint(t *testing.T) {
	f := newFakeRelayd(t, func(w http.ResponseWriter, req map[string]any) {
		w.Write(endpointJSON(req, nil))
	})
	b := New(NewRelaydClient(f.srv.URL, "tok"), nil, DefaultOptions, quiet)
	req := request()
	resp, err := b.Handle(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ReqRxFromNodeKey != req.RxFromNodeKey || resp.ReqRxFromDiscoKey != req.RxFromDiscoKey {
		t.Error("response not addressed to the requester")
	}
	m := resp.Message
	if m.Generation != 1234 || m.VNI != 42 || m.LamportID != 7 || m.BindLifetime != 30*time.Second ||
		m.SteadyStateLifetime != 5*time.Minute || len(m.AddrPorts) != 2 ||
		m.AddrPorts[1] != netip.MustParseAddrPort("[::1]:7777") {
		t.Errorf("response %+v", m)
	}
	// What relayd was asked: the pair, the requesting node, the bridge token.
	sent := f.last.Load().(map[string]any)
	if sent["Requester"] != req.RxFromNodeKey.String() {
		t.Errorf("Requester %v, want %v", sent["Requester"], req.RxFromNodeKey)
	}
	keys := sent["DiscoKeys"].([]any)
	if keys[0] != req.Message.ClientDisco[0].String() || keys[1] != req.Message.ClientDisco[1].String() {
		t.Errorf("DiscoKeys %v", keys)
	}
	if f.auth.Load() != "Bearer tok" {
		t.Errorf("Authorization %q", f.auth.Load())
	}
	// The response survives disco's own encoding (what magicsock sends).
	wire := m.AppendMarshal(nil)
	back, err := disco.Parse(wire)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.(*disco.AllocateUDPRelayEndpointResponse); got.VNI != 42 || got.Generation != 1234 {
		t.Errorf("re-parsed %+v", got)
	}
}

func TestRelaydRefusalsAreUnansweredWithTheirReason(t *testing.T) {
	cases := []struct {
		status     int
		retryAfter string
		reason     string
	}{
		{403, "", ReasonForbidden},
		{429, "4", ReasonRateLimited},
		{503, "30", ReasonUnavailable},
		{400, "", ReasonRejected},
		{405, "", ReasonRejected},
		{500, "", ReasonServerError},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			f := newFakeRelayd(t, func(w http.ResponseWriter, _ map[string]any) {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				http.Error(w, "no\nmore", c.status)
			})
			var published atomic.Int32
			b := New(NewRelaydClient(f.srv.URL, "tok"), func(magicsock.UDPRelayAllocResp) { published.Add(1) }, DefaultOptions, quiet)
			_, err := b.Handle(context.Background(), request())
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != c.reason || re.Status != c.status || re.Detail != "no" {
				t.Fatalf("err %v, want reason %s", err, c.reason)
			}
			if c.retryAfter != "" && re.RetryAfter == 0 {
				t.Errorf("Retry-After %s not kept", c.retryAfter)
			}
			b.handle(context.Background(), request())
			if published.Load() != 0 || b.Metrics.Refused(c.reason) != 1 || b.Metrics.Answered() != 0 {
				t.Errorf("published %d, refused %d", published.Load(), b.Metrics.Refused(c.reason))
			}
		})
	}
}

func TestRepliesThatDoNotFitAreBadResponses(t *testing.T) {
	cases := map[string]func(m map[string]any){
		"other pair": func(m map[string]any) {
			m["ClientDisco"] = []string{key.NewDisco().Public().String(), key.NewDisco().Public().String()}
		},
		"VNI 0":         func(m map[string]any) { m["VNI"] = 0 },
		"VNI too large": func(m map[string]any) { m["VNI"] = 1 << 24 },
		"no addresses":  func(m map[string]any) { m["AddrPorts"] = []string{} },
		"bad address":   func(m map[string]any) { m["AddrPorts"] = []string{"nowhere"} },
		"no server key": func(m map[string]any) { delete(m, "ServerDisco") },
		"bad lifetime":  func(m map[string]any) { m["BindLifetime"] = "soon" },
		"zero lifetime": func(m map[string]any) { m["SteadyStateLifetime"] = "0s" },
		"huge":          func(m map[string]any) { m["Pad"] = strings.Repeat("x", maxReplyBytes) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFakeRelayd(t, func(w http.ResponseWriter, req map[string]any) {
				w.Write(endpointJSON(req, mutate))
			})
			_, err := NewRelaydClient(f.srv.URL, "tok").Allocate(context.Background(),
				key.NewDisco().Public(), key.NewDisco().Public(), key.NodePublic{})
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != ReasonBadResponse {
				t.Fatalf("err %v, want bad_response", err)
			}
		})
	}
	t.Run("not JSON", func(t *testing.T) {
		f := newFakeRelayd(t, func(w http.ResponseWriter, _ map[string]any) { io.WriteString(w, "<html>") })
		_, err := NewRelaydClient(f.srv.URL, "t").Allocate(context.Background(), key.NewDisco().Public(), key.NewDisco().Public(), key.NodePublic{})
		if re := (*RefusedError)(nil); !errors.As(err, &re) || re.Reason != ReasonBadResponse {
			t.Fatalf("err %v", err)
		}
	})
}

func TestSlowRelaydTimesOutWithinTheDeadline(t *testing.T) {
	release := make(chan struct{})
	f := newFakeRelayd(t, func(w http.ResponseWriter, _ map[string]any) { <-release })
	defer close(release)
	b := New(NewRelaydClient(f.srv.URL, "tok"), nil, Options{Timeout: 200 * time.Millisecond}, quiet)
	start := time.Now()
	_, err := b.Handle(context.Background(), request())
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonTimeout {
		t.Fatalf("err %v, want timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 200ms deadline", d)
	}
}

func TestUnreachableRelayd(t *testing.T) {
	f := newFakeRelayd(t, nil)
	url := f.srv.URL
	f.srv.Close()
	_, err := NewRelaydClient(url, "t").Allocate(context.Background(), key.NewDisco().Public(), key.NewDisco().Public(), key.NodePublic{})
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonUnreachable {
		t.Fatalf("err %v, want unreachable", err)
	}
}

func TestRequestsThatCannotBeAnsweredAreInvalid(t *testing.T) {
	b := New(NewRelaydClient("http://127.0.0.1:9", "t"), nil, DefaultOptions, quiet)
	same := request()
	same.Message.ClientDisco[1] = same.Message.ClientDisco[0]
	noNode := request()
	noNode.RxFromNodeKey = key.NodePublic{}
	for name, req := range map[string]magicsock.UDPRelayAllocReq{
		"no message": {RxFromNodeKey: key.NewNode().Public()}, "equal keys": same, "no node key": noNode,
	} {
		_, err := b.Handle(context.Background(), req)
		var re *RefusedError
		if !errors.As(err, &re) || re.Reason != ReasonInvalid {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// A full queue refuses at once: the event bus goroutine never blocks.
func TestFullQueueRefusesWithoutBlocking(t *testing.T) {
	b := New(NewRelaydClient("http://127.0.0.1:9", "t"), nil, Options{QueueLen: 2, Workers: 1}, quiet)
	done := make(chan struct{})
	go func() {
		for range 5 {
			b.Enqueue(request())
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Enqueue blocked")
	}
	if b.Metrics.Requests() != 5 || b.Metrics.Refused(ReasonOverloaded) != 3 {
		t.Errorf("requests %d, overloaded %d", b.Metrics.Requests(), b.Metrics.Refused(ReasonOverloaded))
	}
}

func TestWorkersAnswerQueuedRequests(t *testing.T) {
	f := newFakeRelayd(t, func(w http.ResponseWriter, req map[string]any) { w.Write(endpointJSON(req, nil)) })
	got := make(chan magicsock.UDPRelayAllocResp, 10)
	b := New(NewRelaydClient(f.srv.URL, "tok"), func(r magicsock.UDPRelayAllocResp) { got <- r }, DefaultOptions, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	for range 10 {
		b.Enqueue(request())
	}
	for i := range 10 {
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of 10 answered", i)
		}
	}
	var sb strings.Builder
	b.Metrics.Write(&sb, nil)
	for _, want := range []string{"relayd_bridge_requests_total 10", "relayd_bridge_answered_total 10",
		`relayd_bridge_refused_total{reason="timeout"} 0`, `relayd_bridge_allocation_duration_seconds_count 10`,
		`relayd_bridge_allocation_duration_seconds_bucket{le="+Inf"} 10`} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, sb.String())
		}
	}
}

func TestReadyOnlyWhenEveryCheckHolds(t *testing.T) {
	var relaydUp atomic.Bool
	h := &Health{Checks: []Check{
		{Name: "tailnet", Fn: func(context.Context) error { return nil }},
		{Name: "relayd", Fn: func(context.Context) error {
			if relaydUp.Load() {
				return nil
			}
			return errors.New("down")
		}},
	}}
	if h.Ready() == nil {
		t.Error("ready before any check ran")
	}
	h.refresh(context.Background())
	if err := h.Ready(); err == nil || !strings.Contains(err.Error(), "relayd: down") {
		t.Errorf("Ready() = %v", err)
	}
	relaydUp.Store(true)
	h.refresh(context.Background())
	if err := h.Ready(); err != nil {
		t.Errorf("Ready() = %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/s"
	writeFile(t, path, "  tok3n \nsecond line\n")
	if s, err := ReadSecret(path); err != nil || s != "tok3n" {
		t.Errorf("ReadSecret = %q, %v", s, err)
	}
	writeFile(t, path, "\n")
	if _, err := ReadSecret(path); err == nil {
		t.Error("empty secret accepted")
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	writeFile(t, dir+"/cred", "c\n")
	if s, err := ReadSecret("credential:cred"); err != nil || s != "c" {
		t.Errorf("credential = %q, %v", s, err)
	}
	for _, bad := range []string{"credential:../s", "credential:", "credential:a/b", dir} {
		if _, err := ReadSecret(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
