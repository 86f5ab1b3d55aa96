package proxy

import (
	"bytes"
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/proxy/upstream"
)

// What the upstream's refusals teach about its context, beyond what
// discovery said:
//
//   - llama.cpp's exceed_context_size_error names the slot's n_ctx. When it
//     is smaller than the context the proxy budgets for, the upstream was
//     restarted with a smaller -c: the proxy rediscovers it, and budgets
//     with the error's n_ctx until discovery agrees, instead of retrying
//     into the same refusal on every request.
//   - llama.cpp's HTTP 500 "Context size has been exceeded." (no n_ctx)
//     means the slots share one KV pool (the default: 4 slots, each
//     reporting the whole pool as its n_ctx in /props) and concurrent
//     requests overflowed it. From then on each request is budgeted for its
//     share of the pool: n_ctx divided by the most requests this proxy had
//     in flight at once in the last minute (at most the slots), so that a
//     burst's first request does not take the whole pool from the others.
//     Requests alone for a minute get all of it again.

// maxContextAttempts bounds the tries of one request whose window the
// upstream refused as too long (each with a smaller window).
const maxContextAttempts = 3

// rediscoverTimeout bounds the discovery made after a refusal.
const rediscoverTimeout = 3 * time.Second

// peakWindow is how long the most requests in flight at once is
// remembered for sharing a KV pool.
const peakWindow = time.Minute

// learned is what the upstream's refusals taught. It is safe for
// concurrent use.
type learned struct {
	// mu guards nctx, shared, peak and peakAt.
	mu sync.Mutex
	// nctx is a smaller n_ctx than discovery's that a refusal reported; 0
	// when none (discovery is right).
	nctx int
	// shared is set once the slots were seen sharing one KV pool.
	shared bool
	// peak is the most requests in flight at once since peakAt, which is
	// less than peakWindow ago (else the peak is over).
	peak   int
	peakAt time.Time
	// inflight counts the requests this proxy has upstream, from the first
	// attempt until their response body is closed.
	inflight atomic.Int64
	// now returns the current time (tests set it); nil is time.Now.
	now func() time.Time
}

// clock returns the current time.
func (l *learned) clock() time.Time {
	if l.now != nil {
		return l.now()
	}
	return time.Now()
}

// effective returns the context a request gets out of nctx (configured or
// discovered) given what was learned and the upstream's slots.
func (l *learned) effective(nctx, slots int) int {
	now := l.clock()
	l.mu.Lock()
	small, shared, peak := l.nctx, l.shared, 0
	if now.Sub(l.peakAt) < peakWindow {
		peak = l.peak
	}
	l.mu.Unlock()
	if small > 0 && small < nctx {
		nctx = small
	}
	if shared && slots > 1 {
		if k := min(max(int(l.inflight.Load()), peak), slots); k > 1 {
			nctx /= k
		}
	}
	return nctx
}

// discovered forgets a learned n_ctx that discovery now confirms.
func (l *learned) discovered(nctx int) {
	l.mu.Lock()
	if nctx > 0 && (l.nctx == 0 || nctx <= l.nctx) {
		l.nctx = 0
	}
	l.mu.Unlock()
}

// sharedPool reports whether the slots were seen sharing one KV pool.
func (l *learned) sharedPool() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shared
}

// track counts a request in flight until release is called (once).
func (l *learned) track() (release func()) {
	n := int(l.inflight.Add(1))
	now := l.clock()
	l.mu.Lock()
	if n >= l.peak || now.Sub(l.peakAt) >= peakWindow {
		l.peak, l.peakAt = n, now
	}
	l.mu.Unlock()
	return sync.OnceFunc(func() { l.inflight.Add(-1) })
}

// learn takes what a refusal (an error body the upstream sent for a window
// it found too long) says about the context: a smaller n_ctx, then
// rediscovered, or a shared KV pool.
func (s *Server) learn(ctx context.Context, refusal []byte, budgeted int) {
	nc := int(gjson.GetBytes(refusal, "error.n_ctx").Int())
	if nc <= 0 {
		nc = int(gjson.GetBytes(refusal, "n_ctx").Int())
	}
	switch {
	case nc > 0 && nc < budgeted:
		s.learned.mu.Lock()
		s.learned.nctx = nc
		s.learned.mu.Unlock()
		s.log.Warn("the upstream's context is smaller than budgeted (restarted?): rediscovering", "n_ctx", nc, "budgeted", budgeted)
		dctx, cancel := context.WithTimeout(ctx, rediscoverTimeout)
		defer cancel()
		if _, err := s.Discover(dctx); err != nil {
			s.log.Warn("rediscovery failed; budgeting with the refusal's n_ctx", "n_ctx", nc, "err", err)
		}
	case nc <= 0 && upstream.IsSharedPoolExhausted(refusal):
		s.learnSharedPool()
	}
}

// learnSharedPool records that the upstream's slots share one KV pool
// (when it has several).
func (s *Server) learnSharedPool() {
	if s.upstreamInfo(context.Background()).Slots <= 1 || s.learned.sharedPool() {
		return
	}
	s.learned.mu.Lock()
	s.learned.shared = true
	s.learned.mu.Unlock()
	s.log.Warn("the upstream's slots share one KV pool: concurrent requests get a share of its context each")
}

// firstEventRefusal peeks at the first event of a llama.cpp stream: a
// context error there (the prompt did not fit before anything was
// generated) is a refusal like an error status, and the request can still
// be retried. It returns the refusal, or a response that replays the
// peeked bytes and then the rest of the stream.
func firstEventRefusal(resp *upstream.Response) ([]byte, *upstream.Response) {
	var seen bytes.Buffer
	rd := upstream.NewSSEReader(io.TeeReader(resp.Body, &seen))
	ev, err := rd.Next()
	if err == nil && upstream.IsContextLengthError(500, ev.Data) {
		resp.Body.Close()
		return bytes.Clone(ev.Data), nil
	}
	replay := *resp
	replay.Body = readCloser{io.MultiReader(bytes.NewReader(seen.Bytes()), resp.Body), resp.Body}
	return nil, &replay
}

// readCloser reads from one reader and closes another.
type readCloser struct {
	io.Reader
	c io.Closer
}

// Close closes the underlying body.
func (r readCloser) Close() error { return r.c.Close() }

// releasing calls release when the body is closed (once).
type releasing struct {
	io.ReadCloser
	release func()
}

// Close closes the body and releases the request's in-flight count.
func (r releasing) Close() error {
	err := r.ReadCloser.Close()
	r.release()
	return err
}
