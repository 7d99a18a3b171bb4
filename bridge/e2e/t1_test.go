package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/ipn/ipnstate"
	"tailscale.com/types/key"
	"tailscale.com/util/clientmetric"
)

const echoPort = 7000

func vniOf(t *testing.T, peerRelay string) uint32 {
	i := strings.LastIndex(peerRelay, ":vni:")
	v, err := strconv.ParseUint(peerRelay[i+5:], 10, 32)
	if i < 0 || err != nil {
		t.Fatalf("PeerRelay %q has no VNI", peerRelay)
	}
	return uint32(v)
}

// T1: two tsnet clients that cannot reach each other directly relay through
// relayd, found through the bridge, then lose it, get it back, and are
// refused.
func TestT1TsnetClientsRelayThroughRelayd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	_, r, b, a, z := setupT1(t, ctx, false)
	onRelayd := func(pr *ipnstate.PingResult) bool { return strings.HasPrefix(pr.PeerRelay, relayPrefix(r)) }
	onDERP := func(pr *ipnstate.PingResult) bool {
		return pr.PeerRelay == "" && pr.Endpoint == "" && pr.DERPRegionID != 0
	}

	// The path: a disco ping names relayd's address, port and VNI, both ways.
	pr := pingUntil(t, ctx, a, z.ip4, 90*time.Second, "a->b via relayd", onRelayd)
	vni := vniOf(t, pr.PeerRelay)
	back := pingUntil(t, ctx, z, a.ip4, 30*time.Second, "b->a via relayd", onRelayd)
	if got := vniOf(t, back.PeerRelay); got != vni {
		t.Errorf("b->a uses VNI %d, a->b VNI %d", got, vni)
	}
	t.Logf("path via relayd: %s", pr.PeerRelay)
	echoRoundTrip(t, ctx, a, netip.AddrPortFrom(z.ip4, echoPort), 1<<20)

	// relayd's view: that VNI, the two clients' disco keys, both bound on
	// loopback, traffic from both.
	var lamport1 uint64
	found := false
	for _, s := range r.sessions() {
		if s.VNI != vni {
			continue
		}
		found = true
		keys := map[string]bool{s.Clients[0].Disco: true, s.Clients[1].Disco: true}
		if !keys[a.disco()] || !keys[z.disco()] {
			t.Errorf("VNI %d holds %v, want %s and %s", vni, keys, a.disco(), z.disco())
		}
		for i, c := range s.Clients {
			if c.Endpoint == nil || !strings.HasPrefix(*c.Endpoint, "127.0.0.1:") {
				t.Errorf("client %d of VNI %d not bound on loopback: %v", i, vni, c.Endpoint)
			}
			if c.PacketsFromClient == 0 {
				t.Errorf("client %d of VNI %d sent nothing through relayd", i, vni)
			}
		}
	}
	if !found {
		t.Fatalf("relayd has no session with VNI %d: %+v", vni, r.sessions())
	}
	lamport1 = lamportOf(t, r, vni)
	m := r.get("/metrics")
	if metric(m, "peerrelay_forwarded_packets_total", "") < 100 {
		t.Errorf("relayd forwarded %v packets for a 1 MiB echo", metric(m, "peerrelay_forwarded_packets_total", ""))
	}
	out, err := exec.Command(binary(t, "RELAYCTL_BIN", "tools/relayctl"), "--admin="+r.admin,
		"--token_file="+r.tokenFile, "sessions").CombinedOutput()
	if err != nil {
		t.Fatalf("relayctl sessions: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("VNI %d ", vni)) || strings.Count(string(out), "127.0.0.1:") < 2 {
		t.Errorf("relayctl sessions does not show VNI %d bound on both sides:\n%s", vni, out)
	}
	t.Logf("relayctl sessions:\n%s", out)
	_, bm := b.get(t, "/metrics")
	if metric(bm, "relayd_bridge_answered_total", "") < 1 {
		t.Errorf("bridge answered nothing:\n%s", bm)
	}

	// relayd stopped: the clients fall back to DERP and still talk.
	r.stop()
	pingUntil(t, ctx, a, z.ip4, 90*time.Second, "fallback to DERP with relayd stopped", onDERP)
	echoRoundTrip(t, ctx, a, netip.AddrPortFrom(z.ip4, echoPort), 64<<10)
	waitMetric(t, b, "relayd_bridge_refused_total", `reason="unreachable"`, 90*time.Second)

	// relayd restarted with the same key and port: the relay path comes
	// back, on an endpoint whose Lamport ID is higher than before the
	// restart (clients ignore a lower one from the same server key).
	r.start()
	pr = pingUntil(t, ctx, a, z.ip4, 120*time.Second, "relay path back after restart", onRelayd)
	echoRoundTrip(t, ctx, a, netip.AddrPortFrom(z.ip4, echoPort), 256<<10)
	if l := lamportOf(t, r, vniOf(t, pr.PeerRelay)); l <= lamport1 {
		t.Errorf("Lamport ID after restart %d, before %d: must grow", l, lamport1)
	}

	// relayd refusing (503: its one endpoint taken): the bridge answers
	// nothing and the clients stay on DERP.
	r.stop()
	r.start("--max_endpoints=1")
	if code := r.allocate(key.NewDisco().Public().String(), key.NewDisco().Public().String()); code != 200 {
		t.Fatalf("filler allocation: HTTP %d", code)
	}
	pingUntil(t, ctx, a, z.ip4, 90*time.Second, "fallback to DERP with relayd refusing", onDERP)
	waitMetric(t, b, "relayd_bridge_refused_total", `reason="unavailable"`, 90*time.Second)
	if n := len(r.sessions()); n != 1 {
		t.Errorf("refusing relayd holds %d endpoints, want only the filler", n)
	}
	echoRoundTrip(t, ctx, a, netip.AddrPortFrom(z.ip4, echoPort), 64<<10)
}

// A tailnet whose clients see the bridge as a relay target but may not
// allocate (no tailscale.com/cap/relay): their requests reach the bridge's
// node, which drops them; relayd is never asked and the clients use DERP.
func TestT1NodeWithoutGrantGetsNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, r, b, a, z := setupT1(t, ctx, true)
	sent0 := clientMetric("magicsock_disco_sent_alloc_udp_relay_endpoint_request")
	pingUntil(t, ctx, a, z.ip4, 60*time.Second, "a->b on DERP", func(pr *ipnstate.PingResult) bool { return pr.DERPRegionID != 0 })
	// The clients asked the bridge's node (it counts what it received) ...
	waitMetric(t, b, "magicsock_disco_recv_alloc_udp_relay_endpoint_request", "", 90*time.Second)
	if clientMetric("magicsock_disco_sent_alloc_udp_relay_endpoint_request") <= sent0 {
		t.Errorf("the clients sent no allocation request")
	}
	// ... which handed none of them to the bridge.
	for range 10 {
		pr := pingUntil(t, ctx, a, z.ip4, 30*time.Second, "a->b", func(*ipnstate.PingResult) bool { return true })
		if pr.PeerRelay != "" {
			t.Fatalf("a node without the grant got a relay path: %s", pr.PeerRelay)
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, bm := b.get(t, "/metrics")
	if v := metric(bm, "relayd_bridge_requests_total", ""); v != 0 {
		t.Errorf("bridge handled %v requests from nodes without the grant", v)
	}
	if v := metric(r.get("/metrics"), "peerrelay_allocations_total", ""); v != 0 {
		t.Errorf("relayd allocated %v endpoints", v)
	}
	echoRoundTrip(t, ctx, a, netip.AddrPortFrom(z.ip4, echoPort), 64<<10)
}

// setupT1 starts a tailnet (see newTailnet for relayTargetOnly), relayd,
// the bridge (ready) and two tsnet clients, the second serving the echo.
func setupT1(t *testing.T, ctx context.Context, relayTargetOnly bool) (*tailnet, *relayd, *bridgeProc, *node, *node) {
	tn := newTailnet(t, relayTargetOnly)
	r := newRelayd(t)
	r.start()
	b := startBridge(t, tn, r)
	b.waitReady(t, 60*time.Second)
	a := startNode(t, ctx, tn, "client-a")
	z := startNode(t, ctx, tn, "client-b")
	z.echo(t, echoPort)
	return tn, r, b, a, z
}

func clientMetric(name string) int64 {
	for _, m := range clientmetric.Metrics() {
		if m.Name() == name {
			return m.Value()
		}
	}
	return 0
}

func waitMetric(t *testing.T, b *bridgeProc, name, match string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, m := b.get(t, "/metrics")
		if metric(m, name, match) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge metric %s{%s} still 0 after %v", name, match, within)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func lamportOf(t *testing.T, r *relayd, vni uint32) uint64 {
	t.Helper()
	var v struct {
		Sessions []struct {
			VNI       uint32
			LamportID uint64
		}
	}
	if err := jsonUnmarshal(r.get("/v0/relay/sessions"), &v); err != nil {
		t.Fatal(err)
	}
	for _, s := range v.Sessions {
		if s.VNI == vni {
			return s.LamportID
		}
	}
	t.Fatalf("no session with VNI %d", vni)
	return 0
}
