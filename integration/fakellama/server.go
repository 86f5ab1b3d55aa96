package fakellama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Upstream styles: which server the fixture imitates.
const (
	// StyleLlamaCpp imitates llama.cpp's llama-server (the default).
	StyleLlamaCpp = "llamacpp"
	// StyleVLLM imitates vLLM's OpenAI server: /v1/models reports
	// max_model_len, there is no /props, over-long requests are refused with
	// vLLM's wording instead of being truncated.
	StyleVLLM = "vllm"
	// StyleOpenAI imitates a plain OpenAI-compatible cloud: no /health,
	// /props or tokenizer endpoints, no context size anywhere, OpenAI's
	// context_length_exceeded error.
	StyleOpenAI = "openai"
)

// BuildInfo is what the fixture reports as llama.cpp's build_info and
// system_fingerprint.
const BuildInfo = "b0-fakellama"

// ModelPath is the model_path /props reports.
const ModelPath = "fake.gguf"

// Options configures a Server. The zero value is a llama.cpp-style server
// with a 4096-token context.
type Options struct {
	// Addr is the address to listen on; default "127.0.0.1:0".
	Addr string
	// NCtx is the per-slot context size; default 4096.
	NCtx int
	// NCtxTrain is the model's training context reported by /v1/models;
	// default NCtx.
	NCtxTrain int
	// Style is StyleLlamaCpp (default), StyleVLLM or StyleOpenAI.
	Style string
	// NoTokenize hides the tokenizer endpoints (/tokenize, /detokenize,
	// /apply-template) and /props: they answer 404.
	NoTokenize bool
	// Model is the model id reported and echoed; default "fake-model".
	Model string
	// EmbeddingDim is the length of /v1/embeddings vectors; default 64.
	EmbeddingDim int
	// Reply chooses the assistant text for a generation request; nil means
	// DefaultReply. It may be called concurrently.
	Reply func(req Request) string
	// ChunkDelay is waited before each streamed content chunk (and, for a
	// non-streamed answer, once per chunk the stream would have had).
	ChunkDelay time.Duration
	// StallAfterChunks, when positive, makes a stream stop after that many
	// "data:" events (the role chunk counts) and wait until the client goes
	// away or the server closes. A non-streamed answer stalls before it is
	// written.
	StallAfterChunks int
}

// Request is what the fixture recorded about one generation request
// (/v1/chat/completions or /v1/completions).
type Request struct {
	// Path is the request path.
	Path string
	// Header is the request header.
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// Model is the "model" field.
	Model string
	// Messages are the parsed chat messages; nil for /v1/completions.
	Messages []Message
	// Prompt is the rendered prompt: ApplyTemplate(Messages) for chat, the
	// "prompt" field for completions.
	Prompt string
	// PromptTokens is CountTokens(Prompt).
	PromptTokens int
	// MaxTokens is the requested output limit (max_completion_tokens,
	// max_tokens or n_predict, the first positive one); 0 when unset.
	MaxTokens int
	// Stream reports "stream": true.
	Stream bool
	// IncludeUsage reports "stream_options": {"include_usage": true}.
	IncludeUsage bool

	// Status is the HTTP status answered (0 while the request is running).
	Status int
	// Rejected reports a context-size rejection, natural or forced by
	// RejectNextContext.
	Rejected bool
	// Injected reports an error injected by FailNext.
	Injected bool
	// Fault is the fault injected by FaultNext, if any.
	Fault Fault
	// Reply is the generated text sent (after truncation).
	Reply string
	// ToolCall is the tool call answered instead of text, if any (see
	// DefaultToolCall).
	ToolCall *ToolCall
	// FinishReason is "stop", "length" or "tool_calls" for answered requests.
	FinishReason string
	// CompletionTokens is the number of tokens of Reply.
	CompletionTokens int
	// Cancelled reports that the client went away before the answer was
	// complete.
	Cancelled bool
}

type failure struct {
	status int
	body   string
}

// Fault is a way for the upstream to fail a generation request, injected
// with FaultNext (HTTP error statuses are injected with FailNext).
type Fault string

// Faults.
const (
	// FaultHang accepts the request and never answers: no status, no
	// headers, until the client goes away or the server closes.
	FaultHang Fault = "hang"
	// FaultSilence sends the status and headers (an event stream for a
	// streamed request), then nothing more.
	FaultSilence Fault = "silence"
	// FaultCut dies mid-answer: a stream stops after its role chunk and two
	// content chunks, a whole answer after half its bytes, and the
	// connection is closed without ending the body.
	FaultCut Fault = "cut"
	// FaultHuge answers 200 with a chat completion of OverLongBytes.
	FaultHuge Fault = "huge"
	// FaultInvalidJSON answers 200 application/json with a body that is not
	// JSON (for a streamed request: an event stream whose chunk is not JSON,
	// then [DONE]).
	FaultInvalidJSON Fault = "invalid-json"
)

// OverLongBytes is the size of a FaultHuge answer: past the 64 MiB a proxy
// may reasonably buffer.
const OverLongBytes = 65 << 20

// Faults lists every Fault.
var Faults = []Fault{FaultHang, FaultSilence, FaultCut, FaultHuge, FaultInvalidJSON}

// Server is a running fixture on a real loopback listener.
type Server struct {
	opts    Options
	url     string
	ln      net.Listener
	http    *http.Server
	closing chan struct{}
	closed  sync.Once
	active  sync.WaitGroup

	cancelled chan struct{}

	mu         sync.Mutex
	reqs       []*Request
	fails      []failure
	faults     []Fault
	rejectNext int
	reply      func(Request) string
	pieces     map[int]string
	nCancelled int
	// nConns counts the connections accepted.
	nConns int
}

// New starts a fixture server. It panics if it cannot listen, like
// httptest.NewServer; use Start to get the error instead.
func New(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic("fakellama: " + err.Error())
	}
	return s
}

// Start starts a fixture server and returns an error if it cannot listen
// or the options are invalid.
func Start(opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.NCtx <= 0 {
		opts.NCtx = 4096
	}
	if opts.NCtxTrain <= 0 {
		opts.NCtxTrain = opts.NCtx
	}
	if opts.Style == "" {
		opts.Style = StyleLlamaCpp
	}
	switch opts.Style {
	case StyleLlamaCpp, StyleVLLM, StyleOpenAI:
	default:
		return nil, fmt.Errorf("unknown style %q (want %s, %s or %s)", opts.Style, StyleLlamaCpp, StyleVLLM, StyleOpenAI)
	}
	if opts.Model == "" {
		opts.Model = "fake-model"
	}
	if opts.EmbeddingDim <= 0 {
		opts.EmbeddingDim = 64
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:      opts,
		url:       "http://" + ln.Addr().String(),
		ln:        ln,
		closing:   make(chan struct{}),
		cancelled: make(chan struct{}, 1024),
		reply:     opts.Reply,
		pieces:    map[int]string{},
	}
	s.http = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.nConns++
			s.mu.Unlock()
		}
	}}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

// URL is the base URL, e.g. "http://127.0.0.1:40123" (no trailing slash,
// no /v1).
func (s *Server) URL() string { return s.url }

// Options returns the effective options (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// Close stops the server: stalled streams are released, connections closed,
// and Close waits for running handlers to return. It is idempotent.
func (s *Server) Close() {
	s.closed.Do(func() {
		close(s.closing)
		_ = s.http.Close()
		s.active.Wait()
	})
}

// Requests returns a snapshot of every generation request received so far,
// oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
	}
	return out
}

// Cancelled receives one value for each generation request whose client
// went away before the answer was complete (detected through the request
// context). The channel is buffered (1024); values beyond that are only
// counted by CancelledCount.
func (s *Server) Cancelled() <-chan struct{} { return s.cancelled }

// CancelledCount is the number of generation requests whose client went
// away before the answer was complete.
func (s *Server) CancelledCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nCancelled
}

// Connections is the number of connections accepted so far: a client that
// keeps its connections alive opens few.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nConns
}

// FailNext makes the next generation request (chat or completions) answer
// status with body (Content-Type application/json) instead of being served.
// Calls queue up: each injected failure is used once.
func (s *Server) FailNext(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, failure{status, body})
}

// FaultNext makes the next generation request fail with f (after any
// FailNext failures queued before it are used). Calls queue up.
func (s *Server) FaultNext(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// RejectNextContext makes the next generation request fail with the
// style's context-size error whatever its size (after any FailNext
// failures queued before it are used). Calls accumulate.
func (s *Server) RejectNextContext() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectNext++
}

// SetReply replaces Options.Reply for later requests; nil restores
// DefaultReply.
func (s *Server) SetReply(fn func(req Request) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = fn
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	llama := s.opts.Style == StyleLlamaCpp
	tok := !s.opts.NoTokenize && s.opts.Style != StyleOpenAI

	if s.opts.Style != StyleOpenAI {
		mux.HandleFunc("GET /health", s.handleHealth)
	}
	if llama && tok {
		mux.HandleFunc("GET /props", s.handleProps)
		mux.HandleFunc("POST /apply-template", s.handleApplyTemplate)
	}
	if tok {
		mux.HandleFunc("POST /tokenize", s.handleTokenize)
		mux.HandleFunc("POST /detokenize", s.handleDetokenize)
	}
	mux.HandleFunc("GET /v1/models", s.handleModels)
	if llama {
		mux.HandleFunc("GET /models", s.handleModels)
		mux.HandleFunc("POST /chat/completions", s.handleChat)
		mux.HandleFunc("POST /completions", s.handleCompletions)
	}
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	mux.HandleFunc("POST /v1/embeddings", s.handleEmbeddings)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, "File Not Found", "not_found_error")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Done()
		mux.ServeHTTP(w, r)
	})
}

// marshal encodes v like llama.cpp's nlohmann::json dump: no HTML escaping
// of <, > and &, no trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"fakellama: marshal failed","type":"server_error"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// errorBody builds the style's error JSON for status and message; typ is
// the llama.cpp error type.
func (s *Server) errorBody(status int, message, typ string) any {
	switch s.opts.Style {
	case StyleVLLM:
		return map[string]any{"error": map[string]any{
			"message": message, "type": vllmErrorType(status), "param": nil, "code": status,
		}}
	case StyleOpenAI:
		return map[string]any{"error": map[string]any{
			"message": message, "type": typ, "param": nil, "code": nil,
		}}
	}
	return map[string]any{"error": map[string]any{"code": status, "message": message, "type": typ}}
}

func vllmErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequestError"
	case http.StatusNotFound:
		return "NotFoundError"
	}
	return "InternalServerError"
}

func (s *Server) writeError(w http.ResponseWriter, status int, message, typ string) {
	writeJSON(w, status, s.errorBody(status, message, typ))
}

// contextError returns the style's body for a prompt that does not fit.
func (s *Server) contextError(nPrompt, maxTokens int) any {
	n := s.opts.NCtx
	switch s.opts.Style {
	case StyleVLLM:
		msg := fmt.Sprintf("This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", n, nPrompt)
		if maxTokens > 0 && nPrompt < n {
			msg = fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.", n, nPrompt+maxTokens, nPrompt, maxTokens)
		}
		return s.errorBody(http.StatusBadRequest, msg, "")
	case StyleOpenAI:
		return map[string]any{"error": map[string]any{
			"message": fmt.Sprintf("This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.", n, nPrompt),
			"type":    "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
		}}
	}
	return map[string]any{"error": map[string]any{
		"code":            http.StatusBadRequest,
		"message":         fmt.Sprintf("request (%d tokens) exceeds the available context size (%d tokens), try increasing it", nPrompt, n),
		"type":            "exceed_context_size_error",
		"n_prompt_tokens": nPrompt,
		"n_ctx":           n,
	}}
}

// fits reports whether a request of nPrompt tokens asking for maxTokens
// (0: unset) is accepted by the style.
func (s *Server) fits(nPrompt, maxTokens int) bool {
	if nPrompt >= s.opts.NCtx {
		return false
	}
	if s.opts.Style == StyleVLLM && maxTokens > 0 && nPrompt+maxTokens > s.opts.NCtx {
		return false
	}
	return true
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.opts.Style == StyleVLLM {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (s *Server) handleProps(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"default_generation_settings": map[string]any{
			"n_ctx": s.opts.NCtx,
			"params": map[string]any{
				"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05,
				"seed": -1, "stream": true, "cache_prompt": true, "n_keep": 0,
			},
		},
		"total_slots":      1,
		"model_alias":      s.opts.Model,
		"model_path":       ModelPath,
		"modalities":       map[string]any{"vision": true, "audio": false},
		"endpoint_slots":   false,
		"endpoint_props":   false,
		"endpoint_metrics": false,
		"webui":            false,
		"chat_template":    ChatTemplate,
		"bos_token":        "",
		"eos_token":        ImEnd,
		"build_info":       BuildInfo,
		"is_sleeping":      false,
	})
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	created := time.Now().Unix()
	switch s.opts.Style {
	case StyleVLLM:
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{map[string]any{
			"id": s.opts.Model, "object": "model", "created": created, "owned_by": "vllm",
			"root": s.opts.Model, "parent": nil, "max_model_len": s.opts.NCtx,
		}}})
	case StyleOpenAI:
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{map[string]any{
			"id": s.opts.Model, "object": "model", "created": created, "owned_by": "openai",
		}}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{
			"models": []any{map[string]any{
				"name": s.opts.Model, "model": s.opts.Model, "modified_at": "", "size": "", "digest": "",
				"type": "model", "description": "", "tags": []string{""}, "capabilities": []string{"completion"},
				"parameters": "", "details": map[string]any{"format": "gguf"},
			}},
			"object": "list",
			"data": []any{map[string]any{
				"id": s.opts.Model, "object": "model", "created": created, "owned_by": "llamacpp",
				"meta": map[string]any{
					"vocab_type": 2, "n_vocab": NVocab, "n_ctx": s.opts.NCtx, "n_ctx_train": s.opts.NCtxTrain,
					"n_embd": s.opts.EmbeddingDim, "n_params": 1000000, "size": 1 << 20,
				},
			}},
		})
	}
}

// remember records the pieces of text in the server's piece table for
// /detokenize.
func (s *Server) remember(text string, special bool) []int {
	var ids []int
	s.mu.Lock()
	defer s.mu.Unlock()
	scan(text, special, func(p string, id int) {
		ids = append(ids, id)
		if id < VocabSize {
			s.pieces[id] = p
		}
	})
	return ids
}

func (s *Server) detokenize(ids []int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, id := range ids {
		switch id {
		case TokenImStart:
			b.WriteString(ImStart)
		case TokenImEnd:
			b.WriteString(ImEnd)
		case TokenMedia:
			b.WriteString(MediaMarker)
		case TokenMediaPad:
		default:
			b.WriteString(s.pieces[id])
		}
	}
	return b.String()
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<20))
	if err != nil {
		s.writeError(w, http.StatusBadRequest, "failed to read request body: "+err.Error(), "invalid_request_error")
		return nil, false
	}
	return body, true
}

func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	if s.opts.Style == StyleVLLM {
		// vLLM: {"prompt": ...} or {"messages": [...]} -> count, max_model_len, tokens.
		var req struct {
			Prompt   string    `json:"prompt"`
			Messages []Message `json:"messages"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			s.writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error")
			return
		}
		text := req.Prompt
		if req.Messages != nil {
			text = ApplyTemplate(req.Messages)
		}
		ids := s.remember(text, true)
		if ids == nil {
			ids = []int{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"count": len(ids), "max_model_len": s.opts.NCtx, "tokens": ids})
		return
	}
	var req struct {
		// Content is a string, or (as llama.cpp's tokenize_mixed takes it)
		// an array of strings, each tokenized on its own, and token ids,
		// passed through.
		Content      json.RawMessage `json:"content"`
		AddSpecial   bool            `json:"add_special"`
		ParseSpecial *bool           `json:"parse_special"`
		WithPieces   bool            `json:"with_pieces"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error")
		return
	}
	var parts []any
	if len(req.Content) > 0 && string(req.Content) != "null" {
		var text string
		if err := json.Unmarshal(req.Content, &text); err == nil {
			parts = []any{text}
		} else if err := json.Unmarshal(req.Content, &parts); err != nil {
			s.writeError(w, http.StatusBadRequest, "content must be a string or an array of strings and token ids", "invalid_request_error")
			return
		}
	}
	tokens := []any{}
	special := req.ParseSpecial == nil || *req.ParseSpecial
	var ps []string
	var ids []int
	for _, part := range parts {
		switch v := part.(type) {
		case string:
			scan(v, special, func(p string, id int) { ps, ids = append(ps, p), append(ids, id) })
			s.remember(v, special)
		case float64:
			ps, ids = append(ps, ""), append(ids, int(v))
		default:
			s.writeError(w, http.StatusBadRequest, "content must be a string or an array of strings and token ids", "invalid_request_error")
			return
		}
	}
	for i, id := range ids {
		if req.WithPieces {
			tokens = append(tokens, map[string]any{"id": id, "piece": ps[i]})
		} else {
			tokens = append(tokens, id)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens})
}

func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Tokens []int `json:"tokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error")
		return
	}
	key := "content"
	if s.opts.Style == StyleVLLM {
		key = "prompt"
	}
	writeJSON(w, http.StatusOK, map[string]any{key: s.detokenize(req.Tokens)})
}

func (s *Server) handleApplyTemplate(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Messages []Message `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"prompt": ApplyTemplate(req.Messages)})
}

// Embedding is the deterministic vector /v1/embeddings returns for text: a
// bag of the lower-cased, space-trimmed pieces of Tokenize hashed into dim
// buckets with ±1 signs and L2-normalised (all zeros for text with no
// pieces). Texts sharing words get similar vectors.
func Embedding(text string, dim int) []float64 {
	v := make([]float64, dim)
	if dim <= 0 {
		return v
	}
	scan(text, false, func(p string, _ int) {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			return
		}
		h := uint64(PieceID(p))*0x9E3779B97F4A7C15 + uint64(len(p))
		sign := 1.0
		if h>>63 == 1 {
			sign = -1
		}
		v[int((h>>1)%uint64(dim))] += sign
	})
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	if norm > 0 {
		norm = math.Sqrt(norm)
		for i := range v {
			v[i] /= norm
		}
	}
	return v
}

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error")
		return
	}
	var inputs []string
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		inputs = []string{one}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		s.writeError(w, http.StatusBadRequest, `"input" must be a string or a non-empty array of strings`, "invalid_request_error")
		return
	}
	data := make([]any, len(inputs))
	total := 0
	for i, in := range inputs {
		n := CountTokens(in)
		if n == 0 {
			s.writeError(w, http.StatusBadRequest, "Input content cannot be empty", "invalid_request_error")
			return
		}
		total += n
		data[i] = map[string]any{"embedding": Embedding(in, s.opts.EmbeddingDim), "index": i, "object": "embedding"}
	}
	model := req.Model
	if model == "" {
		model = s.opts.Model
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"model": model, "object": "list",
		"usage": map[string]any{"prompt_tokens": total, "total_tokens": total},
		"data":  data,
	})
}

// genRequest is the subset of a chat or completions body the fixture reads.
type genRequest struct {
	Model         string          `json:"model"`
	Messages      []Message       `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int       `json:"max_tokens"`
	MaxCompletionTokens *int       `json:"max_completion_tokens"`
	NPredict            *int       `json:"n_predict"`
	Tools               []tool     `json:"tools"`
	ToolChoice          toolChoice `json:"tool_choice"`
}

func (g *genRequest) maxTokens() int {
	for _, p := range []*int{g.MaxCompletionTokens, g.MaxTokens, g.NPredict} {
		if p != nil && *p > 0 {
			return *p
		}
	}
	return 0
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	s.handleGenerate(w, r, true)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	s.handleGenerate(w, r, false)
}

var errGone = errors.New("client went away")

func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request, chat bool) {
	body, ok := s.readBody(w, r)
	if !ok {
		return
	}
	var g genRequest
	if err := json.Unmarshal(body, &g); err != nil {
		s.writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error(), "invalid_request_error")
		return
	}
	req := &Request{
		Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Model: g.Model,
		MaxTokens: g.maxTokens(), Stream: g.Stream,
		IncludeUsage: g.StreamOptions != nil && g.StreamOptions.IncludeUsage,
	}
	if chat {
		if g.Messages == nil {
			s.writeError(w, http.StatusBadRequest, "'messages' is required", "invalid_request_error")
			return
		}
		req.Messages = g.Messages
		req.Prompt = ApplyTemplate(g.Messages)
	} else {
		var p string
		var ps []string
		switch {
		case json.Unmarshal(g.Prompt, &p) == nil:
		case json.Unmarshal(g.Prompt, &ps) == nil && len(ps) > 0:
			p = ps[0]
		default:
			s.writeError(w, http.StatusBadRequest, "\"prompt\" must be a string or an array of strings", "invalid_request_error")
			return
		}
		req.Prompt = p
	}
	req.PromptTokens = len(s.remember(req.Prompt, true))

	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	var fail *failure
	forced := false
	if len(s.fails) > 0 {
		fail = &s.fails[0]
		s.fails = s.fails[1:]
	} else if len(s.faults) > 0 {
		req.Fault = s.faults[0]
		s.faults = s.faults[1:]
	} else if s.rejectNext > 0 {
		s.rejectNext--
		forced = true
	}
	replyFn := s.reply
	s.mu.Unlock()

	if fail != nil {
		s.finish(req, func(q *Request) { q.Status, q.Injected = fail.status, true })
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(fail.status)
		_, _ = io.WriteString(w, fail.body)
		return
	}
	switch req.Fault {
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	case FaultInvalidJSON:
		if req.Stream {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, "data: {\"choices\": [{\"delta\": not json\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id": "chatcmpl-1", "choices": [{"message": {"content": "half`)
		return
	case FaultHuge:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"chatcmpl-huge","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"`)
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for n := 0; n < OverLongBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(w, `"}}]}`)
		return
	}
	if forced || !s.fits(req.PromptTokens, req.MaxTokens) {
		s.finish(req, func(q *Request) { q.Status, q.Rejected = http.StatusBadRequest, true })
		writeJSON(w, http.StatusBadRequest, s.contextError(req.PromptTokens, req.MaxTokens))
		return
	}

	if replyFn == nil {
		replyFn = DefaultReply
	}
	var call *ToolCall
	if chat {
		call = DefaultToolCall(req.Messages, g.Tools, g.ToolChoice)
	}
	full := replyFn(*req)
	if call != nil {
		full = call.Arguments
	}
	pieces := Pieces(full)
	limit := len(pieces)
	if req.MaxTokens > 0 {
		limit = min(limit, req.MaxTokens)
	}
	if s.opts.Style == StyleLlamaCpp {
		// llama.cpp stops when prompt + generated tokens reach n_ctx.
		limit = min(limit, s.opts.NCtx-req.PromptTokens)
	}
	finish := "stop"
	if limit < len(pieces) {
		finish = "length"
	}
	text := strings.Join(pieces[:limit], "")
	s.remember(text, true)
	if call != nil {
		finish, text = "tool_calls", ""
		req.ToolCall = call
	}

	g.Model = req.Model
	if g.Model == "" {
		g.Model = s.opts.Model
	}
	a := answer{
		s: s, w: w, ctx: r.Context(), req: req, chat: chat, model: g.Model,
		id: "chatcmpl-" + randomString(), created: time.Now().Unix(),
		text: text, finish: finish, nCompletion: limit, call: call,
	}
	if !chat {
		a.id = "cmpl-" + randomString()
	}
	var err error
	if req.Stream {
		err = a.stream()
	} else {
		err = a.whole()
	}
	if err != nil {
		select {
		case <-s.closing:
			return // the server is shutting down; the client did not leave
		default:
		}
		s.finish(req, func(q *Request) { q.Cancelled = true })
		s.mu.Lock()
		s.nCancelled++
		s.mu.Unlock()
		select {
		case s.cancelled <- struct{}{}:
		default:
		}
		return
	}
	s.finish(req, func(q *Request) {
		q.Status, q.Reply, q.FinishReason, q.CompletionTokens = http.StatusOK, text, finish, limit
	})
}

// finish updates a recorded request under the lock.
func (s *Server) finish(req *Request, fn func(*Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(req)
}

func randomString() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 32)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return string(b)
}

// words splits text into chunks, one per word, each with the whitespace
// before it; trailing whitespace joins the last chunk. The chunks
// concatenate back to text.
func words(text string) []string {
	var out []string
	start := 0
	i := 0
	for i < len(text) {
		for i < len(text) && isSpace(text[i]) {
			i++
		}
		for i < len(text) && !isSpace(text[i]) {
			i++
		}
		out = append(out, text[start:i])
		start = i
	}
	if n := len(out); n > 1 && strings.TrimSpace(out[n-1]) == "" {
		out[n-2] += out[n-1]
		out = out[:n-1]
	}
	return out
}

// answer writes one generation response.
type answer struct {
	s           *Server
	w           http.ResponseWriter
	ctx         context.Context
	req         *Request
	chat        bool
	model       string
	id          string
	created     int64
	text        string
	finish      string
	nCompletion int
	call        *ToolCall
}

// cut ends the answer abruptly: the connection is closed without ending
// the body, as when the server process dies.
func (a *answer) cut() {
	if fl, ok := a.w.(http.Flusher); ok {
		fl.Flush()
	}
	a.s.finish(a.req, func(q *Request) { q.Status = http.StatusOK })
	panic(http.ErrAbortHandler)
}

// silence sends the headers and then stalls.
func (a *answer) silence(contentType string) error {
	a.w.Header().Set("Content-Type", contentType)
	a.w.WriteHeader(http.StatusOK)
	if fl, ok := a.w.(http.Flusher); ok {
		fl.Flush()
	}
	return a.stall()
}

// wait sleeps d, failing if the client goes away or the server closes.
func (a *answer) wait(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-a.ctx.Done():
		return errGone
	case <-a.s.closing:
		return errGone
	}
}

// stall blocks until the client goes away or the server closes.
func (a *answer) stall() error {
	select {
	case <-a.ctx.Done():
	case <-a.s.closing:
	}
	return errGone
}

func (a *answer) usage() map[string]any {
	return map[string]any{
		"completion_tokens": a.nCompletion,
		"prompt_tokens":     a.req.PromptTokens,
		"total_tokens":      a.nCompletion + a.req.PromptTokens,
	}
}

func (a *answer) timings() map[string]any {
	p, n := a.req.PromptTokens, a.nCompletion
	return map[string]any{
		"cache_n":  0,
		"prompt_n": p, "prompt_ms": float64(p) * 0.1, "prompt_per_token_ms": 0.1, "prompt_per_second": 10000.0,
		"predicted_n": n, "predicted_ms": float64(n) * 10, "predicted_per_token_ms": 10.0, "predicted_per_second": 100.0,
	}
}

// envelope is the fields every response object shares.
func (a *answer) envelope(object string) map[string]any {
	m := map[string]any{"id": a.id, "object": object, "created": a.created, "model": a.model}
	if a.s.opts.Style == StyleLlamaCpp {
		m["system_fingerprint"] = BuildInfo
	}
	return m
}

func (a *answer) whole() error {
	if err := a.wait(time.Duration(len(words(a.text))) * a.s.opts.ChunkDelay); err != nil {
		return err
	}
	if a.s.opts.StallAfterChunks > 0 {
		return a.stall()
	}
	if a.req.Fault == FaultSilence {
		return a.silence("application/json")
	}
	var m map[string]any
	if a.chat {
		m = a.envelope("chat.completion")
		msg := map[string]any{"role": "assistant", "content": a.text}
		if a.call != nil {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": a.call.ID, "type": "function",
				"function": map[string]any{"name": a.call.Name, "arguments": a.call.Arguments}}}
		}
		m["choices"] = []any{map[string]any{
			"finish_reason": a.finish, "index": 0,
			"message": msg,
		}}
	} else {
		m = a.envelope("text_completion")
		m["choices"] = []any{map[string]any{
			"text": a.text, "index": 0, "logprobs": nil, "finish_reason": a.finish,
		}}
	}
	m["usage"] = a.usage()
	if a.s.opts.Style == StyleLlamaCpp {
		m["timings"] = a.timings()
	}
	if a.ctx.Err() != nil {
		return errGone
	}
	if a.req.Fault == FaultCut {
		b, _ := marshal(m)
		a.w.Header().Set("Content-Type", "application/json")
		a.w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		a.w.WriteHeader(http.StatusOK)
		_, _ = a.w.Write(b[:len(b)/2])
		a.cut()
	}
	writeJSON(a.w, http.StatusOK, m)
	return nil
}

func (a *answer) stream() error {
	if a.req.Fault == FaultSilence {
		return a.silence("text/event-stream")
	}
	fl, _ := a.w.(http.Flusher)
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	a.w.WriteHeader(http.StatusOK)
	sent := 0
	// emit writes one event. The client counts as gone only if it left
	// before an event was written: once [DONE] is out the answer is
	// complete, whatever the client does next.
	emit := func(payload string) error {
		if a.s.opts.StallAfterChunks > 0 && sent >= a.s.opts.StallAfterChunks {
			return a.stall()
		}
		if a.req.Fault == FaultCut && sent >= 3 {
			a.cut()
		}
		if a.ctx.Err() != nil {
			return errGone
		}
		if _, err := io.WriteString(a.w, "data: "+payload+"\n\n"); err != nil {
			return errGone
		}
		if fl != nil {
			fl.Flush()
		}
		sent++
		return nil
	}
	event := func(m map[string]any) error {
		b, err := marshal(m)
		if err != nil {
			return err
		}
		return emit(string(b))
	}
	delta := func(choice map[string]any) map[string]any {
		if a.chat {
			m := a.envelope("chat.completion.chunk")
			m["choices"] = []any{choice}
			return m
		}
		m := a.envelope("text_completion")
		m["choices"] = []any{choice}
		return m
	}
	if a.chat {
		if err := event(delta(map[string]any{
			"finish_reason": nil, "index": 0,
			"delta": map[string]any{"role": "assistant", "content": nil},
		})); err != nil {
			return err
		}
	}
	if a.call != nil {
		// llama.cpp streams the call's id and name first, then the
		// arguments in pieces.
		args := a.call.Arguments
		half := len(args) / 2
		for i, frag := range []map[string]any{
			{"index": 0, "id": a.call.ID, "type": "function", "function": map[string]any{"name": a.call.Name, "arguments": ""}},
			{"index": 0, "function": map[string]any{"arguments": args[:half]}},
			{"index": 0, "function": map[string]any{"arguments": args[half:]}},
		} {
			if i > 0 {
				if err := a.wait(a.s.opts.ChunkDelay); err != nil {
					return err
				}
			}
			if err := event(delta(map[string]any{"finish_reason": nil, "index": 0, "delta": map[string]any{"tool_calls": []any{frag}}})); err != nil {
				return err
			}
		}
	}
	for _, wd := range words(a.text) {
		if err := a.wait(a.s.opts.ChunkDelay); err != nil {
			return err
		}
		var c map[string]any
		if a.chat {
			c = map[string]any{"finish_reason": nil, "index": 0, "delta": map[string]any{"content": wd}}
		} else {
			c = map[string]any{"text": wd, "index": 0, "logprobs": nil, "finish_reason": nil}
		}
		if err := event(delta(c)); err != nil {
			return err
		}
	}
	var final map[string]any
	if a.chat {
		final = delta(map[string]any{"finish_reason": a.finish, "index": 0, "delta": map[string]any{}})
	} else {
		// llama.cpp's final text_completion chunk always carries usage.
		final = delta(map[string]any{"text": "", "index": 0, "logprobs": nil, "finish_reason": a.finish})
		final["usage"] = a.usage()
	}
	last := final
	var usage map[string]any
	if a.chat && a.req.IncludeUsage {
		usage = a.envelope("chat.completion.chunk")
		usage["choices"] = []any{}
		usage["usage"] = a.usage()
		last = usage
	}
	if a.s.opts.Style == StyleLlamaCpp {
		last["timings"] = a.timings()
	}
	if err := event(final); err != nil {
		return err
	}
	if usage != nil {
		if err := event(usage); err != nil {
			return err
		}
	}
	return emit("[DONE]")
}
