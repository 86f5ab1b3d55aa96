// Package localserver serves a native.Model over an OpenAI-compatible HTTP
// API modelled on llama.cpp's server, so that the proxy can use a local
// GGUF model as its upstream: /v1/chat/completions (plain and SSE),
// /v1/completions, /v1/models, /props, /tokenize, /detokenize,
// /apply-template and /health. Requests are served one at a time by one
// generation context whose KV cache keeps the previous prompt, so that a
// prompt sharing a prefix with it reports the reused tokens in
// usage.prompt_tokens_details.cached_tokens.
package localserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/native"
)

// Options configures NewServer. Zero values pick the defaults.
type Options struct {
	// ModelName is the model id reported by /v1/models and in responses;
	// default: the model's file name.
	ModelName string
	// Context configures the generation context (size, batch, threads).
	Context native.ContextOptions
	// Logger receives request errors; default slog.Default().
	Logger *slog.Logger
	// MaxRequestBytes bounds request bodies; default 64 MiB.
	MaxRequestBytes int
}

// Server is an OpenAI-compatible HTTP server over one native.Model.
type Server struct {
	model   *native.Model
	gen     *native.Context
	name    string
	created int64
	log     *slog.Logger
	http    *fasthttp.Server
	routes  map[string]route
	nextID  atomic.Uint64
}

// route is one endpoint: its method and handler.
type route struct {
	method string
	fn     func(*fasthttp.RequestCtx)
}

// NewServer creates a server and its generation context over model. The
// model must outlive the server; Shutdown frees the context.
func NewServer(model *native.Model, opts Options) (*Server, error) {
	gen, err := model.NewContext(opts.Context)
	if err != nil {
		return nil, fmt.Errorf("localserver: %w", err)
	}
	s := &Server{model: model, gen: gen, name: opts.ModelName, created: time.Now().Unix(), log: opts.Logger}
	if s.name == "" {
		s.name = model.Name()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	maxBody := opts.MaxRequestBytes
	if maxBody <= 0 {
		maxBody = 64 << 20
	}
	s.initRoutes()
	s.http = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "megacontext-local",
		MaxRequestBodySize:    maxBody,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
	}
	return s, nil
}

// ContextSize returns the size of the generation context in tokens.
func (s *Server) ContextSize() int { return s.gen.Size() }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(ln); err != nil {
		return fmt.Errorf("localserver: %w", err)
	}
	return nil
}

// Shutdown stops the server, waits for the requests in flight and frees
// the generation context.
func (s *Server) Shutdown() error {
	err := s.http.Shutdown()
	s.gen.Close()
	if err != nil {
		return fmt.Errorf("localserver: shutdown: %w", err)
	}
	return nil
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	method := string(ctx.Method())
	ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
	if method == fasthttp.MethodOptions {
		ctx.Response.Header.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		ctx.Response.Header.Set("Access-Control-Allow-Headers", "*")
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	r, ok := s.routes[path]
	if !ok {
		writeError(ctx, fasthttp.StatusNotFound, "not_found_error", "File Not Found")
		return
	}
	if method != r.method {
		writeError(ctx, fasthttp.StatusMethodNotAllowed, "invalid_request_error", "method not allowed")
		return
	}
	r.fn(ctx)
}

func (s *Server) initRoutes() {
	s.routes = map[string]route{
		"/health":              {"GET", s.health},
		"/v1/health":           {"GET", s.health},
		"/v1/models":           {"GET", s.models},
		"/models":              {"GET", s.models},
		"/props":               {"GET", s.props},
		"/tokenize":            {"POST", s.tokenize},
		"/detokenize":          {"POST", s.detokenize},
		"/apply-template":      {"POST", s.applyTemplate},
		"/v1/chat/completions": {"POST", s.chatCompletions},
		"/chat/completions":    {"POST", s.chatCompletions},
		"/v1/completions":      {"POST", s.completions},
		"/completions":         {"POST", s.completions},
	}
}

// writeJSON writes v with status code.
func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = fasthttp.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"encoding failed","type":"server_error"}}`)
	}
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

// apiError is llama.cpp's error object.
type apiError struct {
	Code          int    `json:"code"`
	Message       string `json:"message"`
	Type          string `json:"type"`
	NPromptTokens int    `json:"n_prompt_tokens,omitempty"`
	NCtx          int    `json:"n_ctx,omitempty"`
}

func writeError(ctx *fasthttp.RequestCtx, code int, typ, msg string) {
	writeJSON(ctx, code, map[string]any{"error": apiError{Code: code, Message: msg, Type: typ}})
}

// writeGenError maps a generation error to llama.cpp's responses.
func (s *Server) writeGenError(ctx *fasthttp.RequestCtx, err error) {
	var ce *native.ContextExceededError
	if errors.As(err, &ce) {
		writeJSON(ctx, fasthttp.StatusBadRequest, map[string]any{"error": apiError{
			Code: 400, Message: ce.Error(), Type: "exceed_context_size_error",
			NPromptTokens: ce.PromptTokens, NCtx: ce.ContextSize,
		}})
		return
	}
	s.log.Error("localserver: generation failed", "err", err)
	writeError(ctx, fasthttp.StatusInternalServerError, "server_error", err.Error())
}

func (s *Server) health(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": s.name, "object": "model", "created": s.created, "owned_by": "megacontext",
			"meta": map[string]any{"n_ctx_train": s.model.TrainContext(), "description": s.model.Description()},
		}},
	})
}

func (s *Server) props(ctx *fasthttp.RequestCtx) {
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{
		"default_generation_settings": map[string]any{"n_ctx": s.gen.Size()},
		"total_slots":                 1,
		"model_alias":                 s.name,
		"chat_template":               s.model.ChatTemplate(),
		"build_info":                  "llama.cpp " + native.PinnedVersion + " (" + native.PinnedCommit + ") via megacontext",
	})
}

func decodeBody(ctx *fasthttp.RequestCtx, v any) bool {
	if err := json.Unmarshal(ctx.PostBody(), v); err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) tokenize(ctx *fasthttp.RequestCtx) {
	var req struct {
		Content      string `json:"content"`
		AddSpecial   bool   `json:"add_special"`
		ParseSpecial *bool  `json:"parse_special"`
		WithPieces   bool   `json:"with_pieces"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	parse := req.ParseSpecial == nil || *req.ParseSpecial
	toks, err := s.model.Tokenize(req.Content, req.AddSpecial, parse)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "server_error", err.Error())
		return
	}
	if !req.WithPieces {
		if toks == nil {
			toks = []int32{}
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"tokens": toks})
		return
	}
	type piece struct {
		ID    int32  `json:"id"`
		Piece string `json:"piece"`
	}
	pieces := make([]piece, len(toks))
	for i, t := range toks {
		pieces[i] = piece{ID: t, Piece: s.model.Detokenize([]int32{t})}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"tokens": pieces})
}

func (s *Server) detokenize(ctx *fasthttp.RequestCtx) {
	var req struct {
		Tokens []int32 `json:"tokens"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"content": s.model.Detokenize(req.Tokens)})
}

// message is an OpenAI chat message; content is a string or an array of
// parts of which the text parts are used.
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func (m message) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", fmt.Errorf("message content must be a string or an array of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" || p.Type == "" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

func chatMessages(msgs []message) ([]native.ChatMessage, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("'messages' must be a non-empty array")
	}
	out := make([]native.ChatMessage, len(msgs))
	for i, m := range msgs {
		text, err := m.text()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		out[i] = native.ChatMessage{Role: m.Role, Content: text}
	}
	return out, nil
}

func (s *Server) applyTemplate(ctx *fasthttp.RequestCtx) {
	var req struct {
		Messages []message `json:"messages"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	if prompt, ok := s.chatPrompt(ctx, req.Messages); ok {
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"prompt": prompt})
	}
}

// chatPrompt renders msgs with the model's chat template, or answers 400
// and reports false when they are invalid.
func (s *Server) chatPrompt(ctx *fasthttp.RequestCtx, msgs []message) (string, bool) {
	cm, err := chatMessages(msgs)
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", err.Error())
		return "", false
	}
	return s.model.ApplyChatTemplate(cm, true), true
}

// genRequest holds the generation fields shared by both completion APIs.
type genRequest struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	NPredict            *int            `json:"n_predict"`
	Temperature         *float32        `json:"temperature"`
	TopP                *float32        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MinP                *float32        `json:"min_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// options converts the request to native.GenerateOptions with llama.cpp
// server defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05).
func (r *genRequest) options() (native.GenerateOptions, error) {
	o := native.GenerateOptions{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: -1}
	for _, n := range []*int{r.NPredict, r.MaxTokens, r.MaxCompletionTokens} {
		if n != nil {
			o.MaxTokens = max(*n, 0)
		}
	}
	if r.Temperature != nil {
		o.Temperature = *r.Temperature
	}
	if r.TopP != nil {
		o.TopP = *r.TopP
	}
	if r.TopK != nil {
		o.TopK = *r.TopK
	}
	if r.MinP != nil {
		o.MinP = *r.MinP
	}
	if r.Seed != nil {
		o.Seed = *r.Seed
	}
	if len(r.Stop) > 0 && string(r.Stop) != "null" {
		var one string
		if err := json.Unmarshal(r.Stop, &one); err == nil {
			o.Stop = []string{one}
		} else if err := json.Unmarshal(r.Stop, &o.Stop); err != nil {
			return o, fmt.Errorf("'stop' must be a string or an array of strings")
		}
	}
	return o, nil
}

type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func usageOf(r native.Result) usage {
	u := usage{PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, TotalTokens: r.PromptTokens + r.CompletionTokens}
	u.PromptTokensDetails.CachedTokens = r.CachedTokens
	return u
}

func (s *Server) newID(prefix string) string {
	return prefix + strconv.FormatInt(s.created, 36) + "-" + strconv.FormatUint(s.nextID.Add(1), 10)
}

func (s *Server) chatCompletions(ctx *fasthttp.RequestCtx) {
	var req struct {
		genRequest
		Messages []message `json:"messages"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	prompt, ok := s.chatPrompt(ctx, req.Messages)
	if !ok {
		return
	}
	opts, err := req.options()
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	s.generate(ctx, prompt, &req.genRequest, opts, true)
}

func (s *Server) completions(ctx *fasthttp.RequestCtx) {
	var req struct {
		genRequest
		Prompt json.RawMessage `json:"prompt"`
	}
	if !decodeBody(ctx, &req) {
		return
	}
	var prompt string
	if err := json.Unmarshal(req.Prompt, &prompt); err != nil {
		var list []string
		if err := json.Unmarshal(req.Prompt, &list); err != nil || len(list) != 1 {
			writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", "'prompt' must be a string (or an array of one string)")
			return
		}
		prompt = list[0]
	}
	opts, err := req.options()
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	s.generate(ctx, prompt, &req.genRequest, opts, false)
}

// generate runs one completion and writes it as JSON or as SSE chunks.
func (s *Server) generate(ctx *fasthttp.RequestCtx, prompt string, req *genRequest, opts native.GenerateOptions, chat bool) {
	toks, err := s.model.Tokenize(prompt, true, true)
	if err != nil {
		s.writeGenError(ctx, err)
		return
	}
	if len(toks) >= s.gen.Size() {
		s.writeGenError(ctx, &native.ContextExceededError{PromptTokens: len(toks), ContextSize: s.gen.Size()})
		return
	}
	created := time.Now().Unix()
	id := s.newID("chatcmpl-")
	object := "chat.completion"
	if !chat {
		id, object = s.newID("cmpl-"), "text_completion"
	}
	if !req.Stream {
		res, err := s.gen.GenerateTokens(context.Background(), toks, opts)
		if err != nil {
			s.writeGenError(ctx, err)
			return
		}
		choice := map[string]any{"index": 0, "finish_reason": res.FinishReason}
		if chat {
			choice["message"] = map[string]any{"role": "assistant", "content": res.Text}
		} else {
			choice["text"] = res.Text
			choice["logprobs"] = nil
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{
			"id": id, "object": object, "created": created, "model": s.name,
			"choices": []any{choice}, "usage": usageOf(res),
		})
		return
	}

	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		chunkObject := object
		if chat {
			chunkObject = "chat.completion.chunk"
		}
		send := func(choices []any, u *usage) error {
			ev := map[string]any{"id": id, "object": chunkObject, "created": created, "model": s.name, "choices": choices}
			if u != nil {
				ev["usage"] = u
			}
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			if _, err := w.WriteString("data: "); err != nil {
				return err
			}
			w.Write(b)
			w.WriteString("\n\n")
			return w.Flush()
		}
		delta := func(text string, finish any) []any {
			if chat {
				d := map[string]any{}
				if text != "" {
					d["content"] = text
				}
				return []any{map[string]any{"index": 0, "delta": d, "finish_reason": finish}}
			}
			return []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}
		}
		if chat {
			first := []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant", "content": nil}, "finish_reason": nil}}
			if send(first, nil) != nil {
				return
			}
		}
		opts.OnText = func(text string) error { return send(delta(text, nil), nil) }
		res, err := s.gen.GenerateTokens(context.Background(), toks, opts)
		if err != nil {
			var ce *native.ContextExceededError
			typ := "server_error"
			if errors.As(err, &ce) {
				typ = "exceed_context_size_error"
			}
			b, _ := json.Marshal(map[string]any{"error": apiError{Code: 500, Message: err.Error(), Type: typ}})
			w.WriteString("error: ")
			w.Write(b)
			w.WriteString("\n\n")
			w.Flush()
			return
		}
		if send(delta("", res.FinishReason), nil) != nil {
			return
		}
		if req.StreamOptions.IncludeUsage {
			u := usageOf(res)
			if send([]any{}, &u) != nil {
				return
			}
		}
		w.WriteString("data: [DONE]\n\n")
		w.Flush()
	})
}
