package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// fakeTokens is the test tokenizer: one token per whitespace-separated word,
// plus a BOS token when special tokens are added.
func fakeTokens(s string, special bool) int {
	n := len(strings.Fields(s))
	if special {
		n++
	}
	return n
}

// fakeTemplate renders messages like a chat template: "<s>ROLE: content
// </s>" per message (2 tokens of overhead each) and "<s>ASSISTANT:" as the
// generation prompt (1 token).
func fakeTemplate(msgs []chatMsg) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "<s>%s: %s </s>\n", strings.ToUpper(m.Role), m.Content)
	}
	b.WriteString("<s>ASSISTANT:")
	return b.String()
}

type fakeServer struct {
	*httptest.Server
	tokenizeCalls atomic.Int64
	inflight      atomic.Int64
	maxInflight   atomic.Int64
	// batch makes /tokenize take a "content" array of texts and token ids,
	// as llama.cpp does (tokenize_mixed); without it only a string.
	batch bool
}

// newLlamaServer fakes llama.cpp: /props (with the given body), /v1/models,
// /health, /tokenize and /apply-template.
func newLlamaServer(t *testing.T, props string) *fakeServer {
	return startLlamaFake(t, props, false)
}

// newBatchLlamaServer is newLlamaServer whose /tokenize takes batches.
func newBatchLlamaServer(t *testing.T, props string) *fakeServer {
	return startLlamaFake(t, props, true)
}

func startLlamaFake(t *testing.T, props string, batch bool) *fakeServer {
	fs := &fakeServer{batch: batch}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /props", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, props)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"served-alias","object":"model","owned_by":"llamacpp","meta":{"n_ctx_train":131072}}]}`)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		fs.tokenizeCalls.Add(1)
		n := fs.inflight.Add(1)
		defer fs.inflight.Add(-1)
		for {
			m := fs.maxInflight.Load()
			if n <= m || fs.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		var req struct {
			Content    json.RawMessage `json:"content"`
			AddSpecial bool            `json:"add_special"`
		}
		var text string
		var parts []any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Content == nil ||
			(json.Unmarshal(req.Content, &text) != nil && (!fs.batch || json.Unmarshal(req.Content, &parts) != nil)) {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"code":400,"message":"\"content\" must be provided","type":"invalid_request_error"}}`)
			return
		}
		if parts != nil {
			toks := []int{}
			for _, p := range parts {
				switch v := p.(type) {
				case string:
					text += v
					toks = append(toks, make([]int, fakeTokens(v, false))...)
				case float64:
					toks = append(toks, int(v))
				}
			}
			if strings.Contains(text, "FAIL") {
				w.WriteHeader(500)
				io.WriteString(w, `{"error":{"code":500,"message":"tokenizer exploded","type":"server_error"}}`)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"tokens": toks})
			return
		}
		req.Content = nil
		content := &text
		if strings.Contains(*content, "FAIL") {
			w.WriteHeader(500)
			io.WriteString(w, `{"error":{"code":500,"message":"tokenizer exploded","type":"server_error"}}`)
			return
		}
		if strings.Contains(*content, "SLOW") {
			time.Sleep(20 * time.Millisecond)
		}
		n2 := fakeTokens(*content, req.AddSpecial)
		toks := make([]int, n2)
		json.NewEncoder(w).Encode(map[string]any{"tokens": toks})
	})
	mux.HandleFunc("POST /apply-template", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []chatMsg `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		json.NewEncoder(w).Encode(map[string]string{"prompt": fakeTemplate(req.Messages)})
	})
	fs.Server = httptest.NewServer(mux)
	t.Cleanup(fs.Close)
	return fs
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewValidation(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "http://h/v1", "http://h/v1/", "http://h/?q=1", "::bad"} {
		if _, err := New(Options{BaseURL: u}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	c, err := New(Options{BaseURL: "https://api.example.com/prefix/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "https://api.example.com/prefix" || c.addr != "api.example.com:443" {
		t.Errorf("base %q addr %q", c.BaseURL(), c.addr)
	}
}

func TestDiscoverLlamaCpp(t *testing.T) {
	cases := []struct {
		name      string
		props     string
		model     string
		nctx      int
		canTok    bool
		perMsg    int
		fixed     int
		tokenizer bool
		path      string
		slots     int
	}{
		{"current", `{"default_generation_settings":{"id":0,"n_ctx":8192,"params":{"n_predict":-1}},"total_slots":4,"model_alias":"qwen3","model_path":"/models/qwen3.gguf","chat_template":"...","build_info":"b6000"}`,
			"qwen3", 8192, true, 2, 2, true, "/models/qwen3.gguf", 4},
		// llama.cpp without --alias reports the file path as model_alias.
		{"alias is the path", `{"default_generation_settings":{"n_ctx":512},"total_slots":4,"model_alias":"/work/shared/models/stories260K.gguf","model_path":"/work/shared/models/stories260K.gguf","build_info":"b1-de3ff81"}`,
			"stories260K.gguf", 512, true, 2, 2, true, "/work/shared/models/stories260K.gguf", 4},
		{"2024 shape without alias", `{"system_prompt":"","default_generation_settings":{"n_ctx":2048,"model":"/m/llama.gguf","seed":-1},"total_slots":1,"chat_template":""}`,
			"served-alias", 2048, true, 2, 2, true, "", 1},
		{"old top-level n_ctx", `{"assistant_name":"","user_name":"","n_ctx":4096,"model_path":"/m/phi-3.gguf"}`,
			"phi-3.gguf", 4096, true, 2, 2, true, "/m/phi-3.gguf", 0},
		{"no n_ctx", `{"default_generation_settings":{},"total_slots":1}`, "served-alias", 0, true, 2, 2, true, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newLlamaServer(t, tc.props)
			c := newClient(t, Options{BaseURL: srv.URL})
			if _, ok := c.LastInfo(); ok {
				t.Fatal("LastInfo before Discover")
			}
			info, err := c.Discover(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := Info{Kind: KindLlamaCpp, Model: tc.model, NCtx: tc.nctx, CanTokenize: tc.canTok,
				ModelPath: tc.path, Slots: tc.slots, TemplateOverhead: TemplateCost{PerMessage: tc.perMsg, Fixed: tc.fixed}}
			if info != want {
				t.Fatalf("info = %+v, want %+v", info, want)
			}
			if li, ok := c.LastInfo(); !ok || li != info {
				t.Fatalf("LastInfo = %+v %v", li, ok)
			}
			// The measured overhead predicts the real prompt size.
			msgs := []chatMsg{{"user", "a b c"}, {"assistant", "d e"}, {"user", "f"}, {"assistant", "g h i j"}}
			real := fakeTokens(fakeTemplate(msgs), true)
			est := info.TemplateOverhead.Fixed
			for _, m := range msgs {
				est += info.TemplateOverhead.PerMessage + fakeTokens(m.Content, false)
			}
			if est != real {
				t.Errorf("estimate %d != real %d", est, real)
			}
		})
	}
}

// newVLLMServer fakes vLLM: no /props, /v1/models with max_model_len and a
// /tokenize that accepts prompt or messages.
func newVLLMServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[{"id":"meta-llama/Llama-3.1-8B-Instruct","object":"model","created":1,"owned_by":"vllm","root":"meta-llama/Llama-3.1-8B-Instruct","parent":null,"max_model_len":32768,"permission":[]}]}`)
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /tokenize", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model               string    `json:"model"`
			Prompt              *string   `json:"prompt"`
			Messages            []chatMsg `json:"messages"`
			AddSpecialTokens    *bool     `json:"add_special_tokens"`
			AddGenerationPrompt bool      `json:"add_generation_prompt"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if req.Model != "meta-llama/Llama-3.1-8B-Instruct" {
			w.WriteHeader(404)
			io.WriteString(w, `{"object":"error","message":"The model does not exist.","type":"NotFoundError","param":null,"code":404}`)
			return
		}
		var n int
		switch {
		case req.Prompt != nil:
			special := req.AddSpecialTokens == nil || *req.AddSpecialTokens
			n = fakeTokens(*req.Prompt, special)
		case req.Messages != nil && req.AddGenerationPrompt:
			n = fakeTokens(fakeTemplate(req.Messages), true)
		default:
			w.WriteHeader(400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"count": n, "max_model_len": 32768, "tokens": make([]int, n), "token_strs": nil})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscoverVLLM(t *testing.T) {
	srv := newVLLMServer(t)
	c := newClient(t, Options{BaseURL: srv.URL})
	info, err := c.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Kind: KindVLLM, Model: "meta-llama/Llama-3.1-8B-Instruct", NCtx: 32768, CanTokenize: true,
		TemplateOverhead: TemplateCost{PerMessage: 2, Fixed: 2}}
	if info != want {
		t.Fatalf("info = %+v, want %+v", info, want)
	}
	got, err := c.CountTokens(context.Background(), []string{"one two three", "", "four"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[3 0 1]" {
		t.Fatalf("counts = %v", got)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverOpenAICompatible(t *testing.T) {
	// Ollama-like: only the OpenAI surface.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-up" {
			w.WriteHeader(401)
			return
		}
		io.WriteString(w, `{"object":"list","data":[{"id":"llama3.2:latest","object":"model","created":1,"owned_by":"library"}]}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, Options{BaseURL: srv.URL, APIKey: "sk-up"})
	// Ready before Discover: /health is 404, so /v1/models decides.
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	info, err := c.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := (Info{Kind: KindOpenAI, Model: "llama3.2:latest"}); info != want {
		t.Fatalf("info = %+v, want %+v", info, want)
	}
	_, err = c.CountTokens(context.Background(), []string{"x"})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("CountTokens err = %v, want ErrUnsupported", err)
	}
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverFailures(t *testing.T) {
	// Nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newClient(t, Options{BaseURL: "http://" + addr})
	_, err = c.Discover(context.Background())
	if err == nil {
		t.Fatal("Discover succeeded with nothing listening")
	}
	if st, body := FromTransportError(err); st != 502 || gjson.GetBytes(body, "error.code").String() != CodeUpstreamUnavailable {
		t.Fatalf("FromTransportError = %d %s", st, body)
	}
	if err := c.Ready(context.Background()); err == nil {
		t.Fatal("Ready succeeded with nothing listening")
	}

	// A server that knows none of the endpoints.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c = newClient(t, Options{BaseURL: srv.URL})
	if _, err := c.Discover(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Discover err = %v, want a 404", err)
	}
}

func TestCountTokens(t *testing.T) {
	srv := newLlamaServer(t, `{"default_generation_settings":{"n_ctx":4096}}`)
	c := newClient(t, Options{BaseURL: srv.URL, TokenizeConcurrency: 3})
	// No Discover: CountTokens discovers by itself.
	texts := []string{"a b", "", "c d e SLOW", "a b", "f", "g h SLOW", "i SLOW", "j k l m SLOW", "n SLOW", "o SLOW"}
	got, err := c.CountTokens(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range texts {
		if got[i] != fakeTokens(s, false) {
			t.Errorf("count[%d] = %d, want %d", i, got[i], fakeTokens(s, false))
		}
	}
	if m := srv.maxInflight.Load(); m > 3 || m < 2 {
		t.Errorf("max in-flight tokenize = %d, want 2..3", m)
	}
	before := srv.tokenizeCalls.Load()
	if _, err := c.CountTokens(context.Background(), []string{"x y", "x y", "x y", ""}); err != nil {
		t.Fatal(err)
	}
	if n := srv.tokenizeCalls.Load() - before; n != 1 {
		t.Errorf("%d tokenize calls for one distinct text", n)
	}
	if out, err := c.CountTokens(context.Background(), nil); err != nil || len(out) != 0 {
		t.Errorf("empty input: %v %v", out, err)
	}

	_, err = c.CountTokens(context.Background(), []string{"ok", "FAIL here", "fine"})
	if err == nil || !strings.Contains(err.Error(), "tokenizer exploded") || !strings.Contains(err.Error(), "text 1") {
		t.Fatalf("err = %v, want the upstream message for text 1", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.CountTokens(ctx, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled err = %v", err)
	}
}

// TestCountTokensBatched: an upstream whose /tokenize takes a content
// array (llama.cpp) counts every text of a call in one request, with the
// counts each text gets alone; one that does not is asked text by text.
func TestCountTokensBatched(t *testing.T) {
	srv := newBatchLlamaServer(t, `{"default_generation_settings":{"n_ctx":4096}}`)
	c := newClient(t, Options{BaseURL: srv.URL})
	info, err := c.Discover(context.Background())
	if err != nil || !info.BatchTokenize {
		t.Fatalf("Discover: %+v %v, want BatchTokenize", info, err)
	}
	texts := []string{"a b", "", "c d e", "a b", "f", "g h", "i", "j k l m"}
	before := srv.tokenizeCalls.Load()
	got, err := c.CountTokens(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.tokenizeCalls.Load() - before; n != 1 {
		t.Errorf("%d /tokenize requests for one batch, want 1", n)
	}
	for i, s := range texts {
		if got[i] != fakeTokens(s, false) {
			t.Errorf("count[%d] = %d, want %d", i, got[i], fakeTokens(s, false))
		}
	}
	// A batch larger than maxBatchBytes is split, and still counted right.
	big := strings.Repeat("w ", maxBatchBytes/4)
	before = srv.tokenizeCalls.Load()
	got, err = c.CountTokens(context.Background(), []string{big, "x y", big + "z"})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != maxBatchBytes/4 || got[1] != 2 || got[2] != maxBatchBytes/4+1 {
		t.Errorf("big batch counts %v", got)
	}
	if n := srv.tokenizeCalls.Load() - before; n != 2 {
		t.Errorf("%d requests for a megabyte and a bit, want 2", n)
	}
	if _, err := c.CountTokens(context.Background(), []string{"ok", "FAIL here"}); err == nil || !strings.Contains(err.Error(), "tokenizer exploded") {
		t.Errorf("err = %v, want the upstream's message", err)
	}

	plain := newLlamaServer(t, `{"default_generation_settings":{"n_ctx":4096}}`)
	c = newClient(t, Options{BaseURL: plain.URL})
	if info, err := c.Discover(context.Background()); err != nil || info.BatchTokenize {
		t.Fatalf("Discover on a server without batches: %+v %v", info, err)
	}
	before = plain.tokenizeCalls.Load()
	if got, err := c.CountTokens(context.Background(), []string{"a b", "c"}); err != nil || got[0] != 2 || got[1] != 1 {
		t.Fatalf("counts %v %v", got, err)
	}
	if n := plain.tokenizeCalls.Load() - before; n != 2 {
		t.Errorf("%d requests, want one per text", n)
	}
}

func TestReady(t *testing.T) {
	var loading atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		if loading.Load() {
			w.WriteHeader(503)
			io.WriteString(w, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`)
			return
		}
		io.WriteString(w, `{"status":"ok"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := newClient(t, Options{BaseURL: srv.URL})
	if err := c.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	loading.Store(true)
	err := c.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "Loading model") {
		t.Fatalf("err = %v", err)
	}
}

// streamServer serves /v1/chat/completions by running handler.
func streamServer(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

// readUntil reads from r until the accumulated data contains want.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	for !strings.Contains(string(got), want) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read: %v (have %q, want %q)", err, got, want)
		}
	}
	return string(got)
}

func TestDoStreamsWithoutBuffering(t *testing.T) {
	got1 := make(chan struct{})
	srv := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if string(body) != `{"stream":true}` {
			t.Errorf("body = %q", body)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Upstream", "1")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-got1: // the client has chunk 1: it was not waiting for the end
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" two\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
	})
	c := newClient(t, Options{BaseURL: srv.URL})
	resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Status != 200 || !resp.IsEventStream() || resp.ContentLength != -1 || resp.Header.Get("X-Upstream") != "1" {
		t.Fatalf("resp = %+v", resp)
	}
	if resp.Header.Get("Transfer-Encoding") != "" || resp.Header.Get("Connection") != "" {
		t.Errorf("hop-by-hop headers leaked: %v", resp.Header)
	}
	r := NewSSEReader(resp.Body)
	var acc Accumulator
	ev, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	acc.AddEvent(ev)
	close(got1)
	var raw strings.Builder
	raw.Write(ev.Raw)
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(ev.Raw)
		acc.AddEvent(ev)
	}
	m := acc.Message()
	if m.Content != "one two" || m.FinishReason != "stop" || !m.Done {
		t.Fatalf("message = %+v", m)
	}
	if !strings.HasSuffix(raw.String(), "data: [DONE]\n\n") {
		t.Fatalf("raw = %q", raw.String())
	}
}

// stallServer answers after writing prefix (nothing at all if empty) by
// stalling until the client disconnects, which it reports on gone.
func stallServer(t *testing.T, prefix string) (*httptest.Server, chan struct{}, chan struct{}) {
	started := make(chan struct{}, 1)
	gone := make(chan struct{}, 1)
	srv := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if prefix != "" {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, prefix)
			w.(http.Flusher).Flush()
		}
		select {
		case started <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
			select {
			case gone <- struct{}{}:
			default:
			}
		case <-time.After(10 * time.Second):
		}
	})
	return srv, started, gone
}

func waitGone(t *testing.T, gone chan struct{}) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(time.Second):
		t.Fatal("the upstream did not observe the disconnect within 1s")
	}
}

func TestDoCancelBeforeHeaders(t *testing.T) {
	srv, started, gone := stallServer(t, "")
	c := newClient(t, Options{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	t0 := time.Now()
	_, err := c.Do(ctx, "POST", "/v1/chat/completions", nil, []byte(`{}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Do returned after %v", d)
	}
	waitGone(t, gone)
	if st, _ := FromTransportError(err); st != StatusClientClosedRequest {
		t.Errorf("status = %d", st)
	}
	// The lane is usable again: a second request reaches the server.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel2()
	}()
	if _, err := c.Do(ctx2, "POST", "/v1/chat/completions", nil, []byte(`{}`)); !errors.Is(err, context.Canceled) {
		t.Fatalf("second err = %v", err)
	}
	waitGone(t, gone)
}

func TestDoCancelDuringBody(t *testing.T) {
	srv, started, gone := stallServer(t, "data: first\n\n")
	c := newClient(t, Options{BaseURL: srv.URL})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := c.Do(ctx, "POST", "/v1/chat/completions", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started
	readUntil(t, resp.Body, "data: first\n\n")
	errc := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 64))
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read err = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Read did not return within 1s of cancel")
	}
	waitGone(t, gone)
}

func TestDoCloseEarlyDisconnects(t *testing.T) {
	srv, started, gone := stallServer(t, "data: first\n\n")
	c := newClient(t, Options{BaseURL: srv.URL})
	resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	readUntil(t, resp.Body, "first")
	// Close while a Read is blocked: both must return promptly.
	errc := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 64))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the Read block (not needed for correctness)
	t0 := time.Now()
	resp.Body.Close()
	if d := time.Since(t0); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("blocked Read returned nil after Close")
		}
	case <-time.After(time.Second):
		t.Fatal("blocked Read did not return after Close")
	}
	waitGone(t, gone)
}

func TestDoTimeouts(t *testing.T) {
	t.Run("headers", func(t *testing.T) {
		srv, _, gone := stallServer(t, "")
		c := newClient(t, Options{BaseURL: srv.URL, Timeout: 150 * time.Millisecond})
		t0 := time.Now()
		_, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{}`))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if d := time.Since(t0); d < 100*time.Millisecond || d > time.Second {
			t.Fatalf("timed out after %v", d)
		}
		if st, body := FromTransportError(err); st != 504 || gjson.GetBytes(body, "error.code").String() != CodeUpstreamTimeout {
			t.Fatalf("FromTransportError = %d %s", st, body)
		}
		waitGone(t, gone)
	})
	t.Run("body silence", func(t *testing.T) {
		srv, _, gone := stallServer(t, "data: first\n\n")
		c := newClient(t, Options{BaseURL: srv.URL, Timeout: 150 * time.Millisecond})
		resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		readUntil(t, resp.Body, "first")
		_, err = resp.Body.Read(make([]byte, 10))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		waitGone(t, gone)
	})
	t.Run("context deadline", func(t *testing.T) {
		srv, _, gone := stallServer(t, "")
		c := newClient(t, Options{BaseURL: srv.URL})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := c.Do(ctx, "POST", "/x", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v", err)
		}
		if st, _ := FromTransportError(err); st != 504 {
			t.Fatalf("status %d", st)
		}
		waitGone(t, gone)
	})
	t.Run("slow consumer is not silence", func(t *testing.T) {
		srv := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "data: a\n\ndata: b\n\n")
		})
		c := newClient(t, Options{BaseURL: srv.URL, Timeout: 50 * time.Millisecond})
		resp, err := c.Do(context.Background(), "GET", "/", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		time.Sleep(150 * time.Millisecond) // longer than Timeout without reading
		if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "data: a\n\ndata: b\n\n" {
			t.Fatalf("body %q err %v", b, err)
		}
	})
}

func TestDoHeadersAndPaths(t *testing.T) {
	var seen http.Header
	var seenURI, seenHost string
	srv := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		seenURI = r.RequestURI
		seenHost = r.Host
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.WriteHeader(400)
		io.WriteString(w, llamaCtxErr)
	})
	c := newClient(t, Options{BaseURL: srv.URL + "/gw/", APIKey: "sk-upstream"})
	hdr := http.Header{
		"Authorization":   {"Bearer tenant-key"},
		"Connection":      {"close"},
		"Accept-Encoding": {"gzip"},
		"X-Custom":        {"a", "b"},
		"Te":              {"trailers"},
	}
	resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions?x=1&y=%2F", hdr, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if seenURI != "/gw/v1/chat/completions?x=1&y=%2F" {
		t.Errorf("URI = %q", seenURI)
	}
	if seenHost != strings.TrimPrefix(srv.URL, "http://") {
		t.Errorf("Host = %q", seenHost)
	}
	if got := seen.Get("Authorization"); got != "Bearer sk-upstream" {
		t.Errorf("Authorization = %q", got)
	}
	if seen.Get("Accept-Encoding") != "" || seen.Get("Te") != "" {
		t.Errorf("hop headers forwarded: %v", seen)
	}
	if got := seen.Values("X-Custom"); len(got) != 2 {
		t.Errorf("X-Custom = %v", got)
	}
	if seen.Get("Content-Type") != "application/json" || seen.Get("Content-Length") != "7" {
		t.Errorf("content headers: %v", seen)
	}
	if resp.Status != 400 || resp.ContentLength != int64(len(llamaCtxErr)) || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("resp = %+v", resp)
	}
	if !IsContextLengthError(resp.Status, body) {
		t.Errorf("context error not recognized in %s", body)
	}
}

func TestDoKeepAliveAndStaleRetry(t *testing.T) {
	var mu sync.Mutex
	var addrs []string
	srv := streamServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		addrs = append(addrs, r.RemoteAddr)
		mu.Unlock()
		io.WriteString(w, `{"ok":true}`)
	})
	c := newClient(t, Options{BaseURL: srv.URL, MaxConns: 1})
	do := func() {
		t.Helper()
		resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != `{"ok":true}` {
			t.Fatalf("body %q err %v", b, err)
		}
	}
	do()
	do()
	mu.Lock()
	if len(addrs) != 2 || addrs[0] != addrs[1] {
		t.Errorf("connection not reused: %v", addrs)
	}
	mu.Unlock()
	// The server drops idle connections: the POST must transparently go
	// out again on a fresh connection.
	srv.CloseClientConnections()
	do()
	mu.Lock()
	if len(addrs) != 3 || addrs[2] == addrs[0] {
		t.Errorf("no fresh connection after the server closed it: %v", addrs)
	}
	mu.Unlock()
}

func TestDoMaxConnsWaitsForContext(t *testing.T) {
	srv, started, _ := stallServer(t, "data: x\n\n")
	c := newClient(t, Options{BaseURL: srv.URL, MaxConns: 1})
	first, err := c.Do(context.Background(), "POST", "/a", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Do(ctx, "POST", "/b", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Do err = %v, want DeadlineExceeded", err)
	}
	first.Body.Close()
	// The connection slot is free again.
	third, err := c.Do(context.Background(), "POST", "/c", nil, nil)
	if err != nil {
		t.Fatalf("third Do err = %v", err)
	}
	readUntil(t, third.Body, "data: x")
	third.Body.Close()
}

func TestDoAfterClose(t *testing.T) {
	c := newClient(t, Options{BaseURL: "http://127.0.0.1:1"})
	c.Close()
	if _, err := c.Do(context.Background(), "GET", "/", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

// TestDoRawUpstream checks framing the net/http test server never produces:
// a read-until-close body and a fixed-length event stream.
func TestDoRawUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: raw\n\n")
			}()
		}
	}()
	c := newClient(t, Options{BaseURL: "http://" + ln.Addr().String()})
	for i := 0; i < 3; i++ {
		resp, err := c.Do(context.Background(), "POST", "/", nil, []byte("{}"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "data: raw\n\n" || resp.ContentLength != -1 {
			t.Fatalf("body %q err %v len %d", b, err, resp.ContentLength)
		}
	}
}

func TestDoTLS(t *testing.T) {
	got1 := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-got1:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: 2\n\n")
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c := newClient(t, Options{BaseURL: srv.URL, TLSConfig: &tls.Config{RootCAs: pool}})
	resp, err := c.Do(context.Background(), "POST", "/v1/chat/completions", nil, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readUntil(t, resp.Body, "data: 1\n\n")
	close(got1)
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "data: 2\n\n" {
		t.Fatalf("rest %q err %v", b, err)
	}
}
