package fakellama

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s := New(opts)
	t.Cleanup(s.Close)
	return s
}

func do(t *testing.T, method, url, body string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return m
}

// userOfTokens returns one user message whose prompt is exactly n tokens.
func userOfTokens(t *testing.T, n int) []Message {
	t.Helper()
	base := PromptTokens([]Message{{Role: "user", Content: "x"}})
	if n < base {
		t.Fatalf("cannot build a %d-token prompt (minimum %d)", n, base)
	}
	msgs := []Message{{Role: "user", Content: "x" + strings.Repeat(" a", n-base)}}
	if got := PromptTokens(msgs); got != n {
		t.Fatalf("built %d tokens, want %d", got, n)
	}
	return msgs
}

func chatBody(t *testing.T, msgs []Message, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"model": "m", "messages": msgs}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInfoEndpointsLlamaCpp(t *testing.T) {
	s := newServer(t, Options{NCtx: 2048, NCtxTrain: 32768})
	code, b, _ := do(t, "GET", s.URL()+"/health", "")
	if code != 200 || string(b) != `{"status":"ok"}` {
		t.Errorf("/health = %d %s", code, b)
	}
	code, b, _ = do(t, "GET", s.URL()+"/props", "")
	props := decode(t, b)
	dgs, _ := props["default_generation_settings"].(map[string]any)
	if code != 200 || dgs["n_ctx"] != 2048.0 || props["total_slots"] != 1.0 || props["model_path"] != ModelPath ||
		props["chat_template"] != ChatTemplate || props["build_info"] != BuildInfo {
		t.Errorf("/props = %d %s", code, b)
	}
	if !bytes.Contains(b, []byte("<|im_start|>")) {
		t.Errorf("/props escapes HTML: %s", b)
	}
	code, b, _ = do(t, "GET", s.URL()+"/v1/models", "")
	data := decode(t, b)["data"].([]any)[0].(map[string]any)
	meta := data["meta"].(map[string]any)
	if code != 200 || data["owned_by"] != "llamacpp" || meta["n_ctx"] != 2048.0 || meta["n_ctx_train"] != 32768.0 {
		t.Errorf("/v1/models = %d %s", code, b)
	}
	if code, _, _ := do(t, "GET", s.URL()+"/nope", ""); code != 404 {
		t.Errorf("unknown path = %d", code)
	}
}

func TestInfoEndpointsOtherStyles(t *testing.T) {
	v := newServer(t, Options{NCtx: 1000, Style: StyleVLLM})
	if code, _, _ := do(t, "GET", v.URL()+"/props", ""); code != 404 {
		t.Errorf("vllm /props = %d", code)
	}
	code, b, _ := do(t, "GET", v.URL()+"/v1/models", "")
	data := decode(t, b)["data"].([]any)[0].(map[string]any)
	if code != 200 || data["max_model_len"] != 1000.0 || data["owned_by"] != "vllm" {
		t.Errorf("vllm /v1/models = %d %s", code, b)
	}
	code, b, _ = do(t, "POST", v.URL()+"/tokenize", `{"prompt":"hello"}`)
	if m := decode(t, b); code != 200 || m["count"] != 2.0 || m["max_model_len"] != 1000.0 {
		t.Errorf("vllm /tokenize = %d %s", code, b)
	}
	o := newServer(t, Options{Style: StyleOpenAI})
	for _, p := range []string{"/health", "/props"} {
		if code, _, _ := do(t, "GET", o.URL()+p, ""); code != 404 {
			t.Errorf("openai %s = %d", p, code)
		}
	}
	if code, _, _ := do(t, "POST", o.URL()+"/tokenize", `{"content":"x"}`); code != 404 {
		t.Errorf("openai /tokenize = %d", code)
	}
	if _, err := Start(Options{Style: "ollama"}); err == nil {
		t.Error("unknown style accepted")
	}
}

func TestNoTokenize(t *testing.T) {
	s := newServer(t, Options{NoTokenize: true})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/tokenize", `{"content":"x"}`},
		{"POST", "/detokenize", `{"tokens":[1]}`},
		{"POST", "/apply-template", `{"messages":[]}`},
		{"GET", "/props", ""},
	} {
		if code, _, _ := do(t, c.method, s.URL()+c.path, c.body); code != 404 {
			t.Errorf("%s %s = %d, want 404", c.method, c.path, code)
		}
	}
	if code, _, _ := do(t, "GET", s.URL()+"/health", ""); code != 200 {
		t.Errorf("/health = %d", code)
	}
}

func TestTokenizeEndpoints(t *testing.T) {
	s := newServer(t, Options{})
	text := "<|im_start|>user\nHello world 42!<|im_end|>"
	code, b, _ := do(t, "POST", s.URL()+"/tokenize", `{"content":"<|im_start|>user\nHello world 42!<|im_end|>","add_special":true}`)
	var got struct{ Tokens []int }
	if err := json.Unmarshal(b, &got); err != nil || code != 200 {
		t.Fatalf("/tokenize = %d %s", code, b)
	}
	if !reflect.DeepEqual(got.Tokens, Tokenize(text)) {
		t.Errorf("/tokenize = %v, want %v", got.Tokens, Tokenize(text))
	}
	_, b, _ = do(t, "POST", s.URL()+"/tokenize", `{"content":"Hi <|im_end|>","with_pieces":true,"parse_special":false}`)
	var wp struct {
		Tokens []struct {
			ID    int
			Piece string
		}
	}
	if err := json.Unmarshal(b, &wp); err != nil || len(wp.Tokens) != 8 || wp.Tokens[0].Piece != "Hi" || wp.Tokens[0].ID != PieceID("Hi") {
		t.Errorf("with_pieces = %s", b)
	}
	ids, _ := json.Marshal(got.Tokens)
	_, b, _ = do(t, "POST", s.URL()+"/detokenize", `{"tokens":`+string(ids)+`}`)
	if m := decode(t, b); m["content"] != text {
		t.Errorf("/detokenize = %s, want %q", b, text)
	}
	msgs := []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}}
	_, b, _ = do(t, "POST", s.URL()+"/apply-template", chatBody(t, msgs, nil))
	if m := decode(t, b); m["prompt"] != ApplyTemplate(msgs) {
		t.Errorf("/apply-template = %s", b)
	}
}

func TestContextRejectionExactness(t *testing.T) {
	const nCtx = 64
	s := newServer(t, Options{NCtx: nCtx})

	code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, nCtx-1), nil))
	if code != 200 {
		t.Fatalf("n_ctx-1 tokens: %d %s", code, b)
	}
	m := decode(t, b)
	choice := m["choices"].([]any)[0].(map[string]any)
	usage := m["usage"].(map[string]any)
	// One token of room: generation stops at the context limit.
	if choice["finish_reason"] != "length" || usage["completion_tokens"] != 1.0 || usage["prompt_tokens"] != float64(nCtx-1) {
		t.Errorf("n_ctx-1 tokens answered %s", b)
	}

	for _, stream := range []bool{false, true} {
		code, b, h := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, nCtx), map[string]any{"stream": stream}))
		if code != 400 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Fatalf("n_ctx tokens (stream %v): %d %s", stream, code, b)
		}
		want := map[string]any{"error": map[string]any{
			"code":            400.0,
			"message":         "request (64 tokens) exceeds the available context size (64 tokens), try increasing it",
			"type":            "exceed_context_size_error",
			"n_prompt_tokens": 64.0,
			"n_ctx":           64.0,
		}}
		if got := decode(t, b); !reflect.DeepEqual(got, want) {
			t.Errorf("error body = %s", b)
		}
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].Rejected || !reqs[1].Rejected || !reqs[2].Rejected || reqs[1].Status != 400 {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestTruncation(t *testing.T) {
	s := newServer(t, Options{NCtx: 40, Reply: func(Request) string { return "alpha beta gamma delta epsilon zeta eta theta" }})
	full := Pieces("alpha beta gamma delta epsilon zeta eta theta")

	_, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 10), map[string]any{"max_tokens": 3}))
	m := decode(t, b)
	choice := m["choices"].([]any)[0].(map[string]any)
	if choice["finish_reason"] != "length" || choice["message"].(map[string]any)["content"] != strings.Join(full[:3], "") {
		t.Errorf("max_tokens 3: %s", b)
	}

	_, b, _ = do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 10), nil))
	m = decode(t, b)
	if m["choices"].([]any)[0].(map[string]any)["finish_reason"] != "stop" || m["usage"].(map[string]any)["completion_tokens"] != float64(len(full)) {
		t.Errorf("fits: %s", b)
	}

	prompt := 40 - len(full) + 2 // two tokens short of room
	_, b, _ = do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, prompt), map[string]any{"max_tokens": 100}))
	m = decode(t, b)
	if m["choices"].([]any)[0].(map[string]any)["finish_reason"] != "length" || m["usage"].(map[string]any)["completion_tokens"] != float64(40-prompt) {
		t.Errorf("context-limited: %s", b)
	}
	last := s.Requests()[2]
	if last.CompletionTokens != 40-last.PromptTokens || last.FinishReason != "length" || last.MaxTokens != 100 {
		t.Errorf("recorded %+v", last)
	}
}

// sseEvents reads "data: ..." events from an SSE body, checking the framing.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var events []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return events
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if !strings.HasPrefix(line, "data: ") || !strings.HasSuffix(line, "\n") {
			t.Fatalf("bad SSE line %q", line)
		}
		blank, err := br.ReadString('\n')
		if err != nil || blank != "\n" {
			t.Fatalf("event not followed by a blank line: %q %v", blank, err)
		}
		events = append(events, strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\n"))
	}
}

type chunk struct {
	ID      string
	Object  string
	Choices []struct {
		Index        int
		FinishReason *string `json:"finish_reason"`
		Delta        map[string]any
		Text         *string
	}
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
}

func streamChat(t *testing.T, s *Server, body string) ([]chunk, http.Header) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	events := sseEvents(t, resp.Body)
	if len(events) == 0 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", events)
	}
	var chunks []chunk
	for _, e := range events[:len(events)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("chunk %q: %v", e, err)
		}
		chunks = append(chunks, c)
	}
	return chunks, resp.Header
}

func TestStreamingFraming(t *testing.T) {
	s := newServer(t, Options{})
	msgs := []Message{{Role: "user", Content: "please remember the code XK-42"}}
	chunks, h := streamChat(t, s, chatBody(t, msgs, map[string]any{"stream": true}))
	if h.Get("Content-Type") != "text/event-stream" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	first := chunks[0].Choices[0]
	if c, ok := first.Delta["content"]; first.Delta["role"] != "assistant" || !ok || c != nil || first.FinishReason != nil {
		t.Errorf("first chunk = %+v", first)
	}
	var text strings.Builder
	for _, c := range chunks[1 : len(chunks)-1] {
		if c.Object != "chat.completion.chunk" || c.ID != chunks[0].ID || c.Usage != nil || c.Choices[0].FinishReason != nil {
			t.Errorf("content chunk %+v", c)
		}
		text.WriteString(c.Choices[0].Delta["content"].(string))
	}
	want := "Noted: please remember the code XK-42"
	if text.String() != want || len(chunks) != 2+len(strings.Fields(want)) {
		t.Errorf("streamed %q in %d chunks", text.String(), len(chunks))
	}
	last := chunks[len(chunks)-1]
	if fr := last.Choices[0].FinishReason; fr == nil || *fr != "stop" || len(last.Choices[0].Delta) != 0 || last.Usage != nil {
		t.Errorf("final chunk = %+v", last)
	}
	if r := s.Requests()[0]; !r.Stream || r.Reply != want || r.Status != 200 || r.Cancelled {
		t.Errorf("recorded %+v", r)
	}
}

func TestUsageChunk(t *testing.T) {
	s := newServer(t, Options{})
	msgs := []Message{{Role: "user", Content: "count me"}}
	chunks, _ := streamChat(t, s, chatBody(t, msgs, map[string]any{"stream": true, "stream_options": map[string]any{"include_usage": true}}))
	u := chunks[len(chunks)-1]
	if len(u.Choices) != 0 || u.Usage == nil {
		t.Fatalf("last chunk is not a usage chunk: %+v", u)
	}
	reply := "Noted: count me"
	if u.Usage.PromptTokens != PromptTokens(msgs) || u.Usage.CompletionTokens != CountTokens(reply) ||
		u.Usage.TotalTokens != u.Usage.PromptTokens+u.Usage.CompletionTokens {
		t.Errorf("usage = %+v", *u.Usage)
	}
	if fr := chunks[len(chunks)-2].Choices[0].FinishReason; fr == nil || *fr != "stop" {
		t.Errorf("finish chunk not before usage chunk")
	}
}

func TestCancellationDetected(t *testing.T) {
	s := newServer(t, Options{StallAfterChunks: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL()+"/v1/chat/completions",
		strings.NewReader(chatBody(t, []Message{{Role: "user", Content: "one two three four"}}, map[string]any{"stream": true})))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 2 {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "data: {") {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case <-s.Cancelled():
	case <-time.After(10 * time.Second):
		t.Fatal("cancellation not observed")
	}
	if s.CancelledCount() != 1 || !s.Requests()[0].Cancelled || s.Requests()[0].Status != 0 {
		t.Errorf("count %d, requests %+v", s.CancelledCount(), s.Requests())
	}
}

func TestCloseReleasesStall(t *testing.T) {
	s := New(Options{StallAfterChunks: 1})
	resp, err := http.Post(s.URL()+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"stream":true,"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event %q %v", line, err)
	}
	// The handler is now stalled; Close must release it and return.
	s.Close()
	if rest, err := io.ReadAll(br); err == nil && strings.Contains(string(rest), "[DONE]") {
		t.Errorf("stream completed after Close: %q", rest)
	}
	s.Close() // idempotent
	if s.CancelledCount() != 0 {
		t.Errorf("server shutdown counted as a client cancellation")
	}
}

func TestFailNextAndRejectNextContext(t *testing.T) {
	s := newServer(t, Options{})
	body := chatBody(t, []Message{{Role: "user", Content: "hi"}}, nil)
	s.FailNext(503, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`)
	s.RejectNextContext()
	code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", body)
	if code != 503 || string(b) != `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}` {
		t.Errorf("injected = %d %s", code, b)
	}
	code, b, _ = do(t, "POST", s.URL()+"/v1/chat/completions", body)
	e, _ := decode(t, b)["error"].(map[string]any)
	if code != 400 || e["type"] != "exceed_context_size_error" || e["n_prompt_tokens"] != 10.0 || e["n_ctx"] != 4096.0 {
		t.Errorf("forced rejection = %d %s", code, b)
	}
	if code, b, _ = do(t, "POST", s.URL()+"/v1/chat/completions", body); code != 200 {
		t.Errorf("after = %d %s", code, b)
	}
	r := s.Requests()
	if len(r) != 3 || !r[0].Injected || r[0].Status != 503 || !r[1].Rejected || r[2].Rejected || r[2].Status != 200 {
		t.Errorf("requests %+v", r)
	}
}

func TestScriptedReplyAndRecording(t *testing.T) {
	seen := make(chan Request, 10)
	s := newServer(t, Options{Reply: func(r Request) string {
		seen <- r
		return "Your code is XK-42."
	}})
	body := `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"code?"}],"top_k":1,"cache_prompt":true}`
	req, _ := http.NewRequest("POST", s.URL()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := decode(t, b)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != "Your code is XK-42." {
		t.Errorf("content = %v", got)
	}
	r := s.Requests()[0]
	if string(r.Body) != body || r.Header.Get("Authorization") != "Bearer k" || len(r.Messages) != 2 || r.Model != "m" ||
		r.PromptTokens != PromptTokens(r.Messages) || r.Prompt != ApplyTemplate(r.Messages) || len(seen) != 1 || (<-seen).PromptTokens != r.PromptTokens {
		t.Errorf("recorded %+v", r)
	}
	s.SetReply(nil)
	_, b, _ = do(t, "POST", s.URL()+"/chat/completions", body)
	if got := decode(t, b)["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"]; got != "Noted: code?" {
		t.Errorf("default content = %v", got)
	}
}

func TestCompletionsEndpoint(t *testing.T) {
	s := newServer(t, Options{})
	code, b, _ := do(t, "POST", s.URL()+"/v1/completions", `{"prompt":"finish this sentence","max_tokens":3}`)
	m := decode(t, b)
	c := m["choices"].([]any)[0].(map[string]any)
	if code != 200 || m["object"] != "text_completion" || c["text"] != "Noted:" || c["finish_reason"] != "length" {
		t.Errorf("/v1/completions = %d %s", code, b)
	}
	resp, err := http.Post(s.URL()+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"a b","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	events := sseEvents(t, resp.Body)
	resp.Body.Close()
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		var c chunk
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		text.WriteString(*c.Choices[0].Text)
	}
	var final chunk
	_ = json.Unmarshal([]byte(events[len(events)-2]), &final)
	if text.String() != "Noted: a b" || events[len(events)-1] != "[DONE]" || final.Usage == nil || *final.Choices[0].FinishReason != "stop" {
		t.Errorf("completions stream %q", events)
	}
}

func TestEmbeddings(t *testing.T) {
	s := newServer(t, Options{EmbeddingDim: 32})
	code, b, _ := do(t, "POST", s.URL()+"/v1/embeddings", `{"input":["the cat sat on the mat","the cat sat","stock prices fell"]}`)
	var got struct {
		Object string
		Data   []struct {
			Embedding []float64
			Index     int
		}
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		}
	}
	if err := json.Unmarshal(b, &got); err != nil || code != 200 || len(got.Data) != 3 || got.Object != "list" {
		t.Fatalf("/v1/embeddings = %d %s", code, b)
	}
	dot := func(a, b []float64) float64 {
		var d float64
		for i := range a {
			d += a[i] * b[i]
		}
		return d
	}
	for i, d := range got.Data {
		if d.Index != i || len(d.Embedding) != 32 || math.Abs(dot(d.Embedding, d.Embedding)-1) > 1e-9 {
			t.Errorf("embedding %d not unit length", i)
		}
		if !reflect.DeepEqual(d.Embedding, Embedding([]string{"the cat sat on the mat", "the cat sat", "stock prices fell"}[i], 32)) {
			t.Errorf("embedding %d not deterministic", i)
		}
	}
	if dot(got.Data[0].Embedding, got.Data[1].Embedding) <= dot(got.Data[0].Embedding, got.Data[2].Embedding) {
		t.Error("related texts are not closer than unrelated ones")
	}
	if got.Usage.PromptTokens != CountTokens("the cat sat on the mat")+CountTokens("the cat sat")+CountTokens("stock prices fell") {
		t.Errorf("usage %d", got.Usage.PromptTokens)
	}
}

func TestVLLMRejectsInsteadOfTruncating(t *testing.T) {
	s := newServer(t, Options{NCtx: 50, Style: StyleVLLM})
	code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 30), map[string]any{"max_tokens": 21}))
	e, _ := decode(t, b)["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if code != 400 || e["type"] != "BadRequestError" || !strings.Contains(msg, "maximum context length is 50 tokens") || !strings.Contains(msg, "(30 in the messages, 21 in the completion)") {
		t.Errorf("vllm over-long = %d %s", code, b)
	}
	if code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 30), map[string]any{"max_tokens": 20})); code != 200 {
		t.Errorf("vllm fitting = %d %s", code, b)
	}
	if code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 50), nil)); code != 400 {
		t.Errorf("vllm prompt of max_model_len = %d %s", code, b)
	}
}

func TestOpenAIStyleContextError(t *testing.T) {
	s := newServer(t, Options{NCtx: 20, Style: StyleOpenAI})
	code, b, _ := do(t, "POST", s.URL()+"/v1/chat/completions", chatBody(t, userOfTokens(t, 20), nil))
	e, _ := decode(t, b)["error"].(map[string]any)
	if code != 400 || e["code"] != "context_length_exceeded" || e["type"] != "invalid_request_error" {
		t.Errorf("openai over-long = %d %s", code, b)
	}
}

func TestChunkDelay(t *testing.T) {
	s := newServer(t, Options{ChunkDelay: time.Millisecond})
	start := time.Now()
	chunks, _ := streamChat(t, s, chatBody(t, []Message{{Role: "user", Content: "a b c"}}, map[string]any{"stream": true}))
	if len(chunks) != 6 || time.Since(start) < 4*time.Millisecond {
		t.Errorf("%d chunks in %v", len(chunks), time.Since(start))
	}
}

func TestWords(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"Noted: a  b", []string{"Noted:", " a", "  b"}},
		{" lead trail \n", []string{" lead", " trail \n"}},
		{"  ", []string{"  "}},
	} {
		if got := words(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("words(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestTokenizeMixed: a content array is tokenized string by string, with
// token ids passed through, as llama.cpp's tokenize_mixed does.
func TestTokenizeMixed(t *testing.T) {
	s := newServer(t, Options{})
	code, b, _ := do(t, "POST", s.URL()+"/tokenize", `{"content":["the cat sat",-1,"on the mat"]}`)
	if code != 200 {
		t.Fatalf("/tokenize = %d %s", code, b)
	}
	var got struct{ Tokens []int }
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := append(append(Tokenize("the cat sat"), -1), Tokenize("on the mat")...)
	if !reflect.DeepEqual(got.Tokens, want) {
		t.Errorf("tokens %v, want %v", got.Tokens, want)
	}
	if code, b, _ := do(t, "POST", s.URL()+"/tokenize", `{"content":[{"x":1}]}`); code != 400 {
		t.Errorf("object in content: %d %s, want 400", code, b)
	}
}
