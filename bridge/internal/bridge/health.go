package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"
)

// Check is one readiness condition: nil when it holds.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Health runs the checks in the background (every Interval) and serves
// their last results, so that probes cost nothing however often they come
// and never fan out to relayd.
type Health struct {
	Checks   []Check
	Interval time.Duration

	mu      sync.Mutex
	results map[string]error
}

// Run refreshes the results until ctx ends.
func (h *Health) Run(ctx context.Context) {
	if h.Interval <= 0 {
		h.Interval = 2 * time.Second
	}
	t := time.NewTicker(h.Interval)
	defer t.Stop()
	for {
		h.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *Health) refresh(ctx context.Context) {
	res := map[string]error{}
	for _, c := range h.Checks {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		res[c.Name] = c.Fn(cctx)
		cancel()
	}
	h.mu.Lock()
	h.results = res
	h.mu.Unlock()
}

// Ready is nil when every check held at its last run.
func (h *Health) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.results == nil {
		return fmt.Errorf("starting")
	}
	var bad []string
	for _, c := range h.Checks {
		if err := h.results[c.Name]; err != nil {
			bad = append(bad, c.Name+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// Gauges: relayd_bridge_ready{check} 1 or 0.
func (h *Health) Gauges() []Gauge {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Gauge
	for _, c := range h.Checks {
		v := 0.0
		if err, ok := h.results[c.Name]; ok && err == nil {
			v = 1
		}
		out = append(out, Gauge{Name: "relayd_bridge_ready", Help: "1 when the readiness check holds.",
			Labels: fmt.Sprintf("check=%q", c.Name), Value: v})
	}
	return out
}

// MaxConns bounds the probe and metrics listener: it serves monitoring,
// not the public.
const MaxConns = 64

// Serve serves /livez, /readyz (also /healthz) and /metrics on ln until ctx
// ends, with deadlines and a connection cap.
//
// extra, when set, writes more samples after the bridge's own (relayd-bridge:
// its build info and the tailnet node's client metrics).
func Serve(ctx context.Context, ln net.Listener, h *Health, m *Metrics, extra func(io.Writer)) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	ready := func(w http.ResponseWriter, r *http.Request) {
		if err := h.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", ready)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.Write(w, h.Gauges())
		if extra != nil {
			extra(w)
		}
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	err := srv.Serve(netutil.LimitListener(ln, MaxConns))
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}
