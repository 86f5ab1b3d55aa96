package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// checkWindowHeaders asserts the X-MegaContext-* headers of a chat answer.
func checkWindowHeaders(t *testing.T, what string, h http.Header, wantID string, nCtx int) {
	t.Helper()
	if got := h.Get("X-MegaContext-Id"); got != wantID {
		t.Errorf("%s: X-MegaContext-Id = %q, want %q", what, got, wantID)
	}
	ints := map[string]int{}
	for _, name := range []string{"X-MegaContext-History-Tokens", "X-MegaContext-Window-Tokens", "X-MegaContext-Expanded"} {
		v := h.Get(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Errorf("%s: %s = %q, want a non-negative integer", what, name, v)
		}
		ints[name] = n
	}
	if w := ints["X-MegaContext-Window-Tokens"]; w <= 0 || (nCtx > 0 && w >= nCtx) {
		t.Errorf("%s: X-MegaContext-Window-Tokens = %d, want in (0, %d)", what, w, nCtx)
	}
	if ints["X-MegaContext-History-Tokens"] <= 0 {
		t.Errorf("%s: X-MegaContext-History-Tokens = %d, want > 0", what, ints["X-MegaContext-History-Tokens"])
	}
	v := h.Get("X-MegaContext-Overhead-Ms")
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
		t.Errorf("%s: X-MegaContext-Overhead-Ms = %q, want a non-negative number", what, v)
	}
}

// checkAllFit asserts that every generation request the fake saw was
// answered and left room for max_tokens: prompt < n_ctx - max_tokens.
func checkAllFit(t *testing.T, fake *fakellama.Server) []fakellama.Request {
	t.Helper()
	reqs := fake.Requests()
	nCtx := fake.Options().NCtx
	for i, r := range reqs {
		if r.Rejected {
			t.Errorf("upstream request %d was rejected for context size: %d prompt tokens, max_tokens %d, n_ctx %d", i, r.PromptTokens, r.MaxTokens, nCtx)
		}
		if r.Status != http.StatusOK {
			t.Errorf("upstream request %d answered %d", i, r.Status)
		}
		if r.PromptTokens >= nCtx-r.MaxTokens {
			t.Errorf("upstream request %d: %d prompt tokens + max_tokens %d do not fit n_ctx %d", i, r.PromptTokens, r.MaxTokens, nCtx)
		}
	}
	return reqs
}

// TestLifelong300Turns is the core user story: a client that resends its
// whole history every turn talks for 300 turns to a model with a 2048-token
// context; nothing is ever rejected, a fact planted at turn 3 is recalled at
// turn 300, and after a kill -9 and a restart a brand-new chat of the same
// user still recalls it.
func TestLifelong300Turns(t *testing.T) {
	const (
		nCtx      = 2048
		maxTokens = 256
		turns     = 300
		fact      = "ZX-4471-QK"
		user      = "alice"
	)
	start := time.Now()
	fake := fakellama.New(fakellama.Options{NCtx: nCtx})
	t.Cleanup(fake.Close)
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})

	k := newTalker(1)
	history := []msg{{"system", "You are a helpful assistant. Answer briefly."}}
	question := "Quick question before I head to the gym tonight: what is my locker code again?"
	streamed := 0
	for turn := 1; turn <= turns; turn++ {
		var text string
		switch turn {
		case 3:
			text = k.sentence() + " By the way, my locker code is " + fact + ", please keep it in mind for later. " + k.sentence()
		case turns:
			text = question
		default:
			text = k.message()
		}
		history = append(history, msg{"user", text})
		stream := turn%3 == 1
		extra := map[string]any{"user": user, "max_tokens": maxTokens, "stream": stream}
		if stream && turn%2 == 0 {
			extra["stream_options"] = map[string]any{"include_usage": true}
		}
		res, err := p.chat(chatBody(t, history, extra), nil)
		if err != nil {
			t.Fatalf("turn %d: %v", turn, err)
		}
		if res.Status != http.StatusOK {
			t.Fatalf("turn %d: status %d: %s", turn, res.Status, res.Body)
		}
		if stream {
			streamed++
		}
		if res.Content == "" {
			t.Fatalf("turn %d: empty assistant reply: %s", turn, res.Body)
		}
		if turn%50 == 0 || turn == 1 {
			checkWindowHeaders(t, "turn "+strconv.Itoa(turn), res.Header, user, nCtx)
		}
		history = append(history, msg{"assistant", res.Content})
	}
	loopTime := time.Since(start)

	reqs := checkAllFit(t, fake)
	if len(reqs) != turns {
		t.Errorf("upstream saw %d requests for %d turns", len(reqs), turns)
	}
	last := reqs[len(reqs)-1]
	if fakellama.LastUserText(last.Messages) != question {
		t.Fatalf("last forwarded request does not end with the question: %q", fakellama.LastUserText(last.Messages))
	}
	if !strings.Contains(last.Prompt, fact) {
		t.Errorf("turn %d: forwarded prompt (%d tokens) does not contain the planted fact %q:\n%s", turns, last.PromptTokens, fact, last.Prompt)
	}
	var historyTokens int
	for _, m := range history {
		historyTokens += fakellama.CountTokens(m.Content)
	}
	t.Logf("%d turns (%d streamed) in %v; history %d tokens, last prompt %d tokens", turns, streamed, loopTime.Round(time.Millisecond), historyTokens, last.PromptTokens)

	// Every message is stored, durably: a kill -9 loses nothing.
	before := p.waitMessages(t, user, len(history))
	p.restartHard()
	after, found := p.stats(t, user)
	if !found || after.Messages != before.Messages || after.Tokens != before.Tokens {
		t.Fatalf("after kill -9 and restart: stats %+v (found %v), before %+v", after, found, before)
	}

	// A brand-new chat of the same user (selected by header this time).
	n := len(fake.Requests())
	res := p.mustChat(t, chatBody(t, []msg{{"user", "Remind me, what is my locker code?"}}, map[string]any{"max_tokens": maxTokens}), map[string]string{"X-MegaContext-Id": user})
	checkWindowHeaders(t, "new chat after restart", res.Header, user, nCtx)
	reqs = checkAllFit(t, fake)
	if len(reqs) != n+1 {
		t.Fatalf("upstream saw %d requests for the new chat, want 1", len(reqs)-n)
	}
	if got := reqs[n]; !strings.Contains(got.Prompt, fact) {
		t.Errorf("new chat after restart: forwarded prompt does not contain %q:\n%s", fact, got.Prompt)
	}
	p.waitMessages(t, user, len(history)+2)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}
