// Package bridge answers a tailnet's peer-relay allocation requests with
// endpoints on relayd.
//
// A stock Tailscale client (1.86 or later) allocates a peer-relay endpoint
// by sending a disco AllocateUDPRelayEndpointRequest over DERP to a tailnet
// node whose packet filter grants it tailscale.com/cap/relay-target. The
// bridge is such a node (a tsnet node). Its magicsock checks each request
// (known peer, sealed with that peer's disco key, sender one of the pair,
// tailscale.com/cap/relay granted) and publishes it on the node's event bus
// as a magicsock.UDPRelayAllocReq. The bridge asks relayd's allocation API
// (POST /v0/relay/endpoint, with the bridge token and the requesting node's
// key) and publishes a magicsock.UDPRelayAllocResp, which magicsock seals
// and sends back over DERP. The client then binds to relayd directly, as it
// would to Tailscale's own relay: clients do not tie the endpoint's server
// disco key to the node that answered.
//
// When relayd refuses or does not answer, the bridge answers nothing, as
// Tailscale's relay does; the client falls back to its other paths.
package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"tailscale.com/disco"
	"tailscale.com/types/key"
)

// Refusal reasons (the "reason" label of relayd_bridge_refused_total).
const (
	ReasonForbidden   = "forbidden"    // relayd said 403: the bridge token is wrong
	ReasonRateLimited = "rate_limited" // 429: this node asks too often
	ReasonUnavailable = "unavailable"  // 503: draining, over a cap, not ready
	ReasonRejected    = "rejected"     // another 4xx: relayd refused the keys
	ReasonServerError = "server_error" // another 5xx
	ReasonTimeout     = "timeout"      // no answer within the deadline
	ReasonUnreachable = "unreachable"  // connection refused, reset, DNS
	ReasonBadResponse = "bad_response" // 200 with a body that does not fit the request
	ReasonOverloaded  = "overloaded"   // the bridge's queue was full
	ReasonInvalid     = "invalid"      // the request itself cannot be answered
)

// Reasons lists every refusal reason, for metrics that show zeros.
var Reasons = []string{ReasonForbidden, ReasonRateLimited, ReasonUnavailable,
	ReasonRejected, ReasonServerError, ReasonTimeout, ReasonUnreachable,
	ReasonBadResponse, ReasonOverloaded, ReasonInvalid}

// RefusedError is an allocation that produced no endpoint, with the reason.
type RefusedError struct {
	Reason     string
	Status     int           // HTTP status, 0 when there was none
	RetryAfter time.Duration // relayd's Retry-After, 0 when absent
	Detail     string
}

func (e *RefusedError) Error() string {
	s := e.Reason
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(", retry after %v", e.RetryAfter)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Allocator hands out endpoints for a pair of client disco keys on behalf
// of the node that asked.
type Allocator interface {
	Allocate(ctx context.Context, a, b key.DiscoPublic, requester key.NodePublic) (disco.UDPRelayEndpoint, error)
}

// maxReplyBytes bounds what is read of a relayd reply: an endpoint is a few
// hundred bytes; anything larger is not relayd.
const maxReplyBytes = 64 << 10

// RelaydClient is relayd's allocation API over HTTP.
type RelaydClient struct {
	BaseURL string // e.g. http://127.0.0.1:9780
	Token   string // relayd's --admin_bridge_token_file
	HTTP    *http.Client
}

// NewRelaydClient returns a client with bounded connections and deadlines.
func NewRelaydClient(baseURL, token string) *RelaydClient {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		MaxConnsPerHost:       64,
		IdleConnTimeout:       20 * time.Second,
		ResponseHeaderTimeout: 5 * time.Second,
		Proxy:                 nil, // relayd is local; never via a proxy
	}
	return &RelaydClient{BaseURL: baseURL, Token: token, HTTP: &http.Client{Transport: tr}}
}

type allocateRequest struct {
	DiscoKeys [2]key.DiscoPublic
	Requester string `json:",omitempty"`
}

type allocateReply struct {
	ServerDisco         key.DiscoPublic
	ClientDisco         [2]key.DiscoPublic
	LamportID           uint64
	AddrPorts           []netip.AddrPort
	VNI                 uint32
	BindLifetime        string
	SteadyStateLifetime string
}

// Allocate asks relayd for an endpoint for (a, b), naming requester.
func (c *RelaydClient) Allocate(ctx context.Context, a, b key.DiscoPublic, requester key.NodePublic) (disco.UDPRelayEndpoint, error) {
	var none disco.UDPRelayEndpoint
	req := allocateRequest{DiscoKeys: [2]key.DiscoPublic{a, b}}
	if !requester.IsZero() {
		req.Requester = requester.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return none, &RefusedError{Reason: ReasonInvalid, Detail: err.Error()}
	}
	hr, err := http.NewRequestWithContext(ctx, "POST", c.BaseURL+"/v0/relay/endpoint", bytes.NewReader(body))
	if err != nil {
		return none, &RefusedError{Reason: ReasonUnreachable, Detail: err.Error()}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+c.Token)
	res, err := c.HTTP.Do(hr)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return none, &RefusedError{Reason: ReasonTimeout, Detail: err.Error()}
		}
		return none, &RefusedError{Reason: ReasonUnreachable, Detail: err.Error()}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxReplyBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return none, &RefusedError{Reason: ReasonTimeout, Status: res.StatusCode, Detail: err.Error()}
		}
		return none, &RefusedError{Reason: ReasonUnreachable, Status: res.StatusCode, Detail: err.Error()}
	}
	if res.StatusCode != http.StatusOK {
		e := &RefusedError{Status: res.StatusCode, Detail: firstLine(data)}
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		switch {
		case res.StatusCode == http.StatusForbidden:
			e.Reason = ReasonForbidden
		case res.StatusCode == http.StatusTooManyRequests:
			e.Reason = ReasonRateLimited
		case res.StatusCode == http.StatusServiceUnavailable:
			e.Reason = ReasonUnavailable
		case res.StatusCode >= 500:
			e.Reason = ReasonServerError
		default:
			e.Reason = ReasonRejected
		}
		return none, e
	}
	if len(data) > maxReplyBytes {
		return none, &RefusedError{Reason: ReasonBadResponse, Status: 200, Detail: "reply too large"}
	}
	ep, err := parseReply(data, a, b)
	if err != nil {
		return none, &RefusedError{Reason: ReasonBadResponse, Status: 200, Detail: err.Error()}
	}
	return ep, nil
}

// parseReply checks that relayd's endpoint is one a client can use for the
// pair it asked for.
func parseReply(data []byte, a, b key.DiscoPublic) (disco.UDPRelayEndpoint, error) {
	var r allocateReply
	var ep disco.UDPRelayEndpoint
	if err := json.Unmarshal(data, &r); err != nil {
		return ep, fmt.Errorf("not an endpoint: %v", err)
	}
	if r.ServerDisco.IsZero() {
		return ep, errors.New("no ServerDisco")
	}
	if !key.NewSortedPairOfDiscoPublic(r.ClientDisco[0], r.ClientDisco[1]).Equal(key.NewSortedPairOfDiscoPublic(a, b)) {
		return ep, errors.New("ClientDisco is not the pair that was asked for")
	}
	if r.VNI == 0 || r.VNI > 1<<24-1 {
		return ep, fmt.Errorf("VNI %d out of range", r.VNI)
	}
	if len(r.AddrPorts) == 0 {
		return ep, errors.New("no AddrPorts")
	}
	// A disco message has room for few addresses; relayd sends at most 8.
	if len(r.AddrPorts) > 16 {
		return ep, fmt.Errorf("%d AddrPorts", len(r.AddrPorts))
	}
	bind, err := time.ParseDuration(r.BindLifetime)
	if err != nil || bind <= 0 {
		return ep, fmt.Errorf("BindLifetime %q", r.BindLifetime)
	}
	steady, err := time.ParseDuration(r.SteadyStateLifetime)
	if err != nil || steady <= 0 {
		return ep, fmt.Errorf("SteadyStateLifetime %q", r.SteadyStateLifetime)
	}
	return disco.UDPRelayEndpoint{
		ServerDisco:         r.ServerDisco,
		ClientDisco:         r.ClientDisco,
		LamportID:           r.LamportID,
		VNI:                 r.VNI,
		BindLifetime:        bind,
		SteadyStateLifetime: steady,
		AddrPorts:           r.AddrPorts,
	}, nil
}

// Ready asks relayd's /readyz (no token needed).
func (c *RelaydClient) Ready(ctx context.Context) error {
	hr, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := c.HTTP.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("relayd /readyz: HTTP %d %s", res.StatusCode, firstLine(data))
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func firstLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return string(bytes.TrimSpace(b))
}
