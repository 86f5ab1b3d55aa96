package integration

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// Tests that drive the real binary with github.com/sashabaranov/go-openai,
// the Go client the design names, as a Go application would: the base URL
// ends in /v1, the MegaContext id travels in a default header.

// headerTransport adds fixed headers to every request (go-openai has no
// default headers of its own).
type headerTransport struct {
	base http.RoundTripper
	hdr  map[string]string
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.hdr {
		r.Header.Set(k, v)
	}
	return h.base.RoundTrip(r)
}

// goClient returns a go-openai client of the proxy for MegaContext ctxID
// ("" sends no id header).
func (p *proxy) goClient(ctxID string) *openai.Client {
	cfg := openai.DefaultConfig("sk-unused")
	cfg.BaseURL = p.URL() + "/v1"
	hdr := map[string]string{}
	if ctxID != "" {
		hdr["X-MegaContext-Id"] = ctxID
	}
	cfg.HTTPClient = &http.Client{Transport: headerTransport{base: http.DefaultTransport, hdr: hdr}}
	return openai.NewClientWithConfig(cfg)
}

func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	t.Cleanup(cancel)
	return ctx
}

// TestGoOpenAIChat: chat, streaming with usage, and memory across chats
// through go-openai.
func TestGoOpenAIChat(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	c := p.goClient("go-sdk")
	ctx := sdkCtx(t)

	res, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{
		Model:     "fake-model",
		MaxTokens: 64,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: "Be terse."},
			{Role: openai.ChatMessageRoleUser, Content: "My locker code is ZX-4471-QK."},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Object != "chat.completion" || len(res.Choices) != 1 || res.Choices[0].Message.Content != "Noted: My locker code is ZX-4471-QK." || res.Choices[0].FinishReason != openai.FinishReasonStop {
		t.Errorf("completion: %+v", res)
	}
	if res.Usage.PromptTokens <= 0 || res.Usage.CompletionTokens <= 0 {
		t.Errorf("usage: %+v", res.Usage)
	}
	checkWindowHeaders(t, "go-openai", res.Header(), "go-sdk", 4096)

	stream, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{
		Model:         "fake-model",
		Stream:        true,
		StreamOptions: &openai.StreamOptions{IncludeUsage: true},
		Messages:      []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "What is my locker code?"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var text strings.Builder
	var usage *openai.Usage
	finish := openai.FinishReason("")
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk.Choices) > 0 {
			text.WriteString(chunk.Choices[0].Delta.Content)
			if chunk.Choices[0].FinishReason != "" {
				finish = chunk.Choices[0].FinishReason
			}
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
	}
	if text.String() != "Noted: What is my locker code?" || finish != openai.FinishReasonStop || usage == nil || usage.CompletionTokens <= 0 {
		t.Errorf("stream: %q finish %q usage %+v", text.String(), finish, usage)
	}
	if got := stream.Header().Get("X-MegaContext-Id"); got != "go-sdk" {
		t.Errorf("stream X-MegaContext-Id %q", got)
	}
	// The new chat recalled the first one's fact.
	reqs := fake.Requests()
	if !strings.Contains(reqs[len(reqs)-1].Prompt, "ZX-4471-QK") {
		t.Errorf("a new chat did not recall the locker code:\n%s", reqs[len(reqs)-1].Prompt)
	}
}

// TestGoOpenAITools: a tool call and its result round trip through go-openai.
func TestGoOpenAITools(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	c := p.goClient("go-tools")
	ctx := sdkCtx(t)
	tools := []openai.Tool{{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{
		Name: "get_weather", Description: "Weather of a city",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]string{"type": "string"}}, "required": []string{"city"}},
	}}}
	msgs := []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "What is the weather in Paris?"}}
	res, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", Messages: msgs, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	m := res.Choices[0].Message
	if res.Choices[0].FinishReason != openai.FinishReasonToolCalls || len(m.ToolCalls) != 1 || m.ToolCalls[0].Function.Name != "get_weather" || m.ToolCalls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool call: %+v", res.Choices[0])
	}
	msgs = append(msgs, m, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleTool, ToolCallID: m.ToolCalls[0].ID, Content: `{"temperature":"21C"}`})

	stream, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "m", Messages: msgs, Tools: tools, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	p.waitMessages(t, "go-tools", 4)
	reqs := fake.Requests()
	if got := reqs[len(reqs)-1].Body; !strings.Contains(string(got), `"tool_call_id":"`+m.ToolCalls[0].ID+`"`) {
		t.Errorf("tool result not forwarded: %s", got)
	}

	// Streamed tool calls assemble in go-openai.
	st2, err := c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "m", Messages: msgs[:1], Tools: tools, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	args := ""
	for {
		chunk, err := st2.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range chunk.Choices[0].Delta.ToolCalls {
			args += tc.Function.Arguments
		}
	}
	if args != `{"city":"Paris"}` {
		t.Errorf("streamed arguments %q", args)
	}
}

// TestGoOpenAIEmbeddingsModels: embeddings and models pass through.
func TestGoOpenAIEmbeddingsModels(t *testing.T) {
	fake := newFake(t, fakellama.Options{EmbeddingDim: 16})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	c := p.goClient("")
	ctx := sdkCtx(t)
	emb, err := c.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Model: "fake-model", Input: []string{"hello world", "goodbye"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 16 || emb.Data[1].Index != 1 {
		t.Errorf("embeddings: %+v", emb)
	}
	models, err := c.ListModels(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Models) == 0 || models.Models[0].ID != "fake-model" {
		t.Errorf("models: %+v", models)
	}
}

// TestGoOpenAIErrors: proxy and upstream errors reach go-openai as
// *openai.APIError with status, message, type and code.
func TestGoOpenAIErrors(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "auth:\n  keys:\n    - {key: sk-good, tenant: acme}\n"})
	ctx := sdkCtx(t)
	apiErr := func(err error) *openai.APIError {
		t.Helper()
		var e *openai.APIError
		if !errors.As(err, &e) {
			t.Fatalf("not an APIError: %v", err)
		}
		return e
	}

	_, err := p.goClient("x").CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if e := apiErr(err); e.HTTPStatusCode != 401 || e.Code != "invalid_api_key" || e.Message == "" {
		t.Errorf("bad key: %+v", e)
	}

	cfg := openai.DefaultConfig("sk-good")
	cfg.BaseURL = p.URL() + "/v1"
	c := openai.NewClientWithConfig(cfg)
	_, err = c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "wizard", Content: "hi"}}})
	if e := apiErr(err); e.HTTPStatusCode != 400 || e.Type != "invalid_request_error" || e.Param == nil || *e.Param != "messages[0].role" {
		t.Errorf("bad role: %+v", e)
	}
	_, err = c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", MaxTokens: 1 << 20, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if e := apiErr(err); e.HTTPStatusCode != 400 || e.Code != "context_length_exceeded" {
		t.Errorf("max_tokens beyond the context: %+v", e)
	}
	fake.FailNext(500, `{"error":{"code":500,"message":"kaboom","type":"server_error"}}`)
	_, err = c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if e := apiErr(err); e.HTTPStatusCode != 500 || !strings.Contains(e.Message, "kaboom") {
		t.Errorf("upstream 500: %+v", e)
	}
	fake.FailNext(503, `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`)
	_, err = c.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{Model: "m", Stream: true, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	if e := apiErr(err); e.HTTPStatusCode != 503 {
		t.Errorf("upstream 503 on a stream: %+v", e)
	}
}
