package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/ipn/ipnstate"
)

var (
	tsBuild     sync.Once
	tsBuildErr  error
	tailscaledB string
	tailscaleB  string
)

// tailscaleBinaries builds tailscaled and tailscale from the pinned module
// (go.mod's tool directives).
func tailscaleBinaries(t *testing.T) (daemon, cli string) {
	tsBuild.Do(func() {
		tailscaledB = filepath.Join(binDir, "tailscaled")
		tailscaleB = filepath.Join(binDir, "tailscale")
		for bin, pkg := range map[string]string{tailscaledB: "tailscale.com/cmd/tailscaled", tailscaleB: "tailscale.com/cmd/tailscale"} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				tsBuildErr = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if tsBuildErr != nil {
		t.Fatal(tsBuildErr)
	}
	return tailscaledB, tailscaleB
}

// tailscaledNode is a real tailscaled (userspace networking, its own state
// directory and socket) and the tailscale CLI that talks to it.
type tailscaledNode struct {
	t     *testing.T
	name  string
	dir   string
	sock  string
	cli   string
	log   *syncBuffer
	pid   int
	socks string // tailscaled's SOCKS5 proxy into the tailnet
}

func startTailscaled(t *testing.T, tn *tailnet, name string, extraEnv ...string) *tailscaledNode {
	daemon, cli := tailscaleBinaries(t)
	dir := t.TempDir()
	n := &tailscaledNode{t: t, name: name, dir: dir, sock: filepath.Join(dir, "tailscaled.sock"), cli: cli, log: &syncBuffer{},
		socks: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cmd := exec.Command(daemon, "--tun=userspace-networking", "--statedir="+dir, "--socket="+n.sock,
		"--port=0", "--no-logs-no-support", "--socks5-server="+n.socks)
	cmd.Env = append(os.Environ(),
		"TS_NETCHECK_GENERATE_204_URL="+tn.url+"/generate_204",
		"TS_ASSUME_NETWORK_UP_FOR_TEST=1",
		"TS_PANIC_IF_HIT_MAIN_CONTROL=1",
		"TS_LOGS_DIR="+dir,
		// Anything that tries to leave loopback over HTTP goes nowhere.
		"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
	)
	for k, v := range clientEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			log := n.log.String()
			if len(log) > 20000 {
				log = log[len(log)-20000:]
			}
			t.Logf("%s tailscaled log (tail):\n%s", name, log)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(n.sock); err == nil {
			if err := n.run("status", "--json"); err == nil || !strings.Contains(err.Error(), "connect") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: tailscaled did not start:\n%s", name, n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := n.output("up", "--login-server="+tn.url, "--hostname="+name, "--reset", "--timeout=60s"); err != nil {
		t.Fatalf("%s: tailscale up: %v\n%s", name, err, out)
	}
	return n
}

func (n *tailscaledNode) output(args ...string) (string, error) {
	cmd := exec.Command(n.cli, append([]string{"--socket=" + n.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *tailscaledNode) run(args ...string) error {
	out, err := n.output(args...)
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func (n *tailscaledNode) status() *ipnstate.Status {
	out, err := exec.Command(n.cli, "--socket="+n.sock, "status", "--json").Output()
	if err != nil {
		n.t.Fatalf("%s: status: %v", n.name, err)
	}
	var st ipnstate.Status
	if err := json.Unmarshal(out, &st); err != nil {
		n.t.Fatalf("%s: status: %v", n.name, err)
	}
	return &st
}

func (n *tailscaledNode) ip4() string { return n.status().TailscaleIPs[0].String() }

// peerIP4 is the IPv4 tailnet address of the peer called host.
func (n *tailscaledNode) peerIP4(host string) string {
	for _, p := range n.status().Peer {
		if p.HostName == host && len(p.TailscaleIPs) > 0 {
			return p.TailscaleIPs[0].String()
		}
	}
	return ""
}

// waitRelayVia runs `tailscale ping` until it reports a path via
// peer-relay(prefix...), and returns that line.
func (n *tailscaledNode) waitRelayVia(to, prefix string, within time.Duration) string {
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		out, _ := n.output("ping", "--until-direct=false", "--c=1", "--timeout=2s", to)
		last = out
		if strings.Contains(out, "via peer-relay("+prefix) {
			return strings.TrimSpace(out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	n.t.Fatalf("%s: tailscale ping %s never went via peer-relay(%s...) in %v; last: %s", n.name, to, prefix, within, last)
	return ""
}

// T2: the literal claim, with real tailscaled and tailscale binaries.
func TestT2TailscaledRelaysThroughRelayd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	_ = ctx
	tailscaleBinaries(t) // build before anything starts the clock
	tn := newTailnet(t, false)
	r := newRelayd(t)
	r.start()
	b := startBridge(t, tn, r)
	b.waitReady(t, 60*time.Second)
	a := startTailscaled(t, tn, "t2-a")
	z := startTailscaled(t, tn, "t2-b")

	// `tailscale debug peer-relay-servers` lists the bridge.
	var bridgeIP string
	deadline := time.Now().Add(30 * time.Second)
	for bridgeIP == "" && time.Now().Before(deadline) {
		bridgeIP = a.peerIP4("relayd-bridge")
		time.Sleep(100 * time.Millisecond)
	}
	if bridgeIP == "" {
		t.Fatal("t2-a does not see the bridge as a peer")
	}
	for _, n := range []*tailscaledNode{a, z} {
		var servers []string
		for time.Now().Before(deadline.Add(30 * time.Second)) {
			out, err := n.output("debug", "peer-relay-servers")
			if err != nil {
				t.Fatalf("%s: debug peer-relay-servers: %v\n%s", n.name, err, out)
			}
			servers = nil
			json.Unmarshal([]byte(out), &servers)
			if contains(servers, bridgeIP) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !contains(servers, bridgeIP) {
			t.Fatalf("%s: peer-relay-servers %v does not list the bridge %s", n.name, servers, bridgeIP)
		}
		t.Logf("%s: tailscale debug peer-relay-servers: %v (bridge %s)", n.name, servers, bridgeIP)
	}

	// `tailscale ping` goes via relayd, both ways.
	line := a.waitRelayVia(z.ip4(), relayPrefix(r), 120*time.Second)
	t.Logf("t2-a: tailscale ping: %s", line)
	line = z.waitRelayVia(a.ip4(), relayPrefix(r), 60*time.Second)
	t.Logf("t2-b: tailscale ping: %s", line)

	// relayd holds their endpoint, both sides bound, traffic from both.
	var bound bool
	for _, s := range r.sessions() {
		n := 0
		for _, c := range s.Clients {
			if c.Endpoint != nil && c.PacketsFromClient > 0 {
				n++
			}
		}
		bound = bound || n == 2
	}
	if !bound {
		t.Errorf("relayd has no endpoint with both tailscaled nodes bound: %+v", r.sessions())
	}
	_, bm := b.get(t, "/metrics")
	if metric(bm, "relayd_bridge_answered_total", "") < 1 {
		t.Errorf("bridge answered nothing")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
