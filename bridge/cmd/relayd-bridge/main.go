// relayd-bridge makes relayd a peer relay that stock Tailscale clients find
// and use.
//
// It joins a tailnet (Tailscale's control plane or Headscale) as a tagged
// tsnet node. Clients whose packet filter grants them
// tailscale.com/cap/relay-target on that node send it their peer-relay
// allocation requests over DERP; the bridge asks relayd for each endpoint
// (POST /v0/relay/endpoint with its own token, naming the requesting node)
// and answers with relayd's endpoint. The clients then bind to relayd and
// relay their WireGuard traffic through it.
//
//	relayd-bridge --auth_key_file=/etc/relayd-bridge/authkey \
//	    --relayd_token_file=/etc/relayd-bridge/relayd_token \
//	    --advertise_tags=tag:relay
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"peerrelay/bridge/internal/bridge"
	"tailscale.com/ipn"
	"tailscale.com/logtail"
	"tailscale.com/tsnet"
	"tailscale.com/util/clientmetric"
	"tailscale.com/util/eventbus"
	"tailscale.com/wgengine/magicsock"
)

var (
	controlURL    = flag.String("control_url", "", "coordination server: empty for Tailscale's, or a Headscale URL such as https://headscale.example.com")
	hostname      = flag.String("hostname", "relayd-bridge", "the bridge's node name in the tailnet")
	stateDir      = flag.String("state_dir", "/var/lib/relayd-bridge", "where the node keeps its identity and state (created 0700)")
	authKeyFile   = flag.String("auth_key_file", "", "file holding an auth key for the first login (tagged: see --advertise_tags), or 'credential:NAME' (systemd LoadCredential=); not needed once the state directory holds a logged-in node (an empty file: none)")
	tags          = flag.String("advertise_tags", "tag:relay", "comma-separated tags the node asks for; grants name them")
	relaydURL     = flag.String("relayd_url", "http://127.0.0.1:9780", "relayd's admin API")
	relaydToken   = flag.String("relayd_token_file", "", "file holding the token relayd reads from --admin_bridge_token_file, or 'credential:NAME' (required)")
	listen        = flag.String("listen", "127.0.0.1:9781", "probes and metrics listener (/livez, /readyz, /metrics), 'off' to disable")
	logLevel      = flag.String("log_level", "info", "error, warning, info or debug (debug also prints Tailscale's own logs)")
	timeout       = flag.Duration("timeout", bridge.DefaultOptions.Timeout, "deadline for one relayd allocation; clients re-send after 3s")
	ephemeral     = flag.Bool("ephemeral", false, "register as an ephemeral node (removed from the tailnet when it goes offline)")
	logUpload     = flag.Bool("tailscale_log_upload", false, "upload Tailscale's client logs to Tailscale (what tailscaled does by default; off here)")
	healthEvery   = flag.Duration("health_interval", 2*time.Second, "how often the readiness checks run")
	version       = "dev"
	exitBadConfig = 2
)

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "relayd-bridge: "+format+"\n", a...)
	os.Exit(exitBadConfig)
}

func parseLevel(s string) (slog.Level, bool) {
	switch s {
	case "error":
		return slog.LevelError, true
	case "warning", "warn":
		return slog.LevelWarn, true
	case "info":
		return slog.LevelInfo, true
	case "debug":
		return slog.LevelDebug, true
	}
	return 0, false
}

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: relayd-bridge [flags]\n\nJoins a tailnet as a peer relay node and answers its clients' allocation requests with endpoints on relayd.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fail("unexpected argument %q (flags start with --)", flag.Arg(0))
	}
	level, ok := parseLevel(*logLevel)
	if !ok {
		fail("--log_level=%q: use error, warning, info or debug", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *relaydToken == "" {
		fail("--relayd_token_file is required (the token relayd reads from --admin_bridge_token_file)")
	}
	token, err := bridge.ReadSecret(*relaydToken)
	if err != nil {
		fail("--relayd_token_file: %v", err)
	}
	u, err := url.Parse(*relaydURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		fail("--relayd_url=%q: want http://HOST:PORT", *relaydURL)
	}
	var authKey string
	if *authKeyFile != "" {
		if authKey, err = bridge.ReadSecret(*authKeyFile); err != nil && !errors.Is(err, bridge.ErrEmptySecret) {
			fail("--auth_key_file: %v", err)
		}
	}
	if *timeout <= 0 || *timeout > 9*time.Second {
		fail("--timeout=%v: must be above 0 and below the client's 10s give-up (3s or less to be used)", *timeout)
	}
	var tagList []string
	for _, t := range strings.Split(*tags, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if !strings.HasPrefix(t, "tag:") {
			fail("--advertise_tags: %q is not a tag (tag:NAME)", t)
		}
		tagList = append(tagList, t)
	}
	var ln net.Listener
	if *listen != "off" {
		if ln, err = net.Listen("tcp", *listen); err != nil {
			fail("--listen=%s: %v", *listen, err)
		}
	}
	if err := os.MkdirAll(*stateDir, 0o700); err != nil {
		fail("--state_dir: %v", err)
	}
	if !*logUpload {
		logtail.Disable()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, level, token, authKey, tagList, ln); err != nil {
		log.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, level slog.Level, token, authKey string, tagList []string, ln net.Listener) error {
	ts := &tsnet.Server{
		Dir:           *stateDir,
		Hostname:      *hostname,
		ControlURL:    *controlURL,
		AuthKey:       authKey,
		AdvertiseTags: tagList,
		Ephemeral:     *ephemeral,
		UserLogf: func(format string, a ...any) {
			log.Info("tailscale: " + strings.TrimSpace(fmt.Sprintf(format, a...)))
		},
	}
	if level <= slog.LevelDebug {
		ts.Logf = func(format string, a ...any) {
			log.Debug("tailscale: " + strings.TrimSpace(fmt.Sprintf(format, a...)))
		}
	} else {
		ts.Logf = func(string, ...any) {}
	}
	defer ts.Close()
	if err := ts.Start(); err != nil {
		return fmt.Errorf("starting the tailnet node: %w", err)
	}

	rc := bridge.NewRelaydClient(strings.TrimRight(*relaydURL, "/"), token)
	ec := ts.Sys().Bus.Get().Client("relayd-bridge")
	defer ec.Close()
	pub := eventbus.Publish[magicsock.UDPRelayAllocResp](ec)
	sub := eventbus.Subscribe[magicsock.UDPRelayAllocReq](ec)
	br := bridge.New(rc, pub.Publish, bridge.Options{Timeout: *timeout}, log)
	go func() {
		for {
			select {
			case req := <-sub.Events():
				br.Enqueue(req)
			case <-sub.Done():
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	go br.Run(ctx)

	lc, err := ts.LocalClient()
	if err != nil {
		return err
	}
	health := &bridge.Health{Interval: *healthEvery, Checks: []bridge.Check{
		{Name: "tailnet", Fn: func(ctx context.Context) error {
			st, err := lc.StatusWithoutPeers(ctx)
			if err != nil {
				return err
			}
			if st.BackendState != ipn.Running.String() {
				return fmt.Errorf("node is %s", st.BackendState)
			}
			return nil
		}},
		{Name: "derp", Fn: func(ctx context.Context) error {
			r := ts.Sys().MagicSock.Get().GetLastNetcheckReport(ctx)
			if r == nil || r.PreferredDERP == 0 {
				return errors.New("no home DERP region yet")
			}
			if ts.Sys().HealthTracker.Get().GetDERPRegionReceivedTime(r.PreferredDERP).IsZero() {
				return fmt.Errorf("home DERP region %d not connected", r.PreferredDERP)
			}
			return nil
		}},
		{Name: "relayd", Fn: rc.Ready},
	}}
	go health.Run(ctx)
	if ln != nil {
		go func() {
			info := func(w io.Writer) {
				fmt.Fprintf(w, "# HELP relayd_bridge_build_info The bridge's version.\n# TYPE relayd_bridge_build_info gauge\nrelayd_bridge_build_info{version=%q} 1\n", version)
				// The tailnet node's own counters (magicsock, DERP, disco),
				// under Tailscale's names.
				clientmetric.WritePrometheusExpositionFormat(w)
			}
			if err := bridge.Serve(ctx, ln, health, br.Metrics, info); err != nil {
				log.Error("probes listener", "err", err)
			}
		}()
		log.Info("probes and metrics", "listen", ln.Addr().String())
	}

	upCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	st, err := ts.Up(upCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("joining the tailnet: %w", err)
	}
	var ips []string
	for _, ip := range st.TailscaleIPs {
		ips = append(ips, ip.String())
	}
	log.Info("in the tailnet; answering peer-relay allocations with relayd's endpoints",
		"node", st.Self.DNSName, "ips", strings.Join(ips, ","), "relayd", *relaydURL)
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
