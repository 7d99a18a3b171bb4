package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"tailscale.com/disco"
	"tailscale.com/wgengine/magicsock"
)

// Options tune the bridge.
type Options struct {
	// Deadline for one relayd allocation. A client re-sends its request once
	// after 3 s (udprelay.ServerRetryAfter) and gives up after 10 s, so the
	// answer must come well inside 3 s to be the one it uses.
	Timeout time.Duration
	// Requests handled at once; more wait in a queue of QueueLen and past
	// that are refused as overloaded (bounded memory whatever a tailnet
	// sends).
	Workers  int
	QueueLen int
}

// DefaultOptions: answers within 2 s; 16 relayd calls at once (relayd
// answers an allocation in well under a millisecond); 1024 queued (about
// 200 KiB).
var DefaultOptions = Options{Timeout: 2 * time.Second, Workers: 16, QueueLen: 1024}

// Bridge turns allocation requests into responses.
type Bridge struct {
	alloc   Allocator
	publish func(magicsock.UDPRelayAllocResp)
	opts    Options
	log     *slog.Logger
	Metrics *Metrics

	queue chan magicsock.UDPRelayAllocReq
	wg    sync.WaitGroup
}

// New returns a bridge that asks alloc and hands each answer to publish
// (magicsock's event bus in relayd-bridge).
func New(alloc Allocator, publish func(magicsock.UDPRelayAllocResp), opts Options, log *slog.Logger) *Bridge {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultOptions.Timeout
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultOptions.Workers
	}
	if opts.QueueLen <= 0 {
		opts.QueueLen = DefaultOptions.QueueLen
	}
	return &Bridge{
		alloc:   alloc,
		publish: publish,
		opts:    opts,
		log:     log,
		Metrics: NewMetrics(),
		queue:   make(chan magicsock.UDPRelayAllocReq, opts.QueueLen),
	}
}

// Run serves the queue until ctx ends, then waits for the requests under
// way.
func (b *Bridge) Run(ctx context.Context) {
	for range b.opts.Workers {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-b.queue:
					b.handle(ctx, req)
				}
			}
		}()
	}
	b.wg.Wait()
}

// Enqueue takes a request from the event bus without blocking it: the bus
// delivers to one goroutine per subscriber, and a slow relayd must not hold
// up magicsock's other events.
func (b *Bridge) Enqueue(req magicsock.UDPRelayAllocReq) {
	b.Metrics.requests.Add(1)
	select {
	case b.queue <- req:
	default:
		b.Metrics.refuse(ReasonOverloaded)
		b.log.Warn("allocation request refused: queue full", "from", req.RxFromNodeKey.ShortString())
	}
}

// Handle answers one request synchronously (tests; the queue uses it too).
func (b *Bridge) Handle(ctx context.Context, req magicsock.UDPRelayAllocReq) (*magicsock.UDPRelayAllocResp, error) {
	if req.Message == nil || req.Message.ClientDisco[0].IsZero() || req.Message.ClientDisco[1].IsZero() ||
		req.Message.ClientDisco[0] == req.Message.ClientDisco[1] || req.RxFromNodeKey.IsZero() {
		return nil, &RefusedError{Reason: ReasonInvalid, Detail: "request without two distinct client keys or a node key"}
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	start := time.Now()
	ep, err := b.alloc.Allocate(ctx, req.Message.ClientDisco[0], req.Message.ClientDisco[1], req.RxFromNodeKey)
	if err != nil {
		return nil, err
	}
	b.Metrics.observe(time.Since(start))
	return &magicsock.UDPRelayAllocResp{
		ReqRxFromNodeKey:  req.RxFromNodeKey,
		ReqRxFromDiscoKey: req.RxFromDiscoKey,
		Message: &disco.AllocateUDPRelayEndpointResponse{
			Generation:       req.Message.Generation,
			UDPRelayEndpoint: ep,
		},
	}, nil
}

func (b *Bridge) handle(ctx context.Context, req magicsock.UDPRelayAllocReq) {
	b.Metrics.inflight.Add(1)
	defer b.Metrics.inflight.Add(-1)
	resp, err := b.Handle(ctx, req)
	if err != nil {
		var re *RefusedError
		reason := ReasonServerError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		b.Metrics.refuse(reason)
		// Peers cause these at will (a node over its rate): debug level,
		// except the ones an operator must fix.
		lvl := slog.LevelDebug
		if reason == ReasonForbidden || reason == ReasonBadResponse || reason == ReasonUnreachable {
			lvl = slog.LevelWarn
		}
		b.log.Log(ctx, lvl, "allocation not answered", "from", req.RxFromNodeKey.ShortString(),
			"disco", shortPair(req.Message), "err", err)
		return
	}
	b.Metrics.answered.Add(1)
	b.publish(*resp)
	b.log.Debug("allocation answered", "from", req.RxFromNodeKey.ShortString(), "disco", shortPair(req.Message),
		"vni", resp.Message.VNI, "lamport", resp.Message.LamportID, "generation", resp.Message.Generation)
}

func shortPair(m *disco.AllocateUDPRelayEndpointRequest) string {
	if m == nil {
		return ""
	}
	return m.ClientDisco[0].ShortString() + "," + m.ClientDisco[1].ShortString()
}
