package proxy

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/proxy/upstream"
)

// TestLearnedEffective: the context a request gets from what refusals
// taught, in the table's order of events.
func TestLearnedEffective(t *testing.T) {
	at := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	l := &learned{now: func() time.Time { return at }}
	if got := l.effective(2048, 4); got != 2048 {
		t.Fatalf("nothing learned: %d, want 2048", got)
	}
	// A refusal named a smaller n_ctx: it wins until discovery agrees.
	l.nctx = 512
	if got := l.effective(2048, 4); got != 512 {
		t.Errorf("learned n_ctx 512: %d", got)
	}
	l.discovered(2048) // discovery still says 2048: keep the refusal's
	if got := l.effective(2048, 4); got != 512 {
		t.Errorf("after a discovery of 2048: %d, want 512", got)
	}
	l.discovered(512)
	if got := l.effective(512, 4); got != 512 || l.nctx != 0 {
		t.Errorf("after discovery agreed: %d (learned %d)", got, l.nctx)
	}
	// A shared pool: the share is n_ctx over the requests in flight, or the
	// most in flight within the last minute, at most the slots.
	l.shared = true
	r1 := l.track()
	if got := l.effective(1024, 4); got != 1024 {
		t.Errorf("one request alone: %d, want 1024", got)
	}
	r2, r3 := l.track(), l.track()
	if got := l.effective(1024, 4); got != 341 {
		t.Errorf("three in flight: %d, want 341", got)
	}
	r4, r5 := l.track(), l.track()
	if got := l.effective(1024, 4); got != 256 {
		t.Errorf("five in flight, four slots: %d, want 256", got)
	}
	if got := l.effective(1024, 1); got != 1024 {
		t.Errorf("one slot: %d, want 1024", got)
	}
	for _, r := range []func(){r1, r2, r3, r4, r5, r5} {
		r()
	}
	if n := l.inflight.Load(); n != 0 {
		t.Fatalf("%d in flight after releasing all (twice for one)", n)
	}
	if got := l.effective(1024, 4); got != 256 {
		t.Errorf("just after a burst of five: %d, want 256", got)
	}
	at = at.Add(peakWindow)
	if got := l.effective(1024, 4); got != 1024 {
		t.Errorf("a minute after the burst: %d, want 1024", got)
	}
}

// TestFirstEventRefusal: a stream whose first event is a context error is
// a refusal; any other stream is replayed byte for byte.
func TestFirstEventRefusal(t *testing.T) {
	refused := "data: {\"error\":{\"code\":500,\"message\":\"Context size has been exceeded.\",\"type\":\"server_error\"}}\n\n"
	refusal, replay := firstEventRefusal(&upstream.Response{Status: 200, Body: io.NopCloser(strings.NewReader(refused))})
	if refusal == nil || replay != nil || !upstream.IsSharedPoolExhausted(refusal) {
		t.Fatalf("refusal %q, replay %v", refusal, replay)
	}
	stream := "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n" + strings.Repeat("data: {\"choices\":[{\"delta\":{\"content\":\"word \"}}]}\n\n", 5000) + "data: [DONE]\n\n"
	refusal, replay = firstEventRefusal(&upstream.Response{Status: 200, Body: io.NopCloser(strings.NewReader(stream))})
	if refusal != nil || replay == nil {
		t.Fatalf("a good stream refused: %q", refusal)
	}
	got, err := io.ReadAll(replay.Body)
	if err != nil || string(got) != stream {
		t.Fatalf("replay differs (%d bytes of %d, %v)", len(got), len(stream), err)
	}
}
