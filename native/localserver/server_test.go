package localserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/megacontext/megacontext/native"
)

// testModel loads ../shared/models/stories260K.gguf with the repository's
// .native libraries; it skips without ../shared, and without the libraries
// fails under CI=true and skips otherwise.
func testModel(t *testing.T) *native.Model {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			t.Fatal("go.mod not found")
		}
		dir = filepath.Dir(dir)
	}
	model := filepath.Join(filepath.Dir(dir), "shared", "models", "stories260K.gguf")
	if _, err := os.Stat(filepath.Dir(model)); err != nil {
		t.Skipf("skipping: %s is absent", filepath.Dir(model))
	}
	libDir := os.Getenv(native.EnvDir)
	if libDir == "" {
		libDir = filepath.Join(dir, native.DefaultDir)
	}
	lib, err := native.Open(libDir)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("native libraries unavailable: %v", err)
		}
		t.Skipf("skipping: native libraries unavailable: %v", err)
	}
	m, err := lib.LoadModel(model, native.ModelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startServer serves m on a loopback port and returns its base URL.
func startServer(t *testing.T, m *native.Model, opts Options) (string, *Server) {
	t.Helper()
	if opts.Context.Threads == 0 {
		opts.Context.Threads = 1
	}
	s, err := NewServer(m, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Serve(ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		if err := s.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
	})
	return "http://" + ln.Addr().String(), s
}

func do(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	return resp.StatusCode
}

type completion struct {
	Choices []struct {
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Message      struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Code          int    `json:"code"`
		Type          string `json:"type"`
		Message       string `json:"message"`
		NPromptTokens int    `json:"n_prompt_tokens"`
		NCtx          int    `json:"n_ctx"`
	} `json:"error"`
}

const storyPrompt = "Once upon a time there was a little girl"

func TestEndpoints(t *testing.T) {
	m := testModel(t)
	base, s := startServer(t, m, Options{ModelName: "stories", Context: native.ContextOptions{ContextSize: 512}})

	var health map[string]string
	if code := do(t, "GET", base+"/health", nil, &health); code != 200 || health["status"] != "ok" {
		t.Errorf("/health: %d %v", code, health)
	}
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if code := do(t, "GET", base+"/v1/models", nil, &models); code != 200 || len(models.Data) != 1 || models.Data[0].ID != "stories" {
		t.Errorf("/v1/models: %d %+v", code, models)
	}
	var props struct {
		Settings struct {
			NCtx int `json:"n_ctx"`
		} `json:"default_generation_settings"`
	}
	if code := do(t, "GET", base+"/props", nil, &props); code != 200 || props.Settings.NCtx != s.ContextSize() || props.Settings.NCtx < 512 {
		t.Errorf("/props: %d %+v", code, props)
	}
	var tok struct {
		Tokens []int32 `json:"tokens"`
	}
	want, _ := m.Tokenize(storyPrompt, false, true)
	if code := do(t, "POST", base+"/tokenize", map[string]any{"content": storyPrompt}, &tok); code != 200 || len(tok.Tokens) != len(want) || len(want) == 0 {
		t.Errorf("/tokenize: %d %v, want %v", code, tok.Tokens, want)
	}
	var detok struct {
		Content string `json:"content"`
	}
	if code := do(t, "POST", base+"/detokenize", map[string]any{"tokens": want}, &detok); code != 200 || strings.TrimSpace(detok.Content) != storyPrompt {
		t.Errorf("/detokenize: %d %q", code, detok.Content)
	}
	var tmpl struct {
		Prompt string `json:"prompt"`
	}
	msgs := []map[string]any{{"role": "user", "content": "Hi"}}
	if code := do(t, "POST", base+"/apply-template", map[string]any{"messages": msgs}, &tmpl); code != 200 || tmpl.Prompt != m.ApplyChatTemplate([]native.ChatMessage{{Role: "user", Content: "Hi"}}, true) {
		t.Errorf("/apply-template: %d %q", code, tmpl.Prompt)
	}
	var e completion
	if code := do(t, "GET", base+"/nope", nil, &e); code != 404 || e.Error == nil {
		t.Errorf("404: %d %+v", code, e)
	}
	e = completion{}
	if code := do(t, "POST", base+"/v1/completions", "not an object", &e); code != 400 || e.Error == nil || e.Error.Type != "invalid_request_error" {
		t.Errorf("bad body: %d %+v", code, e)
	}
}

func TestCompletionsReuseAndLimits(t *testing.T) {
	m := testModel(t)
	base, s := startServer(t, m, Options{Context: native.ContextOptions{ContextSize: 256}})
	req := map[string]any{"prompt": storyPrompt, "max_tokens": 12, "temperature": 0}
	var a completion
	if code := do(t, "POST", base+"/v1/completions", req, &a); code != 200 || len(a.Choices) != 1 || a.Usage == nil {
		t.Fatalf("completion: %d %+v", code, a)
	}
	if !strings.HasPrefix(a.Choices[0].Text, " named Lily.") || a.Choices[0].FinishReason != "length" {
		t.Errorf("text %q finish %q", a.Choices[0].Text, a.Choices[0].FinishReason)
	}
	if a.Usage.CompletionTokens != 12 || a.Usage.TotalTokens != a.Usage.PromptTokens+12 {
		t.Errorf("usage %+v", *a.Usage)
	}
	var b completion
	do(t, "POST", base+"/v1/completions", req, &b)
	if b.Usage == nil || b.Usage.PromptTokensDetails.CachedTokens != b.Usage.PromptTokens-1 || b.Choices[0].Text != a.Choices[0].Text {
		t.Errorf("second completion: %+v", b)
	}
	long := strings.Repeat("Once upon a time there was a dog. ", s.ContextSize()/4)
	var e completion
	code := do(t, "POST", base+"/v1/completions", map[string]any{"prompt": long}, &e)
	if code != 400 || e.Error == nil || e.Error.Type != "exceed_context_size_error" || e.Error.NCtx != s.ContextSize() || e.Error.NPromptTokens <= s.ContextSize() {
		t.Errorf("over context: %d %+v", code, e.Error)
	}
}

// readSSE returns the data payloads of an SSE response.
func readSSE(t *testing.T, url string, body any) []string {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "error:") {
			t.Fatalf("stream error: %s", line)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
		}
	}
	return data
}

func TestChatStreaming(t *testing.T) {
	m := testModel(t)
	base, _ := startServer(t, m, Options{})
	msgs := []map[string]any{{"role": "user", "content": []map[string]any{{"type": "text", "text": "Tell me a story."}}}}
	req := map[string]any{"messages": msgs, "max_tokens": 20, "temperature": 0}
	var plain completion
	if code := do(t, "POST", base+"/v1/chat/completions", req, &plain); code != 200 || len(plain.Choices) != 1 {
		t.Fatalf("chat: %d %+v", code, plain)
	}
	if plain.Choices[0].Message.Role != "assistant" || plain.Choices[0].Message.Content == "" {
		t.Errorf("chat message %+v", plain.Choices[0].Message)
	}
	req["stream"] = true
	req["stream_options"] = map[string]any{"include_usage": true}
	data := readSSE(t, base+"/v1/chat/completions", req)
	if len(data) < 4 || data[len(data)-1] != "[DONE]" {
		t.Fatalf("stream events %q", data)
	}
	t.Logf("first events: %s | %s; last: %s", data[0], data[1], data[len(data)-2])
	var text strings.Builder
	finish := ""
	for _, d := range data[:len(data)-2] {
		var c completion
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatal(err)
		}
		text.WriteString(c.Choices[0].Delta.Content)
		if c.Choices[0].FinishReason != "" {
			finish = c.Choices[0].FinishReason
		}
	}
	if text.String() != plain.Choices[0].Message.Content || finish != plain.Choices[0].FinishReason {
		t.Errorf("streamed %q (%s), plain %q (%s)", text.String(), finish, plain.Choices[0].Message.Content, plain.Choices[0].FinishReason)
	}
	var last completion
	if err := json.Unmarshal([]byte(data[len(data)-2]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Usage == nil || len(last.Choices) != 0 || last.Usage.CompletionTokens != plain.Usage.CompletionTokens {
		t.Errorf("usage chunk %s", data[len(data)-2])
	}
	if last.Usage.PromptTokensDetails.CachedTokens != last.Usage.PromptTokens-1 {
		t.Errorf("streamed request reused %d of %d prompt tokens", last.Usage.PromptTokensDetails.CachedTokens, last.Usage.PromptTokens)
	}
	// Without include_usage there is no usage chunk.
	delete(req, "stream_options")
	data = readSSE(t, base+"/v1/chat/completions", req)
	if strings.Contains(strings.Join(data, "\n"), `"usage"`) || data[len(data)-1] != "[DONE]" {
		t.Errorf("stream without usage: %q", data)
	}
	// Completions stream too.
	data = readSSE(t, base+"/v1/completions", map[string]any{"prompt": storyPrompt, "max_tokens": 8, "temperature": 0, "stream": true})
	var ctext strings.Builder
	for _, d := range data[:len(data)-1] {
		var c completion
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatal(err)
		}
		ctext.WriteString(c.Choices[0].Text)
	}
	if !strings.HasPrefix(ctext.String(), " named Lily") {
		t.Errorf("completion stream %q", ctext.String())
	}
}
