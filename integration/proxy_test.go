package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// cancelBound is how soon the upstream must see a cancellation after the
// client went away. It is an assertion bound, not a sleep.
const cancelBound = time.Second

func newFake(t *testing.T, opts fakellama.Options) *fakellama.Server {
	t.Helper()
	fake, err := fakellama.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	return fake
}

// TestFieldsPreserved: the proxy rewrites only "messages"; every other
// field reaches the upstream byte for byte, and the client's own API key
// is not forwarded.
func TestFieldsPreserved(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})

	const lastUser = `{"role":"user","name":"bob","content":"Caf\u00e9 \"quoted\" <tag> & more"}`
	for _, stream := range []string{"false", "true"} {
		t.Run("stream="+stream, func(t *testing.T) {
			body := []byte(`{"model": "fake-model", "temperature": 0, "top_k": 40, "cache_prompt": true,
  "custom": {"nested": [1, 2.50, "x"]}, "seed": 1234567890123, "top_p": 1.0e0,
  "stream": ` + stream + `, "stream_options": {"include_usage": true},
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather \u00e9",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
  "tool_choice": "auto", "logit_bias": {"15": -100}, "stop": ["\n\n"], "n_probs": 0, "user": "fields-` + stream + `",
  "messages": [{"role": "system", "content": "Be terse."}, ` + lastUser + `],
  "max_tokens": 64, "x_trailing": null}`)
			n := len(fake.Requests())
			res := p.mustChat(t, body, map[string]string{"Authorization": "Bearer sk-client-secret"})
			if res.Content == "" {
				t.Errorf("empty reply: %s", res.Body)
			}
			reqs := fake.Requests()
			if len(reqs) != n+1 {
				t.Fatalf("upstream saw %d requests, want 1", len(reqs)-n)
			}
			got := reqs[n]
			gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
				if k.Str == "messages" {
					return true
				}
				if g := gjson.GetBytes(got.Body, gjson.Escape(k.Str)); g.Raw != v.Raw {
					t.Errorf("field %s: upstream got %s, client sent %s", k.Str, g.Raw, v.Raw)
				}
				return true
			})
			// Everything but messages is the same bytes, formatting included.
			a, err1 := sjson.DeleteBytes(body, "messages")
			b, err2 := sjson.DeleteBytes(got.Body, "messages")
			if err1 != nil || err2 != nil || string(a) != string(b) {
				t.Errorf("body without messages differs:\nclient:   %s\nupstream: %s", a, b)
			}
			msgs := gjson.GetBytes(got.Body, "messages").Array()
			if len(msgs) == 0 || msgs[len(msgs)-1].Raw != lastUser {
				t.Errorf("last message not forwarded verbatim: %s", gjson.GetBytes(got.Body, "messages").Raw)
			}
			if len(msgs) == 0 || !strings.HasPrefix(msgs[0].Get("content").Str, "Be terse.") || msgs[0].Get("role").Str != "system" {
				t.Errorf("system prompt not first: %s", gjson.GetBytes(got.Body, "messages").Raw)
			}
			if a := got.Header.Get("Authorization"); a != "" {
				t.Errorf("client Authorization forwarded upstream: %q", a)
			}
		})
	}
}

// TestStreamingRelaysChunksAsTheyArrive: the client receives SSE chunks
// while the upstream is still generating (it stalls after 3 events), and
// leaving mid-stream cancels the upstream request within a second; the cut
// answer is stored as partial.
func TestStreamingRelaysChunksAsTheyArrive(t *testing.T) {
	const stallAfter = 3
	fake := newFake(t, fakellama.Options{StallAfterChunks: stallAfter})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})

	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	body := chatBody(t, []msg{{"user", "Tell me a long story about the lighthouse keeper and his seven cats please"}}, map[string]any{"stream": true, "user": "streamer"})
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL()+"/v1/chat/completions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	checkWindowHeaders(t, "stream", resp.Header, "streamer", 4096)
	rd := bufio.NewReader(resp.Body)
	events := 0
	var content strings.Builder
	for events < stallAfter {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d events: %v", events, err)
		}
		if data, ok := strings.CutPrefix(strings.TrimSpace(line), "data:"); ok {
			events++
			content.WriteString(gjson.Get(strings.TrimSpace(data), "choices.0.delta.content").Str)
		}
	}
	// The upstream has not finished: these chunks were relayed as they came.
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Status != 0 || reqs[0].Cancelled {
		t.Fatalf("upstream request should still be running: %+v", reqs)
	}
	cancel() // the client goes away mid-stream
	select {
	case <-fake.Cancelled():
	case <-time.After(cancelBound):
		t.Fatalf("upstream request not cancelled within %v of the client leaving", cancelBound)
	}
	// The cut answer is stored, marked partial.
	waitFor(t, "the partial answer to be stored", func() bool {
		st, ok := p.stats(t, "streamer")
		return ok && st.Messages == 2 && st.Partial == 1
	})
	t.Logf("relayed %d events before the stall: %q", events, content.String())
}

// TestCancelStalledNonStreamed: a client that gives up on a non-streamed
// request cancels the upstream request within a second.
func TestCancelStalledNonStreamed(t *testing.T) {
	fake := newFake(t, fakellama.Options{StallAfterChunks: 1})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := chatBody(t, []msg{{"user", "This answer will never come."}}, map[string]any{"user": "stalled"})
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL()+"/v1/chat/completions", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	errc := make(chan error, 1)
	go func() {
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("unexpected answer %d", resp.StatusCode)
		}
		errc <- err
	}()
	waitFor(t, "the upstream to receive the request", func() bool { return len(fake.Requests()) == 1 })
	cancel()
	select {
	case <-fake.Cancelled():
	case <-time.After(cancelBound):
		t.Fatalf("upstream request not cancelled within %v of the client leaving", cancelBound)
	}
	if err := <-errc; ctx.Err() == nil || err == nil {
		t.Errorf("client: %v", err)
	}
}

// TestClientErrors: malformed or invalid requests get a 4xx OpenAI error
// JSON, reach nobody upstream and store nothing.
func TestClientErrors(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "limits:\n  max_body_bytes: 4096\n"})

	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", `{"messages": [{"role": "user", "content": "hi"}`, 400, "invalid_json"},
		{"not an object", `[1, 2]`, 400, ""},
		{"missing messages", `{"model": "m", "user": "err"}`, 400, ""},
		{"empty messages", `{"model": "m", "messages": [], "user": "err"}`, 400, ""},
		{"messages not an array", `{"messages": "hi", "user": "err"}`, 400, ""},
		{"message not an object", `{"messages": ["hi"], "user": "err"}`, 400, ""},
		{"bad role", `{"messages": [{"role": "robot", "content": "hi"}], "user": "err"}`, 400, ""},
		{"content a number", `{"messages": [{"role": "user", "content": 42}], "user": "err"}`, 400, ""},
		{"content missing", `{"messages": [{"role": "user"}], "user": "err"}`, 400, ""},
		{"stream a string", `{"messages": [{"role": "user", "content": "hi"}], "stream": "yes", "user": "err"}`, 400, ""},
		{"max_tokens negative", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": -5, "user": "err"}`, 400, ""},
		{"max_tokens a string", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "10", "user": "err"}`, 400, ""},
		{"user a number", `{"messages": [{"role": "user", "content": "hi"}], "user": 7}`, 400, ""},
		{"tools an object", `{"messages": [{"role": "user", "content": "hi"}], "tools": {}, "user": "err"}`, 400, ""},
		{"body over limit", `{"messages": [{"role": "user", "content": "` + strings.Repeat("x", 8000) + `"}], "user": "err"}`, 413, ""},
		{"max_tokens leaves no room", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000, "user": "err"}`, 400, "context_length_exceeded"},
	}
	for _, c := range cases {
		r, err := p.do("POST", "/v1/chat/completions", []byte(c.body), nil)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r.Body)
		}
		e := checkOpenAIError(t, c.name, r.Body)
		if c.code != "" && e.Get("code").Str != c.code {
			t.Errorf("%s: code %s, want %q", c.name, e.Get("code").Raw, c.code)
		}
	}
	if ids := p.listIDs(t); len(ids) != 0 {
		t.Errorf("invalid requests stored contexts: %v", ids)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("invalid requests reached the upstream %d times", n)
	}

	// A last user message that alone exceeds the context.
	big := chatBody(t, []msg{{"user", "short start"}, {"assistant", "ok"}, {"user", strings.Repeat("lorem ipsum dolor ", 700)}}, map[string]any{"user": "toolong"})
	p2 := startProxy(t, proxyOptions{Upstream: fake.URL()}) // default body limit
	r := p2.mustDo(t, "POST", "/v1/chat/completions", big, nil)
	if r.Status != http.StatusBadRequest {
		t.Errorf("too long: status %d, want 400: %s", r.Status, r.Body)
	}
	if e := checkOpenAIError(t, "too long", r.Body); e.Get("code").Str != "context_length_exceeded" {
		t.Errorf("too long: code %s, want context_length_exceeded", e.Get("code").Raw)
	}
	for _, q := range fake.Requests() {
		if strings.Contains(q.Prompt, "lorem ipsum") {
			t.Errorf("the over-long message was forwarded upstream (%d tokens)", q.PromptTokens)
		}
	}
}

// TestUpstreamErrors: upstream failures reach the client as OpenAI error
// JSON with the upstream's status; a retry of the same request then works
// without duplicating memory.
func TestUpstreamErrors(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	body := chatBody(t, []msg{{"user", "Is the upstream feeling well today?"}}, map[string]any{"user": "flaky"})
	streamBody := chatBody(t, []msg{{"user", "Is the upstream feeling well today?"}}, map[string]any{"user": "flaky", "stream": true})

	cases := []struct {
		name   string
		status int
		body   string
		req    []byte
		msg    string
	}{
		{"500 llama.cpp JSON", 500, `{"error":{"code":500,"message":"boom: slot crashed","type":"server_error"}}`, body, "boom: slot crashed"},
		{"503 HTML", 503, `<html><head><title>503 Service Unavailable</title></head><body>down</body></html>`, body, "503"},
		{"503 streamed request", 503, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`, streamBody, "Loading model"},
		{"429", 429, `{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}`, body, "slow down"},
	}
	for _, c := range cases {
		fake.FailNext(c.status, c.body)
		res, err := p.chat(c.req, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, res.Status, c.status, res.Body)
		}
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: content type %q", c.name, res.Header.Get("Content-Type"))
		}
		if e := checkOpenAIError(t, c.name, res.Body); !strings.Contains(e.Get("message").Str, c.msg) {
			t.Errorf("%s: message %q does not contain %q", c.name, e.Get("message").Str, c.msg)
		}
	}
	// The client retries the same request: answered, stored once.
	p.mustChat(t, body, nil)
	p.waitMessages(t, "flaky", 2)

	// An upstream that is down: 502 with an OpenAI error.
	down := startProxy(t, proxyOptions{Upstream: closedPortURL(t)})
	for _, b := range [][]byte{body, streamBody} {
		r := down.mustDo(t, "POST", "/v1/chat/completions", b, nil)
		if r.Status != http.StatusBadGateway {
			t.Errorf("upstream down: status %d, want 502: %s", r.Status, r.Body)
		}
		checkOpenAIError(t, "upstream down", r.Body)
	}
	if r := down.mustDo(t, "GET", "/readyz", nil, nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the upstream down: %d", r.Status)
	}
}

// TestContextRejectionRetry: when the upstream still refuses the prompt
// as too long, the proxy retries once with a smaller window.
func TestContextRejectionRetry(t *testing.T) {
	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	k := newTalker(7)
	var history []msg
	turn := func(stream bool) (*chatResult, error) {
		history = append(history, msg{"user", k.message()})
		res, err := p.chat(chatBody(t, history, map[string]any{"user": "retry", "stream": stream, "max_tokens": 200}), nil)
		if err == nil && res.Status == http.StatusOK {
			history = append(history, msg{"assistant", res.Content})
		} else {
			history = history[:len(history)-1]
		}
		return res, err
	}
	for i := 0; i < 30; i++ {
		if res, err := turn(i%2 == 0); err != nil || res.Status != 200 {
			t.Fatalf("warm-up turn %d: %v %+v", i, err, res)
		}
	}
	for _, stream := range []bool{false, true} {
		n := len(fake.Requests())
		fake.RejectNextContext()
		res, err := turn(stream)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("stream=%v: one rejection should be retried: %v %+v", stream, err, res)
		}
		reqs := fake.Requests()[n:]
		if len(reqs) != 2 || !reqs[0].Rejected || reqs[1].Status != http.StatusOK {
			t.Fatalf("stream=%v: want a rejected request then an answered one, got %d requests", stream, len(reqs))
		}
		if reqs[1].PromptTokens >= reqs[0].PromptTokens {
			t.Errorf("stream=%v: retry is not smaller: %d then %d tokens", stream, reqs[0].PromptTokens, reqs[1].PromptTokens)
		}
	}
	// Rejected three times: the client gets the context error, after two
	// retries with smaller windows.
	n := len(fake.Requests())
	fake.RejectNextContext()
	fake.RejectNextContext()
	fake.RejectNextContext()
	res, err := turn(false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusBadRequest {
		t.Fatalf("three rejections: status %d, want 400: %s", res.Status, res.Body)
	}
	if e := checkOpenAIError(t, "three rejections", res.Body); e.Get("code").Str != "context_length_exceeded" {
		t.Errorf("three rejections: code %s", e.Get("code").Raw)
	}
	reqs := fake.Requests()[n:]
	if len(reqs) != 3 {
		t.Fatalf("three rejections: %d upstream attempts, want 3", len(reqs))
	}
	if reqs[1].PromptTokens >= reqs[0].PromptTokens || reqs[2].PromptTokens >= reqs[1].PromptTokens {
		t.Errorf("three rejections: windows of %d, %d and %d tokens, want smaller each time", reqs[0].PromptTokens, reqs[1].PromptTokens, reqs[2].PromptTokens)
	}
}

// TestConcurrentChatsOneContext: 8 clients chat at once in one MegaContext;
// every message is stored exactly once.
func TestConcurrentChatsOneContext(t *testing.T) {
	const clients, turns = 8, 5
	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := newTalker(uint64(100 + c))
			var history []msg
			for i := 0; i < turns; i++ {
				history = append(history, msg{"user", fmt.Sprintf("Client %d, turn %d. %s", c, i, k.message())})
				res, err := p.chat(chatBody(t, history, map[string]any{"stream": (c+i)%2 == 0, "max_tokens": 128}), map[string]string{"X-MegaContext-Id": "shared"})
				if err != nil || res.Status != http.StatusOK {
					t.Errorf("client %d turn %d: %v %+v", c, i, err, res)
					return
				}
				if got := res.Header.Get("X-MegaContext-Id"); got != "shared" {
					t.Errorf("client %d: X-MegaContext-Id %q", c, got)
				}
				history = append(history, msg{"assistant", res.Content})
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st := p.waitMessages(t, "shared", clients*turns*2)
	if st.Threads != clients || st.Superseded != 0 || st.Partial != 0 {
		t.Errorf("stats %+v: want %d threads, nothing superseded or partial", st, clients)
	}
	checkAllFit(t, fake)
}

// TestHeadersAndAdmin: window headers on answers, and the admin API:
// list, stats, dry-run window (stores nothing), delete.
func TestHeadersAndAdmin(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	const id = "admin-ctx"
	history := []msg{{"system", "You are terse."}}
	texts := []string{
		"My favourite tea is a smoky lapsang souchong from the shop near the harbour.",
		"I am planning a hike on the Rota Vicentina in April with two friends.",
		"Remind me later that the dentist appointment moved to Thursday at nine.",
	}
	for i, text := range texts {
		history = append(history, msg{"user", text})
		res := p.mustChat(t, chatBody(t, history, map[string]any{"stream": i == 1}), map[string]string{"X-MegaContext-Id": id})
		checkWindowHeaders(t, "turn "+strconv.Itoa(i), res.Header, id, 4096)
		// The new user message, plus the previous answer when the client
		// resent it before the proxy's background store of it ran.
		if got := res.Header.Get("X-MegaContext-New-Messages"); i > 0 && got != "1" && got != "2" {
			t.Errorf("turn %d: X-MegaContext-New-Messages %q, want 1 or 2", i, got)
		}
		history = append(history, msg{"assistant", res.Content})
	}
	// A second context, by the user field.
	p.mustChat(t, chatBody(t, []msg{{"user", "hello"}}, map[string]any{"user": "other-ctx"}), nil)

	if ids := p.listIDs(t); !slices.Contains(ids, id) || !slices.Contains(ids, "other-ctx") {
		t.Errorf("list = %v", ids)
	}
	st := p.waitMessages(t, id, len(history))
	if st.Tokens <= 0 || st.Blocks <= 0 || st.Threads != 1 {
		t.Errorf("stats %+v", st)
	}

	r := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"query": "when is the dentist appointment?"}`), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("dry run: %d %s", r.Status, r.Body)
	}
	if mem := gjson.GetBytes(r.Body, "memory").Str; !strings.Contains(mem, "Thursday at nine") {
		t.Errorf("dry-run memory lacks the appointment: %s", r.Body)
	}
	if gjson.GetBytes(r.Body, "budget").Int() <= 0 || len(gjson.GetBytes(r.Body, "entries").Array()) == 0 {
		t.Errorf("dry run: %s", r.Body)
	}
	if st2, _ := p.stats(t, id); st2 != st {
		t.Errorf("dry run changed the context: %+v -> %+v", st, st2)
	}
	r = p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"budget": 10}`), nil)
	if r.Status != http.StatusBadRequest {
		t.Errorf("dry run without query: %d", r.Status)
	}
	checkOpenAIError(t, "dry run without query", r.Body)

	r = p.mustDo(t, "DELETE", "/megacontext/v1/contexts/"+id, nil, nil)
	if r.Status != http.StatusOK || !gjson.GetBytes(r.Body, "deleted").Bool() {
		t.Errorf("delete: %d %s", r.Status, r.Body)
	}
	if _, found := p.stats(t, id); found {
		t.Errorf("stats found after delete")
	}
	r = p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id, nil, nil)
	checkOpenAIError(t, "stats after delete", r.Body)
	if ids := p.listIDs(t); slices.Contains(ids, id) || !slices.Contains(ids, "other-ctx") {
		t.Errorf("list after delete = %v", ids)
	}
	// The id starts afresh.
	p.mustChat(t, chatBody(t, []msg{{"user", "new beginning"}}, nil), map[string]string{"X-MegaContext-Id": id})
	p.waitMessages(t, id, 2)
	if r := p.mustDo(t, "GET", "/megacontext/v1/nothing", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown admin route: %d", r.Status)
	}
}

// runConversation chats turns turns (resending the history) and returns
// the history.
func runConversation(t *testing.T, p *proxy, user string, turns, maxTokens int, seed uint64) []msg {
	t.Helper()
	k := newTalker(seed)
	var history []msg
	for i := 0; i < turns; i++ {
		history = append(history, msg{"user", k.message()})
		res := p.mustChat(t, chatBody(t, history, map[string]any{"user": user, "max_tokens": maxTokens, "stream": i%3 == 2}), nil)
		history = append(history, msg{"assistant", res.Content})
	}
	return history
}

// TestVLLMStyle: with a vLLM-like upstream the context size comes from
// /v1/models max_model_len, and vLLM's stricter check (prompt + max_tokens
// must fit) is never tripped.
func TestVLLMStyle(t *testing.T) {
	fake := newFake(t, fakellama.Options{Style: fakellama.StyleVLLM, NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	runConversation(t, p, "vllm-user", 40, 300, 11)
	reqs := checkAllFit(t, fake)
	if len(reqs) != 40 {
		t.Errorf("upstream saw %d requests for 40 turns (retries mean a rejected window)", len(reqs))
	}
	if last := reqs[len(reqs)-1]; last.PromptTokens < 1000 {
		t.Errorf("last prompt only %d tokens: the window does not use the discovered context", last.PromptTokens)
	}
}

// TestOpenAIStyle: an upstream without tokenizer or context discovery;
// counts are estimated and the context size comes from --n-ctx.
func TestOpenAIStyle(t *testing.T) {
	fake := newFake(t, fakellama.Options{Style: fakellama.StyleOpenAI, NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Args: []string{"--n-ctx", "2048"}})
	runConversation(t, p, "openai-user", 40, 300, 13)
	reqs := checkAllFit(t, fake)
	if len(reqs) != 40 {
		t.Errorf("upstream saw %d requests for 40 turns (retries mean a rejected window)", len(reqs))
	}
}
