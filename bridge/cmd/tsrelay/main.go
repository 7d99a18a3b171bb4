// tsrelay serves Tailscale's own peer relay server (tailscale.com/net/
// udprelay, what tailscaled runs with --relay-server-port) behind relayd's
// HTTP allocation shape, so bench/compare.sh drives it with loadgen exactly
// like relayd. A bench contender only: no caps, no rate limits.
//
//	tsrelay --port=0 --admin_listen=127.0.0.1:0 --admin_token_file=T
//
// Serves POST /v0/relay/endpoint (bearer token; the endpoint JSON relayd
// answers with; relayd-bridge's Requester field is ignored), GET
// /v0/relay/sessions (the server key and session count, which loadgen
// reads) and GET /readyz, so relayd-bridge can front it too. Logs "listening on 127.0.0.1 port P" and
// "admin API on ADDR" as relayd does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"peerrelay/bridge/internal/bridge"
	"tailscale.com/net/udprelay"
	"tailscale.com/types/key"
	"tailscale.com/types/views"
	"tailscale.com/util/usermetric"
)

var (
	port       = flag.Int("port", 0, "UDP port (0: a free one)")
	advertise  = flag.String("advertise", "127.0.0.1", "address handed to clients")
	adminAddr  = flag.String("admin_listen", "127.0.0.1:0", "allocation API listener")
	tokenFile  = flag.String("admin_token_file", "", "bearer token file (required)")
	verboseLog = flag.Bool("verbose", false, "print the relay server's own logs")
)

func freeUDPPort() int {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func main() {
	flag.Parse()
	log.SetPrefix("tsrelay: ")
	log.SetFlags(0)
	token, err := bridge.ReadSecret(*tokenFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tsrelay: --admin_token_file: %v\n", err)
		os.Exit(2)
	}
	adv, err := netip.ParseAddr(*advertise)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tsrelay: --advertise: %v\n", err)
		os.Exit(2)
	}
	if *port == 0 {
		*port = freeUDPPort()
	}
	logf := func(string, ...any) {}
	if *verboseLog {
		logf = log.Printf
	}
	// Static addresses only: no address discovery (it would probe STUN).
	srv, err := udprelay.NewServer(logf, uint16(*port), true, new(usermetric.Registry), nil)
	if err != nil {
		log.Fatalf("udprelay.NewServer: %v", err)
	}
	defer srv.Close()
	srv.SetStaticAddrPorts(views.SliceOf([]netip.AddrPort{netip.AddrPortFrom(adv, uint16(*port))}))

	var (
		mu          sync.Mutex
		serverDisco key.DiscoPublic // the same for every endpoint
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/v0/relay/endpoint", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Method != "POST" {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		var req struct{ DiscoKeys []key.DiscoPublic }
		if err := json.NewDecoder(io.LimitReader(r.Body, 512)).Decode(&req); err != nil || len(req.DiscoKeys) != 2 {
			http.Error(w, "body must be {\"DiscoKeys\":[key, key]}", http.StatusBadRequest)
			return
		}
		ep, err := srv.AllocateEndpoint(req.DiscoKeys[0], req.DiscoKeys[1])
		if err != nil {
			if nr, ok := err.(udprelay.ErrServerNotReady); ok {
				w.Header().Set("Retry-After", fmt.Sprint(int(nr.RetryAfter.Seconds())))
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		serverDisco = ep.ServerDisco
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{
			"ServerDisco": ep.ServerDisco, "ClientDisco": ep.ClientDisco, "LamportID": ep.LamportID,
			"AddrPorts": ep.AddrPorts, "VNI": ep.VNI,
			"BindLifetime": ep.BindLifetime.String(), "SteadyStateLifetime": ep.SteadyStateLifetime.String(),
		})
	})
	mux.HandleFunc("/v0/relay/sessions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		// The server key is only visible through an allocation: make one
		// for two throwaway keys if none was made yet.
		mu.Lock()
		if serverDisco.IsZero() {
			if ep, err := srv.AllocateEndpoint(key.NewDisco().Public(), key.NewDisco().Public()); err == nil {
				serverDisco = ep.ServerDisco
			}
		}
		sd := serverDisco
		mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"ServerDisco": sd, "ServerPort": *port,
			"Count": len(srv.GetSessions()), "Sessions": []any{}})
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ready") })
	ln, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		log.Fatalf("--admin_listen: %v", err)
	}
	log.Printf("admin API on %s", ln.Addr())
	log.Printf("listening on %s port %d engine=tailscale-udprelay", adv, *port)
	go http.Serve(ln, mux)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
