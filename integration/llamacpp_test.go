package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
)

// Tests of the real binary in front of the real llama.cpp server (see
// llamaserver_test.go): what a look-alike upstream cannot show.

// TestLlamaServerChat: a plain and a streamed chat through the proxy reach
// the real server, come back as OpenAI answers, and are stored.
func TestLlamaServerChat(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	hdr := map[string]string{"X-MegaContext-Id": "real-chat"}
	msgs := []msg{{Role: "user", Content: "Once upon a time there was a little girl named Lily."}}

	res := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16, "temperature": 0}), hdr)
	if res.Content == "" {
		t.Fatalf("empty answer: %s", res.Body)
	}
	if got := gjson.GetBytes(res.Body, "system_fingerprint").Str; !strings.HasPrefix(got, "b1-de3ff81") {
		t.Errorf("system_fingerprint %q: not the pinned llama.cpp build", got)
	}
	if n := promptTokens(&res.response); n <= 0 {
		t.Errorf("no usage.prompt_tokens in %s", res.Body)
	}
	msgs = append(msgs, msg{Role: "assistant", Content: res.Content}, msg{Role: "user", Content: "What did Lily find?"})
	st := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16, "temperature": 0, "stream": true}), hdr)
	if !st.Done || st.Content == "" || st.Events < 3 {
		t.Fatalf("stream: done=%v events=%d content=%q", st.Done, st.Events, st.Content)
	}
	p.waitMessages(t, "real-chat", 4)
}

// TestLlamaServerModelAlias: without --alias llama.cpp reports the model's
// file path as model_alias; the proxy names the model after it all the same
// and the request's model field reaches the server unchanged.
func TestLlamaServerModelAlias(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
	st, props, err := ls.get("/props")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/props: %d %v", st, err)
	}
	if got := gjson.GetBytes(props, "model_alias").Str; got != ls.ModelPath() {
		t.Errorf("model_alias %q, want the file path %q (llama.cpp's default without --alias)", got, ls.ModelPath())
	}
	if got := gjson.GetBytes(props, "default_generation_settings.n_ctx").Int(); got != 512 {
		t.Errorf("/props n_ctx %d, want 512", got)
	}
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	res := p.mustChat(t, chatBody(t, []msg{{Role: "user", Content: "Hello."}}, map[string]any{"max_tokens": 4}), nil)
	if got := gjson.GetBytes(res.Body, "model").Str; got == "" {
		t.Errorf("no model in the answer: %s", res.Body)
	}
	if got := res.Header.Get("X-MegaContext-Budget-Tokens"); got == "" {
		t.Errorf("no budget header")
	} else if n, _ := strconv.Atoi(got); n <= 0 || n > 512 {
		t.Errorf("budget %d tokens for a 512-token context", n)
	}
}

// metricValue reads one unlabelled counter or gauge from the proxy's
// /metrics; 0 when absent.
func metricValue(t *testing.T, p *proxy, name string) float64 {
	t.Helper()
	r := p.mustDo(t, "GET", "/metrics", nil, nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("/metrics %s: %q", name, v)
			}
			return f
		}
	}
	return 0
}

// turnResult is what one turn of a conversation with the real server
// showed.
type turnResult struct {
	// prompt is usage.prompt_tokens: the real size of the forwarded prompt.
	prompt int
	// budget is X-MegaContext-Budget-Tokens: what the proxy allowed.
	budget int
	// window is X-MegaContext-Window-Tokens: what the proxy counted.
	window int
}

// converse runs turns of a conversation (a user message of 40 to 80 words
// each, the client resending the whole history) through p and returns
// what each turn showed. Every turn must succeed.
func converse(t *testing.T, p *proxy, id string, turns, maxTokens int, seed uint64) []turnResult {
	t.Helper()
	talk := newTalker(seed)
	hdr := map[string]string{"X-MegaContext-Id": id}
	msgs := []msg{{Role: "system", Content: "You are a friendly storyteller."}}
	var out []turnResult
	for turn := 0; turn < turns; turn++ {
		msgs = append(msgs, msg{Role: "user", Content: talk.message()})
		extra := map[string]any{"max_tokens": maxTokens, "temperature": 0}
		if turn%3 == 2 {
			extra["stream"] = true
			extra["stream_options"] = map[string]any{"include_usage": true}
		}
		res, err := p.chat(chatBody(t, msgs, extra), hdr)
		if err != nil {
			t.Fatalf("turn %d: %v", turn, err)
		}
		if res.Status != http.StatusOK {
			t.Fatalf("turn %d: status %d: %s", turn, res.Status, res.Body)
		}
		out = append(out, turnResult{prompt: promptTokens(&res.response),
			budget: headerInt(t, res.Header, "X-MegaContext-Budget-Tokens"), window: headerInt(t, res.Header, "X-MegaContext-Window-Tokens")})
		msgs = append(msgs, msg{Role: "assistant", Content: res.Content})
	}
	return out
}

// TestLlamaServerLongConversation: a conversation far longer than the
// context, at -c 512 and -c 2048, never overflows it: every prompt plus
// the reserved output fits, as the real server counts it. It logs how much
// of the context the windows left unused (the waste) once the history no
// longer fits whole.
func TestLlamaServerLongConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: long conversations with the real server")
	}
	for _, nctx := range []int{512, 2048} {
		t.Run(fmt.Sprint(nctx), func(t *testing.T) {
			ls := startLlamaServer(t, llamaServerOptions{NCtx: nctx, Parallel: 1})
			p := startProxy(t, proxyOptions{Upstream: ls.URL()})
			const maxTokens = 24
			turns := converse(t, p, "long", 40, maxTokens, uint64(nctx))
			var unused, over []int
			for i, tr := range turns {
				if tr.prompt <= 0 {
					t.Fatalf("turn %d: no usage.prompt_tokens", i)
				}
				if tr.prompt+maxTokens > nctx {
					t.Errorf("turn %d: prompt %d + max_tokens %d > n_ctx %d", i, tr.prompt, maxTokens, nctx)
				}
				// Pieces are priced as they stand in the prompt, so the count is
				// exact to a token or two; the safety margin covers the rest.
				if tr.window < tr.prompt-4 {
					t.Errorf("turn %d: the proxy counted %d tokens, the server %d", i, tr.window, tr.prompt)
				}
				if i >= 16 { // the history is far past the context by now
					unused = append(unused, nctx-maxTokens-tr.prompt)
					over = append(over, tr.window-tr.prompt)
				}
			}
			slices.Sort(unused)
			slices.Sort(over)
			t.Logf("n_ctx %d, once the history is past the context: unused context (n_ctx - max_tokens - prompt_tokens) min %d, median %d, max %d; "+
				"the proxy's count over the server's (X-MegaContext-Window-Tokens - prompt_tokens) min %d, median %d, max %d",
				nctx, unused[0], unused[len(unused)/2], unused[len(unused)-1], over[0], over[len(over)/2], over[len(over)-1])
		})
	}
}

// TestLlamaServerSharedPool: by default llama-server runs 4 slots that share
// one KV pool while /props reports the whole pool as each slot's n_ctx, so
// concurrent windows that each fit n_ctx overflow the pool together, and
// the server answers HTTP 500 "Context size has been exceeded.". The proxy
// treats that as a context error: it learns that the pool is shared,
// budgets each request for its share and retries, so every client gets its
// answer.
func TestLlamaServerSharedPool(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 1024})
	st, props, err := ls.get("/props")
	if err != nil || st != http.StatusOK {
		t.Fatalf("/props: %d %v", st, err)
	}
	if n, slots := gjson.GetBytes(props, "default_generation_settings.n_ctx").Int(), gjson.GetBytes(props, "total_slots").Int(); n != 1024 || slots != 4 {
		t.Fatalf("/props: n_ctx %d, total_slots %d; want 1024 for each of 4 slots", n, slots)
	}
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	const clients = 4
	histories := make([][]msg, clients)
	for c := range histories {
		talk := newTalker(uint64(100 + c))
		for i := 0; i < 24; i++ {
			histories[c] = append(histories[c], msg{Role: "user", Content: talk.message()}, msg{Role: "assistant", Content: talk.message()})
		}
	}
	wave := func(n int) {
		start := make(chan struct{})
		results := make([]*chatResult, clients)
		errs := make([]error, clients)
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			histories[c] = append(histories[c], msg{Role: "user", Content: fmt.Sprintf("Wave %d: tell me a short story.", n)})
			// The first wave is where the proxy learns, by refusals, that the
			// pool is shared; a stream refused mid-generation then could not be
			// retried. Later waves stream too.
			body := chatBody(t, histories[c], map[string]any{"max_tokens": 48, "temperature": 0, "stream": n > 1 && c == 3})
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[c], errs[c] = p.chat(body, map[string]string{"X-MegaContext-Id": fmt.Sprintf("pool-%d", c)})
			}()
		}
		close(start)
		wg.Wait()
		for c := 0; c < clients; c++ {
			if errs[c] != nil {
				t.Fatalf("wave %d, client %d: %v", n, c, errs[c])
			}
			if results[c].Status != http.StatusOK {
				t.Fatalf("wave %d, client %d: status %d: %s", n, c, results[c].Status, results[c].Body)
			}
			histories[c] = append(histories[c], msg{Role: "assistant", Content: results[c].Content})
		}
	}
	wave(1)
	retries := metricValue(t, p, "megacontext_context_retries_total")
	log, _ := os.ReadFile(p.logPath)
	if retries == 0 {
		t.Skip("skipping: the four requests did not overlap at the server (no refusal to handle)")
	}
	if !strings.Contains(string(log), "share one KV pool") {
		t.Errorf("%v retries, but the proxy did not learn that the slots share one KV pool", retries)
	}
	// Now every request of a burst is budgeted for its share from the start.
	wave(2)
	if again := metricValue(t, p, "megacontext_context_retries_total") - retries; again != 0 {
		t.Errorf("%v retries in the second wave, want none: the proxy did not budget for its share of the pool", again)
	}
}

// TestLlamaServerRestartSmallerContext: when the upstream comes back with
// a smaller context, the first refusal's n_ctx (llama.cpp's
// exceed_context_size_error) teaches the proxy the new size, which it then
// rediscovers: that request is retried once, and the following ones fit at
// once instead of being refused and retried every turn.
func TestLlamaServerRestartSmallerContext(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 2048, Parallel: 1})
	p := startProxy(t, proxyOptions{Upstream: ls.URL()})
	talk := newTalker(7)
	hdr := map[string]string{"X-MegaContext-Id": "restart"}
	msgs := []msg{{Role: "system", Content: "You are a friendly storyteller."}}
	turn := func() *chatResult {
		msgs = append(msgs, msg{Role: "user", Content: talk.message()})
		res := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 16, "temperature": 0}), hdr)
		msgs = append(msgs, msg{Role: "assistant", Content: res.Content})
		return res
	}
	for i := 0; i < 14; i++ {
		turn()
	}
	if b := headerInt(t, turn().Header, "X-MegaContext-Budget-Tokens"); b < 1500 {
		t.Fatalf("budget %d at n_ctx 2048", b)
	}
	ls.Restart(llamaServerOptions{NCtx: 512, Parallel: 1})
	before := metricValue(t, p, "megacontext_context_retries_total")
	for i := 0; i < 6; i++ {
		res := turn()
		if b := headerInt(t, res.Header, "X-MegaContext-Budget-Tokens"); b > 512 {
			t.Errorf("turn %d after the restart: budget %d for a context of 512", i, b)
		}
		if n := promptTokens(&res.response); n <= 0 || n+16 > 512 {
			t.Errorf("turn %d after the restart: prompt of %d tokens", i, n)
		}
	}
	if n := metricValue(t, p, "megacontext_context_retries_total") - before; n != 1 {
		t.Errorf("%v retries over 6 turns after the restart, want 1 (the first refusal only)", n)
	}
}

// upstreamHop is a loopback reverse proxy in front of an upstream that
// counts the requests it relays by path and keeps their bodies.
type upstreamHop struct {
	url string
	mu  sync.Mutex     // guards n and seen
	n   map[string]int // requests by path since the last take
	// seen are the requests relayed so far, in order.
	seen []hopRequest
}

// hopRequest is one request an upstreamHop relayed.
type hopRequest struct {
	path, auth string
	body       []byte
}

// startUpstreamHop relays to target until the test ends.
func startUpstreamHop(t *testing.T, target string) *upstreamHop {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	h := &upstreamHop{n: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.mu.Lock()
		h.n[r.URL.Path]++
		h.seen = append(h.seen, hopRequest{path: r.URL.Path, auth: r.Header.Get("Authorization"), body: body})
		h.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// requests returns the requests relayed so far to path.
func (h *upstreamHop) requests(path string) []hopRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hopRequest
	for _, r := range h.seen {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// take returns the counts since the last take and starts again.
func (h *upstreamHop) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.n
	h.n = map[string]int{}
	return out
}

// TestLlamaServerRoundTrips: a turn costs at most one /tokenize request
// (one batch: the new message's blocks, its gists and headers, and the
// previous reply's, which storing it deferred), and none when the proxy can
// read the model file /props names and counts with its vocabulary
// in-process (after checking that it counts as the server does).
func TestLlamaServerRoundTrips(t *testing.T) {
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 1024, Parallel: 1})
	for _, tc := range []struct {
		name, config string
		most         int
	}{
		{"upstream tokenizer", "upstream:\n  tokenize: upstream\n", 1},
		{"model file's vocabulary", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config
			if tc.most == 0 {
				cfg = nativeConfig(nativeLibDir(t))
			}
			hop := startUpstreamHop(t, ls.URL())
			p := startProxy(t, proxyOptions{Upstream: hop.url, Config: cfg})
			talk := newTalker(11)
			hdr := map[string]string{"X-MegaContext-Id": "trips"}
			msgs := []msg{{Role: "system", Content: "You are a friendly storyteller."}}
			hop.take() // discovery
			most, total := 0, 0
			for turn := 0; turn < 16; turn++ {
				msgs = append(msgs, msg{Role: "user", Content: talk.message()})
				res := p.mustChat(t, chatBody(t, msgs, map[string]any{"max_tokens": 24, "temperature": 0}), hdr)
				msgs = append(msgs, msg{Role: "assistant", Content: res.Content})
				p.waitMessages(t, "trips", len(msgs)) // the reply is stored
				n := hop.take()
				if n["/v1/chat/completions"] != 1 {
					t.Fatalf("turn %d: %d chat requests", turn, n["/v1/chat/completions"])
				}
				delete(n, "/v1/chat/completions")
				trips := 0
				for path, k := range n {
					if path != "/tokenize" {
						t.Errorf("turn %d: %d requests to %s", turn, k, path)
					}
					trips += k
				}
				most, total = max(most, trips), total+trips
			}
			t.Logf("%s: %d round trips besides the chat request over 16 turns, at most %d in one", tc.name, total, most)
			if most > tc.most {
				t.Errorf("%s: a turn made %d round trips besides the chat request, want at most %d", tc.name, most, tc.most)
			}
			if tc.most == 0 {
				log, _ := os.ReadFile(p.logPath)
				if !strings.Contains(string(log), "counting tokens in-process with the upstream's model vocabulary") {
					t.Errorf("the proxy did not say it counts with the model file's vocabulary")
				}
			}
		})
	}
}
