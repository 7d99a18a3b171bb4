package bridge

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the bridge's counters, exposed in Prometheus' text format
// under the relayd_bridge_ prefix.
type Metrics struct {
	requests atomic.Int64
	answered atomic.Int64
	inflight atomic.Int64

	mu      sync.Mutex
	refused map[string]int64
	buckets []int64 // counts per latencyBounds entry, plus +Inf
	sum     float64
	count   int64
}

// latencyBounds (seconds) of relayd_bridge_allocation_duration_seconds: a
// local relayd answers in well under a millisecond; anything near the
// 2 s deadline is trouble.
var latencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2}

func NewMetrics() *Metrics {
	m := &Metrics{refused: map[string]int64{}, buckets: make([]int64, len(latencyBounds)+1)}
	for _, r := range Reasons {
		m.refused[r] = 0
	}
	return m
}

func (m *Metrics) refuse(reason string) {
	m.mu.Lock()
	m.refused[reason]++
	m.mu.Unlock()
}

func (m *Metrics) observe(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sum += s
	m.count++
	i := sort.SearchFloat64s(latencyBounds, s)
	m.buckets[i]++
}

// Requests, Answered and Refused read the counters (tests, health).
func (m *Metrics) Requests() int64 { return m.requests.Load() }
func (m *Metrics) Answered() int64 { return m.answered.Load() }
func (m *Metrics) Refused(reason string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused[reason]
}

// Gauge is an extra sample written with the counters.
type Gauge struct {
	Name, Help string
	Labels     string // `check="tailnet"`, or empty
	Value      float64
}

// Write renders every metric, then the gauges (grouped by name).
func (m *Metrics) Write(w io.Writer, gauges []Gauge) {
	fmt.Fprintf(w, "# HELP relayd_bridge_requests_total Allocation requests received from tailnet nodes.\n# TYPE relayd_bridge_requests_total counter\nrelayd_bridge_requests_total %d\n", m.requests.Load())
	fmt.Fprintf(w, "# HELP relayd_bridge_answered_total Allocation requests answered with a relayd endpoint.\n# TYPE relayd_bridge_answered_total counter\nrelayd_bridge_answered_total %d\n", m.answered.Load())
	fmt.Fprintf(w, "# HELP relayd_bridge_inflight Allocation requests being handled now.\n# TYPE relayd_bridge_inflight gauge\nrelayd_bridge_inflight %d\n", m.inflight.Load())
	m.mu.Lock()
	fmt.Fprintf(w, "# HELP relayd_bridge_refused_total Allocation requests left unanswered, by reason.\n# TYPE relayd_bridge_refused_total counter\n")
	reasons := make([]string, 0, len(m.refused))
	for r := range m.refused {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(w, "relayd_bridge_refused_total{reason=%q} %d\n", r, m.refused[r])
	}
	fmt.Fprintf(w, "# HELP relayd_bridge_allocation_duration_seconds Time relayd took to answer an allocation that was answered.\n# TYPE relayd_bridge_allocation_duration_seconds histogram\n")
	var cum int64
	for i, b := range latencyBounds {
		cum += m.buckets[i]
		fmt.Fprintf(w, "relayd_bridge_allocation_duration_seconds_bucket{le=\"%g\"} %d\n", b, cum)
	}
	cum += m.buckets[len(latencyBounds)]
	fmt.Fprintf(w, "relayd_bridge_allocation_duration_seconds_bucket{le=\"+Inf\"} %d\n", cum)
	fmt.Fprintf(w, "relayd_bridge_allocation_duration_seconds_sum %g\nrelayd_bridge_allocation_duration_seconds_count %d\n", m.sum, m.count)
	m.mu.Unlock()
	last := ""
	for _, g := range gauges {
		if g.Name != last {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", g.Name, g.Help, g.Name)
			last = g.Name
		}
		if g.Labels != "" {
			fmt.Fprintf(w, "%s{%s} %g\n", g.Name, g.Labels, g.Value)
		} else {
			fmt.Fprintf(w, "%s %g\n", g.Name, g.Value)
		}
	}
}
