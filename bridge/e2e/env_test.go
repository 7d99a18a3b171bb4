// Package e2e drives relayd, relayd-bridge and Tailscale's own client code
// together, all on 127.0.0.1: Tailscale's test control server with
// peer-relay grants, its DERP and STUN servers, tsnet nodes (T1) and real
// tailscaled/tailscale binaries built from the pinned module (T2).
//
// RELAYD_BIN and RELAYCTL_BIN name the binaries (default: the Bazel outputs
// in the checkout). Nothing here reaches past loopback: log uploads,
// port mapping and direct UDP between the clients are off.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/client/local"
	"tailscale.com/envknob"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
	"tailscale.com/tstest/integration"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/logger"
)

var (
	bridgeBin string
	binDir    string
)

// clientEnv is what every Tailscale node here runs with: clients never
// reach each other directly (so a relay is their only UDP path), and
// nothing leaves loopback.
var clientEnv = map[string]string{
	"TS_DEBUG_NEVER_DIRECT_UDP": "1",
	"TS_DISABLE_PORTMAPPER":     "1",
	"TS_NO_LOGS_NO_SUPPORT":     "1",
}

func TestMain(m *testing.M) {
	for k, v := range clientEnv {
		envknob.Setenv(k, v)
	}
	netns.SetEnabled(false)
	dir, err := os.MkdirTemp("", "relayd-bridge-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	bridgeBin = filepath.Join(dir, "relayd-bridge")
	out, err := exec.Command("go", "build", "-o", bridgeBin, "peerrelay/bridge/cmd/relayd-bridge").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building relayd-bridge: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func binary(t testing.TB, env, bazelPath string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", "bazel-bin", bazelPath))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not set and %s not built (bazel build //tools:relayd //tools:relayctl)", env, p)
	}
	return p
}

// tailnet is a control server with peer-relay grants and its DERP/STUN.
type tailnet struct {
	control *testcontrol.Server
	url     string
}

// newTailnet starts Tailscale's test control server. grants: both
// tailscale.com/cap/relay and cap/relay-target for every pair of nodes (as
// a grant naming the bridge's tag does in a real tailnet); relayTargetOnly:
// clients see every node as a relay target, but no node may allocate
// (cap/relay missing): the bridge's magicsock must drop their requests.
func newTailnet(t *testing.T, relayTargetOnly bool) *tailnet {
	logf := logger.Discard
	if os.Getenv("E2E_VERBOSE") != "" {
		logf = t.Logf
	}
	derpMap := integration.RunDERPAndSTUN(t, logf, "127.0.0.1")
	c := &testcontrol.Server{
		DERPMap:         derpMap,
		PeerRelayGrants: !relayTargetOnly,
		AllOnline:       true,
		Logf:            logf,
	}
	if relayTargetOnly {
		c.SetGlobalAppCaps(tailcfg.PeerCapMap{tailcfg.PeerCapabilityRelayTarget: nil})
	}
	c.HTTPTestServer = httptest.NewUnstartedServer(c)
	c.HTTPTestServer.Start()
	t.Cleanup(c.HTTPTestServer.Close)
	return &tailnet{control: c, url: c.HTTPTestServer.URL}
}

// relayd is a running relayd process.
type relayd struct {
	t          *testing.T
	dir        string
	cmd        *exec.Cmd
	port       int    // UDP relay port
	admin      string // host:port
	key        string
	token      string
	tokenFile  string
	bridgeFile string
	done       chan struct{}
	log        *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeSecret(t *testing.T, path string) string {
	b := make([]byte, 16)
	rand.Read(b)
	s := fmt.Sprintf("%x", b)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// newRelayd prepares a relayd with a key file and tokens in its own
// directory; start runs it.
func newRelayd(t *testing.T) *relayd {
	dir := t.TempDir()
	r := &relayd{t: t, dir: dir, tokenFile: filepath.Join(dir, "token"), bridgeFile: filepath.Join(dir, "bridge_token")}
	r.token = writeSecret(t, r.tokenFile)
	writeSecret(t, r.bridgeFile)
	return r
}

var (
	portRe  = regexp.MustCompile(`listening on \S+ port (\d+) `)
	adminRe = regexp.MustCompile(`admin API on (\S+)`)
	keyRe   = regexp.MustCompile(`server_key=(discokey:[0-9a-f]+)`)
)

// start runs relayd on 127.0.0.1 (the ports it had before, if any) and
// waits until it serves.
func (r *relayd) start(extra ...string) {
	t := r.t
	port, admin := "0", "127.0.0.1:0"
	if r.port != 0 {
		port, admin = strconv.Itoa(r.port), r.admin
	}
	args := append([]string{"--listen=127.0.0.1", "--port=" + port, "--workers=1",
		"--admin_listen=" + admin, "--key_file=" + filepath.Join(r.dir, "key"),
		"--admin_token_file=" + r.tokenFile, "--admin_bridge_token_file=" + r.bridgeFile,
		"--log_level=debug"}, extra...)
	r.log = &syncBuffer{}
	r.cmd = exec.Command(binary(t, "RELAYD_BIN", "tools/relayd"), args...)
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		log := r.log.String()
		if m := portRe.FindStringSubmatch(log); m != nil {
			r.port, _ = strconv.Atoi(m[1])
			r.admin = adminRe.FindStringSubmatch(log)[1]
			r.key = keyRe.FindStringSubmatch(log)[1]
			return
		}
		select {
		case <-r.done:
			t.Fatalf("relayd exited at start (%v) with %q:\n%s", r.cmd.ProcessState, r.cmd.Args, r.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayd did not start:\n%s", log)
		}
	}
}

func (r *relayd) stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
}

// get fetches an admin path with the admin token.
func (r *relayd) get(path string) string {
	req, _ := http.NewRequest("GET", "http://"+r.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// allocate allocates an endpoint with the admin token (to fill relayd up).
func (r *relayd) allocate(a, b string) int {
	body := fmt.Sprintf(`{"DiscoKeys":[%q,%q]}`, a, b)
	req, _ := http.NewRequest("POST", "http://"+r.admin+"/v0/relay/endpoint", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+r.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// metric sums every sample of `name` (with labels containing `match`).
func metric(text, name, match string) float64 {
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != ' ' && line[len(name)] != '{') {
			continue
		}
		if match != "" && !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

type session struct {
	VNI     uint32
	Clients []struct {
		Disco             string
		Endpoint          *string
		PacketsFromClient float64
		BytesFromClient   float64
	}
}

func (r *relayd) sessions() []session {
	var v struct{ Sessions []session }
	if err := json.Unmarshal([]byte(r.get("/v0/relay/sessions")), &v); err != nil {
		r.t.Fatal(err)
	}
	return v.Sessions
}

// bridgeProc is a running relayd-bridge.
type bridgeProc struct {
	cmd    *exec.Cmd
	probes string
	log    *syncBuffer
	done   chan struct{}
}

var probesRe = regexp.MustCompile(`msg="probes and metrics" listen=(\S+)`)

func startBridge(t *testing.T, tn *tailnet, r *relayd, extra ...string) *bridgeProc {
	dir := t.TempDir()
	args := append([]string{"--control_url=" + tn.url, "--state_dir=" + dir,
		"--relayd_url=http://" + r.admin, "--relayd_token_file=" + r.bridgeFile,
		"--listen=127.0.0.1:0", "--ephemeral", "--health_interval=500ms"}, extra...)
	b := &bridgeProc{log: &syncBuffer{}, done: make(chan struct{})}
	b.cmd = exec.Command(bridgeBin, args...)
	b.cmd.Env = os.Environ()
	for k, v := range clientEnv {
		b.cmd.Env = append(b.cmd.Env, k+"="+v)
	}
	b.cmd.Stderr = b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		b.cmd.Process.Signal(os.Interrupt)
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("relayd-bridge log:\n%s", b.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for b.probes == "" {
		if m := probesRe.FindStringSubmatch(b.log.String()); m != nil {
			b.probes = m[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayd-bridge did not start:\n%s", b.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

func (b *bridgeProc) get(t *testing.T, path string) (int, string) {
	res, err := http.Get("http://" + b.probes + path)
	if err != nil {
		t.Fatalf("bridge %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// waitReady waits for the bridge's /readyz (tailnet, DERP, relayd).
func (b *bridgeProc) waitReady(t *testing.T, within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		code, body := b.get(t, "/readyz")
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bridge not ready after %v: %s", within, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// node is a tsnet client in this process.
type node struct {
	s   *tsnet.Server
	lc  *local.Client
	ip4 netip.Addr
}

func startNode(t *testing.T, ctx context.Context, tn *tailnet, name string) *node {
	s := &tsnet.Server{
		Dir:        filepath.Join(t.TempDir(), name),
		ControlURL: tn.url,
		Hostname:   name,
		Store:      new(mem.Store),
		Ephemeral:  true,
		Logf:       logger.Discard,
	}
	if os.Getenv("E2E_VERBOSE") != "" {
		s.Logf = logger.WithPrefix(t.Logf, name+": ")
	}
	t.Cleanup(func() { s.Close() })
	st, err := s.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := s.LocalClient()
	if err != nil {
		t.Fatal(err)
	}
	// Until a node is on its home DERP server, disco sent to it is dropped.
	for {
		r := s.Sys().MagicSock.Get().GetLastNetcheckReport(ctx)
		if r != nil && r.PreferredDERP != 0 && !s.Sys().HealthTracker.Get().GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no home DERP")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &node{s: s, lc: lc, ip4: st.TailscaleIPs[0]}
}

func (n *node) disco() string {
	return n.s.Sys().MagicSock.Get().DiscoPublicKey().String()
}

// pingUntil disco-pings peer until ok accepts a result (or within passes).
func pingUntil(t *testing.T, ctx context.Context, from *node, peer netip.Addr, within time.Duration, what string, ok func(*ipnstate.PingResult) bool) *ipnstate.PingResult {
	t.Helper()
	deadline := time.Now().Add(within)
	var last *ipnstate.PingResult
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		pr, err := from.lc.Ping(pctx, peer, tailcfg.PingDisco)
		cancel()
		if err == nil && pr.Err == "" {
			last = pr
			if ok(pr) {
				return pr
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not seen within %v (last ping: %+v)", what, within, last)
	return nil
}

// echo serves a TCP echo on n's tailnet address.
func (n *node) echo(t *testing.T, port int) {
	ln, err := n.s.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
}

// echoRoundTrip sends n random bytes to the echo server and checks every
// byte that comes back.
func echoRoundTrip(t *testing.T, ctx context.Context, from *node, to netip.AddrPort, n int) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := from.s.Dial(dctx, "tcp", to.String())
	if err != nil {
		t.Fatalf("dial %v: %v", to, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, n)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("echo read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("echo write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo: %d bytes came back different", n)
	}
}

// relayAddr is the PeerRelay text a ping through relayd names.
func relayPrefix(r *relayd) string { return fmt.Sprintf("127.0.0.1:%d:vni:", r.port) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
