package main

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/thesaurus"
	"github.com/megacontext/megacontext/native"
	"github.com/megacontext/megacontext/proxy"
	"github.com/megacontext/megacontext/proxy/upstream"
	"github.com/megacontext/megacontext/tokens"
)

// rig is what every measurement runs on: the fakellama fixture as the
// upstream (or the server --upstream names), behind a loopback hop that
// counts the proxy's requests (and adds --hop-delay to each), discovered,
// and an engine over a temporary store that counts tokens with the
// upstream's /tokenize (or, with --local-vocab, the vocabulary of the model
// file /props names; or the estimate).
type rig struct {
	// fake is the fixture; nil with --upstream.
	fake    *fakellama.Server
	hop     *hop
	up      *upstream.Client
	counter tokens.Counter
	eng     *memory.Engine
	dir     string
	// vectors are the GloVe vectors the engine uses (--assets), else nil.
	vectors *glove.Vectors
}

// newRig starts a rig; opts sets the engine's options beyond its store
// and counter. Close releases it.
func newRig(nctx int, estimate bool, countTimeout time.Duration, opts memory.Options) (*rig, error) {
	r := &rig{}
	target := cfg.upstream
	if target == "" {
		fake, err := fakellama.Start(fakellama.Options{NCtx: nctx})
		if err != nil {
			return nil, err
		}
		r.fake, target = fake, fake.URL()
	}
	var err error
	if r.hop, err = startHop(target, cfg.hopDelay); err != nil {
		r.Close()
		return nil, err
	}
	if r.dir, err = os.MkdirTemp("", "megacontext-bench-"); err != nil {
		r.Close()
		return nil, err
	}
	if r.up, err = upstream.New(upstream.Options{BaseURL: r.hop.url}); err != nil {
		r.Close()
		return nil, err
	}
	if _, err := r.up.Discover(context.Background()); err != nil {
		r.Close()
		return nil, err
	}
	uc := &proxy.UpstreamCounter{Client: r.up, Timeout: countTimeout}
	if cfg.localVocab {
		uc.LoadVocab = func(path string) (tokens.Counter, error) {
			lib, err := native.Open("")
			if err != nil {
				return nil, err
			}
			return lib.LoadVocab(path)
		}
	}
	r.counter = uc
	if estimate {
		r.counter = tokens.Estimate{}
	}
	opts.Dir, opts.Counter = r.dir, r.counter
	if cfg.assets {
		th, err := thesaurus.Open("")
		if err != nil {
			r.Close()
			return nil, err
		}
		if r.vectors, err = glove.Open(""); err != nil {
			r.Close()
			return nil, err
		}
		opts.Expander, opts.Vectors = th, r.vectors
	}
	if r.eng, err = memory.Open(opts); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close stops the engine and the upstream and removes the store.
func (r *rig) Close() {
	if r.eng != nil {
		r.eng.Close()
	}
	if r.vectors != nil {
		r.vectors.Close()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
	if r.hop != nil {
		r.hop.close()
	}
	if r.fake != nil {
		r.fake.Close()
	}
}

// serve starts the proxy over the rig's engine and upstream (opts sets the
// rest) on a loopback port and returns its base URL; Close does not stop
// it: stop does.
func (r *rig) serve(opts proxy.Options) (url string, stop func(), err error) {
	opts.Engine, opts.Upstream = r.eng, r.up
	opts.ContextHeaders = []string{"X-MegaContext-Id"}
	srv := proxy.New(opts)
	ctx := context.Background()
	if _, err := srv.Discover(ctx); err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Shutdown(ctx) }, nil
}
