package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// The end-to-end bulk figure (bench/tailnet_bulk.sh runs it; skipped
// otherwise): two real tailscaled nodes (userspace networking, SOCKS5 in,
// localhost out) move TCP bulk data through a peer relay found by the
// bridge, and the relay's CPU time is read from /proc. The relay is relayd
// or Tailscale's own relay server (tailscale.com/net/udprelay, the code
// tailscaled runs with --relay-server-port, via bridge/cmd/tsrelay with
// loopback as its only address). The relay runs on CPU 0; the clients, the
// bridge and this process on CPU 1.
func TestBulkThroughRelays(t *testing.T) {
	if os.Getenv("BULK_BENCH") == "" {
		t.Skip("a benchmark: bash bench/tailnet_bulk.sh")
	}
	rounds, _ := strconv.Atoi(os.Getenv("BULK_ROUNDS"))
	if rounds <= 0 {
		rounds = 3
	}
	seconds, _ := strconv.Atoi(os.Getenv("BULK_SECONDS"))
	if seconds <= 0 {
		seconds = 8
	}
	pin(t, os.Getpid(), "1")
	tsrelayBin := filepath.Join(binDir, "tsrelay")
	if out, err := exec.Command("go", "build", "-o", tsrelayBin, "peerrelay/bridge/cmd/tsrelay").CombinedOutput(); err != nil {
		t.Fatalf("building tsrelay: %v\n%s", err, out)
	}
	results := map[string][]bulkResult{}
	for round := 1; round <= rounds; round++ {
		order := []string{"relayd", "tailscale"}
		if round%2 == 0 {
			order = []string{"tailscale", "relayd"}
		}
		for _, relay := range order {
			res := bulkRun(t, relay, tsrelayBin, time.Duration(seconds)*time.Second)
			t.Logf("round %d %-9s %7.1f Mbit/s  relay CPU %5.1f%%  %6.2f ms CPU per 100 MB",
				round, relay, res.mbps, res.cpuShare*100, res.cpuMsPer100MB)
			results[relay] = append(results[relay], res)
		}
	}
	med := func(rs []bulkResult, f func(bulkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	for _, relay := range []string{"relayd", "tailscale"} {
		rs := results[relay]
		fmt.Printf("bulk %-9s throughput %.1f Mbit/s, relay CPU %.2f ms per 100 MB (median of %d)\n", relay,
			med(rs, func(r bulkResult) float64 { return r.mbps }),
			med(rs, func(r bulkResult) float64 { return r.cpuMsPer100MB }), len(rs))
	}
	fmt.Printf("bulk ratio tailscale/relayd relay CPU per byte: %.2fx\n",
		med(results["tailscale"], func(r bulkResult) float64 { return r.cpuMsPer100MB })/
			med(results["relayd"], func(r bulkResult) float64 { return r.cpuMsPer100MB }))
}

type bulkResult struct {
	mbps, cpuShare, cpuMsPer100MB float64
}

func pin(t *testing.T, pid int, cpus string) {
	if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("taskset: %v %s", err, out)
	}
}

// cpuSeconds is a process's user+system CPU time.
func cpuSeconds(t *testing.T, pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100 // USER_HZ
}

var tsrelayPortRe = regexp.MustCompile(`listening on \S+ port (\d+) `)

func bulkRun(t *testing.T, relay, tsrelayBin string, d time.Duration) bulkResult {
	var res bulkResult
	t.Run(relay, func(t *testing.T) {
		tn := newTailnet(t, false)
		r := newRelayd(t)
		var relayPid int
		if relay == "relayd" {
			r.start()
			relayPid = r.cmd.Process.Pid
		} else {
			log := &syncBuffer{}
			cmd := exec.Command(tsrelayBin, "--admin_listen=127.0.0.1:0", "--admin_token_file="+r.bridgeFile)
			cmd.Stderr = log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			deadline := time.Now().Add(10 * time.Second)
			for !tsrelayPortRe.MatchString(log.String()) {
				if time.Now().After(deadline) {
					t.Fatalf("tsrelay did not start: %s", log.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.port, _ = strconv.Atoi(tsrelayPortRe.FindStringSubmatch(log.String())[1])
			r.admin = adminRe.FindStringSubmatch(log.String())[1]
			relayPid = cmd.Process.Pid
		}
		pin(t, relayPid, "0")
		b := startBridge(t, tn, r)
		pin(t, b.cmd.Process.Pid, "1")
		b.waitReady(t, 60*time.Second)
		a := startTailscaled(t, tn, "bulk-a")
		z := startTailscaled(t, tn, "bulk-b")
		for _, n := range []*tailscaledNode{a, z} {
			pin(t, n.pid, "1")
		}
		a.waitRelayVia(z.ip4(), relayPrefix(r), 120*time.Second)

		// The sink: z forwards inbound tailnet TCP to this host's loopback.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan int64, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- 0
				return
			}
			n, _ := io.Copy(io.Discard, c)
			got <- n
		}()
		dialer, err := proxy.SOCKS5("tcp", a.socks, nil, proxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		c, err := dialer.(proxy.ContextDialer).DialContext(context.Background(), "tcp", net.JoinHostPort(z.ip4(), strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("dial through a's SOCKS5: %v", err)
		}
		buf := make([]byte, 256<<10)
		cpu0 := cpuSeconds(t, relayPid)
		start := time.Now()
		for time.Since(start) < d {
			if _, err := c.Write(buf); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		c.Close()
		n := <-got
		el := time.Since(start)
		cpu := cpuSeconds(t, relayPid) - cpu0
		if n == 0 {
			t.Fatal("nothing arrived")
		}
		res = bulkResult{
			mbps:          float64(n) * 8 / el.Seconds() / 1e6,
			cpuShare:      cpu / el.Seconds(),
			cpuMsPer100MB: cpu * 1000 / (float64(n) / 100e6),
		}
		// The bytes went through the relay under test.
		if relay == "relayd" && metric(r.get("/metrics"), "peerrelay_forwarded_bytes_total", "") < float64(n) {
			t.Errorf("relayd forwarded fewer bytes than arrived (%d)", n)
		}
	})
	return res
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
