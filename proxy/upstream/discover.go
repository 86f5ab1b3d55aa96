package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/jsondepth"
)

// Upstream kinds reported in Info.Kind.
const (
	KindLlamaCpp = "llamacpp"
	KindVLLM     = "vllm"
	KindOpenAI   = "openai"
)

// Info describes the upstream server and its model.
type Info struct {
	// Kind is KindLlamaCpp, KindVLLM or KindOpenAI (any other
	// OpenAI-compatible server, Ollama included).
	Kind string
	// Model is the served model's name (llama.cpp alias or file name, vLLM
	// served model name, first model of /v1/models otherwise).
	Model string
	// NCtx is the context window in tokens of one request, 0 if unknown.
	NCtx int
	// CanTokenize is true when the upstream answers POST /tokenize
	// (llama.cpp and vLLM), so CountTokens gives exact counts.
	CanTokenize bool
	// BatchTokenize is true when POST /tokenize counts many texts in one
	// request (llama.cpp's "content" array of texts and token ids): then
	// CountTokens costs one round trip, whatever the number of texts.
	BatchTokenize bool
	// ModelPath is the served model's file as llama.cpp's /props names it
	// (model_path); empty when unknown. A proxy on the same machine can
	// load its vocabulary and count tokens without any round trip.
	ModelPath string
	// Slots is llama.cpp's total_slots: requests it serves at once; 0 if
	// unknown. Slots that share one KV pool each report the whole pool as
	// their NCtx, so concurrent requests can overflow it.
	Slots int
	// TemplateOverhead is the cost of the chat template, measured through
	// the upstream (llama.cpp /apply-template + /tokenize, vLLM /tokenize
	// with messages); zero if unknown.
	TemplateOverhead TemplateCost
	// Responses is true when the upstream serves the Responses API (POST
	// /v1/responses exists: an empty request is refused as invalid, not as
	// an unknown route).
	Responses bool
}

// TemplateCost is the number of tokens a chat template adds around message
// contents: PerMessage for each message (role markers, separators) and
// Fixed once per prompt (BOS, default system text, generation prompt). A
// rendered prompt costs about Fixed + Σ(PerMessage + content tokens).
type TemplateCost struct {
	// PerMessage is the template's cost of each message besides its content.
	PerMessage int
	// Fixed is the template's cost once per prompt.
	Fixed int
}

// LastInfo returns the Info of the most recent successful Discover, if any.
func (c *Client) LastInfo() (Info, bool) {
	if p := c.info.Load(); p != nil {
		return *p, true
	}
	return Info{}, false
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

// call performs a small JSON request and returns the status and whole body.
func (c *Client) call(ctx context.Context, method, p string, body []byte) (int, []byte, error) {
	resp, err := c.Do(ctx, method, p, jsonHeader, body)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHelperBody+1))
	if err != nil {
		return resp.Status, nil, fmt.Errorf("upstream %s %s: read body: %w", method, p, err)
	}
	if len(data) > maxHelperBody {
		return resp.Status, nil, fmt.Errorf("upstream %s %s: body larger than %d bytes", method, p, maxHelperBody)
	}
	return resp.Status, data, nil
}

// statusError describes a non-2xx answer with the upstream's message.
func statusError(method, p string, status int, body []byte) error {
	msg := gjson.GetBytes(OpenAIError(status, body), "error.message").String()
	return fmt.Errorf("upstream %s %s: HTTP %d: %s", method, p, status, msg)
}

// Discover identifies the upstream and its model: llama.cpp through
// GET /props (default_generation_settings.n_ctx, or the top-level n_ctx of
// older builds), vLLM through GET /v1/models (data[].max_model_len), any
// other server answering GET /v1/models as KindOpenAI with NCtx 0. It then
// probes /tokenize and measures the chat template overhead where possible;
// failures of those probes only leave the fields zero. The result is cached
// for CountTokens, Ready and LastInfo; call Discover again to refresh it
// (for example after the upstream restarted with another model).
func (c *Client) Discover(ctx context.Context) (Info, error) {
	c.discover.Lock()
	defer c.discover.Unlock()

	var info Info
	var firstErr error
	propsStatus, props, err := c.call(ctx, http.MethodGet, "/props", nil)
	if err != nil {
		if ctx.Err() != nil {
			return Info{}, fmt.Errorf("discover: %w", err)
		}
		firstErr = err
	} else if propsStatus == http.StatusOK && jsondepth.Valid(props) && isLlamaProps(props) {
		info.Kind = KindLlamaCpp
		info.NCtx = llamaNCtx(props)
		info.Slots = int(gjson.GetBytes(props, "total_slots").Int())
		mp := gjson.GetBytes(props, "model_path")
		if mp.Type == gjson.String {
			info.ModelPath = mp.String()
		}
		// Without --alias, llama.cpp reports the model's file path as its
		// alias: name the model by the file's base name then.
		if a := gjson.GetBytes(props, "model_alias"); a.Type == gjson.String && a.String() != "" && a.String() != info.ModelPath {
			info.Model = a.String()
		} else if info.ModelPath != "" {
			info.Model = path.Base(info.ModelPath)
		}
	}

	modelsStatus, models, err := c.call(ctx, http.MethodGet, "/v1/models", nil)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return Info{}, fmt.Errorf("discover: %w", err)
		}
		if firstErr == nil {
			firstErr = err
		}
	case modelsStatus == http.StatusOK && jsondepth.Valid(models):
		data := gjson.GetBytes(models, "data")
		first := data.Get("0")
		if info.Model == "" {
			info.Model = first.Get("id").String()
		}
		if info.Kind == "" {
			info.Kind = KindOpenAI
			data.ForEach(func(_, m gjson.Result) bool {
				if m.Get("owned_by").String() == "vllm" || m.Get("max_model_len").Exists() {
					info.Kind = KindVLLM
					info.Model = m.Get("id").String()
					info.NCtx = int(m.Get("max_model_len").Int())
					return false
				}
				return true
			})
		}
	case info.Kind == "" && firstErr == nil:
		firstErr = statusError(http.MethodGet, "/v1/models", modelsStatus, models)
	}
	if info.Kind == "" {
		if firstErr == nil {
			firstErr = errors.New("no discovery endpoint answered")
		}
		return Info{}, fmt.Errorf("discover: %w", firstErr)
	}
	if info.NCtx < 0 {
		info.NCtx = 0
	}

	info.Responses = c.hasResponses(ctx)
	if info.Kind == KindLlamaCpp || info.Kind == KindVLLM {
		if n, err := c.tokenize(ctx, info, "Hello world"); err == nil {
			info.CanTokenize = true
			info.BatchTokenize = info.Kind == KindLlamaCpp && c.probeBatch(ctx, n)
			tc, err := c.measureTemplate(ctx, info)
			if err != nil {
				c.log.Debug("template overhead not measured", "error", err)
			} else {
				info.TemplateOverhead = tc
			}
		} else {
			if ctx.Err() != nil {
				return Info{}, fmt.Errorf("discover: %w", err)
			}
			c.log.Debug("upstream cannot tokenize", "error", err)
		}
	}
	c.info.Store(&info)
	c.log.Info("upstream discovered", "kind", info.Kind, "model", info.Model, "n_ctx", info.NCtx,
		"can_tokenize", info.CanTokenize, "batch_tokenize", info.BatchTokenize, "slots", info.Slots,
		"model_path", info.ModelPath, "template_per_message", info.TemplateOverhead.PerMessage,
		"template_fixed", info.TemplateOverhead.Fixed, "responses_api", info.Responses)
	return info, nil
}

// hasResponses probes POST /v1/responses with an empty object: a server
// that has the route refuses it as invalid (400, 422), one without it
// answers 404, 405 or 501 (or fails).
func (c *Client) hasResponses(ctx context.Context) bool {
	status, _, err := c.call(ctx, http.MethodPost, "/v1/responses", []byte(`{}`))
	if err != nil {
		return false
	}
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return false
	}
	return status < 500
}

// isLlamaProps reports whether a /props body comes from llama.cpp.
func isLlamaProps(b []byte) bool {
	for _, k := range []string{"default_generation_settings", "n_ctx", "total_slots", "model_path", "build_info", "chat_template"} {
		if gjson.GetBytes(b, k).Exists() {
			return true
		}
	}
	return false
}

// llamaNCtx reads the per-slot context size from a llama.cpp /props body,
// across versions.
func llamaNCtx(b []byte) int {
	for _, p := range []string{"default_generation_settings.n_ctx", "n_ctx", "default_generation_settings.params.n_ctx", "n_ctx_slot"} {
		if v := gjson.GetBytes(b, p); v.Type == gjson.Number && v.Int() > 0 {
			return int(v.Int())
		}
	}
	return 0
}

// info returns the cached Info, discovering it first if needed.
func (c *Client) infoOrDiscover(ctx context.Context) (Info, error) {
	if p := c.info.Load(); p != nil {
		return *p, nil
	}
	return c.Discover(ctx)
}

// tokenize counts the tokens of one text without special tokens.
func (c *Client) tokenize(ctx context.Context, info Info, text string) (int, error) {
	var body []byte
	var err error
	switch info.Kind {
	case KindLlamaCpp:
		body, err = json.Marshal(struct {
			Content    string `json:"content"`
			AddSpecial bool   `json:"add_special"`
		}{text, false})
	case KindVLLM:
		body, err = json.Marshal(struct {
			Model            string `json:"model,omitempty"`
			Prompt           string `json:"prompt"`
			AddSpecialTokens bool   `json:"add_special_tokens"`
		}{info.Model, text, false})
	default:
		return 0, fmt.Errorf("tokenize on %q upstream: %w", info.Kind, ErrUnsupported)
	}
	if err != nil {
		return 0, fmt.Errorf("tokenize: encode request: %w", err)
	}
	return c.postTokenize(ctx, body)
}

// postTokenize sends a /tokenize request and reads the count from either
// server's answer ("count" or the length of "tokens").
func (c *Client) postTokenize(ctx context.Context, body []byte) (int, error) {
	status, data, err := c.call(ctx, http.MethodPost, "/tokenize", body)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, statusError(http.MethodPost, "/tokenize", status, data)
	}
	if n := gjson.GetBytes(data, "count"); n.Type == gjson.Number {
		return int(n.Int()), nil
	}
	if t := gjson.GetBytes(data, "tokens"); t.IsArray() {
		return int(t.Get("#").Int()), nil
	}
	return 0, fmt.Errorf("upstream POST /tokenize: unexpected answer %q", snippet(data, 120))
}

// templateProbe is the conversation used to measure template overhead.
var templateProbe = []struct{ Role, Content string }{
	{"user", "What is the capital of France?"},
	{"assistant", "The capital of France is Paris."},
	{"user", "And of Italy?"},
}

type chatMsg struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// measureTemplate renders one and three probe messages through the
// upstream's chat template and derives the per-message and fixed costs.
func (c *Client) measureTemplate(ctx context.Context, info Info) (TemplateCost, error) {
	content := make([]int, len(templateProbe))
	msgs := make([]chatMsg, len(templateProbe))
	for i, m := range templateProbe {
		n, err := c.tokenize(ctx, info, m.Content)
		if err != nil {
			return TemplateCost{}, err
		}
		content[i] = n
		msgs[i] = chatMsg{m.Role, m.Content}
	}
	p1, err := c.promptTokens(ctx, info, msgs[:1])
	if err != nil {
		return TemplateCost{}, err
	}
	p3, err := c.promptTokens(ctx, info, msgs)
	if err != nil {
		return TemplateCost{}, err
	}
	extra := p3 - p1 - content[1] - content[2]
	per := (extra + 1) / 2 // round up: an overestimate is the safe side
	if per < 0 {
		per = 0
	}
	fixed := p1 - content[0] - per
	if fixed < 0 {
		fixed = 0
	}
	return TemplateCost{PerMessage: per, Fixed: fixed}, nil
}

// promptTokens counts the tokens of the whole prompt the upstream builds
// from msgs, generation prompt included.
func (c *Client) promptTokens(ctx context.Context, info Info, msgs []chatMsg) (int, error) {
	switch info.Kind {
	case KindLlamaCpp:
		body, err := json.Marshal(struct {
			Messages []chatMsg `json:"messages"`
		}{msgs})
		if err != nil {
			return 0, fmt.Errorf("apply-template: encode request: %w", err)
		}
		status, data, err := c.call(ctx, http.MethodPost, "/apply-template", body)
		if err != nil {
			return 0, err
		}
		if status != http.StatusOK {
			return 0, statusError(http.MethodPost, "/apply-template", status, data)
		}
		prompt := gjson.GetBytes(data, "prompt")
		if prompt.Type != gjson.String {
			return 0, fmt.Errorf("upstream POST /apply-template: no prompt in %q", snippet(data, 120))
		}
		// The server tokenizes chat prompts with special tokens (BOS).
		body, err = json.Marshal(struct {
			Content    string `json:"content"`
			AddSpecial bool   `json:"add_special"`
		}{prompt.String(), true})
		if err != nil {
			return 0, fmt.Errorf("tokenize: encode request: %w", err)
		}
		return c.postTokenize(ctx, body)
	case KindVLLM:
		body, err := json.Marshal(struct {
			Model               string    `json:"model,omitempty"`
			Messages            []chatMsg `json:"messages"`
			AddGenerationPrompt bool      `json:"add_generation_prompt"`
		}{info.Model, msgs, true})
		if err != nil {
			return 0, fmt.Errorf("tokenize: encode request: %w", err)
		}
		return c.postTokenize(ctx, body)
	default:
		return 0, fmt.Errorf("prompt tokens on %q upstream: %w", info.Kind, ErrUnsupported)
	}
}

// batchSeparator is the token id CountTokens puts between texts in one
// llama.cpp /tokenize request. llama.cpp passes the integers of a "content"
// array through as token ids and tokenizes each string on its own (as a
// lone text, exactly as a request of its own would), so the counts are the
// runs of tokens between separators. No tokenizer produces a negative id.
const batchSeparator = -1

// maxBatchBytes bounds the text of one batched /tokenize request; larger
// batches are split into several requests.
const maxBatchBytes = 1 << 20

// probeBatch checks that the upstream counts a batch as it counts lone
// texts: "Hello world" twice around a separator must come back as two runs
// of single tokens each (the count of one "Hello world").
func (c *Client) probeBatch(ctx context.Context, single int) bool {
	counts, err := c.tokenizeBatch(ctx, []string{"Hello world", "Hello world"})
	if err != nil {
		c.log.Debug("upstream /tokenize does not take batches", "error", err)
		return false
	}
	return counts[0] == single && counts[1] == single
}

// tokenizeBatch counts texts (none empty) with one llama.cpp /tokenize
// request per maxBatchBytes of text.
func (c *Client) tokenizeBatch(ctx context.Context, texts []string) ([]int, error) {
	out := make([]int, 0, len(texts))
	for len(texts) > 0 {
		n, size := 0, 0
		for n < len(texts) && (n == 0 || size+len(texts[n]) <= maxBatchBytes) {
			size += len(texts[n])
			n++
		}
		content := make([]any, 0, 2*n)
		for i, t := range texts[:n] {
			if i > 0 {
				content = append(content, batchSeparator)
			}
			content = append(content, t)
		}
		body, err := json.Marshal(struct {
			Content    []any `json:"content"`
			AddSpecial bool  `json:"add_special"`
		}{content, false})
		if err != nil {
			return nil, fmt.Errorf("tokenize: encode request: %w", err)
		}
		status, data, err := c.call(ctx, http.MethodPost, "/tokenize", body)
		if err != nil {
			return nil, err
		}
		if status != http.StatusOK {
			return nil, statusError(http.MethodPost, "/tokenize", status, data)
		}
		toks := gjson.GetBytes(data, "tokens")
		if !toks.IsArray() {
			return nil, fmt.Errorf("upstream POST /tokenize: unexpected answer %q", snippet(data, 120))
		}
		run := 0
		got := len(out)
		toks.ForEach(func(_, v gjson.Result) bool {
			if v.Type == gjson.Number && v.Int() == batchSeparator {
				out = append(out, run)
				run = 0
			} else {
				run++
			}
			return true
		})
		out = append(out, run)
		if len(out)-got != n {
			return nil, fmt.Errorf("upstream POST /tokenize: %d counts for a batch of %d texts", len(out)-got, n)
		}
		texts = texts[n:]
	}
	return out, nil
}

// CountTokens returns the exact token count of each text (no special
// tokens) using the upstream's tokenizer: llama.cpp POST /tokenize
// {"content","add_special":false} or vLLM POST /tokenize
// {"prompt","add_special_tokens":false}. Where the upstream takes batches
// (Info.BatchTokenize) all texts go in one request; otherwise requests run
// concurrently, at most Options.TokenizeConcurrency at a time. Empty and
// repeated texts cost nothing. It discovers the upstream first if Discover
// was never called, and fails with ErrUnsupported when the upstream cannot
// tokenize.
func (c *Client) CountTokens(ctx context.Context, texts []string) ([]int, error) {
	out := make([]int, len(texts))
	if len(texts) == 0 {
		return out, nil
	}
	info, err := c.infoOrDiscover(ctx)
	if err != nil {
		return nil, fmt.Errorf("count tokens: %w", err)
	}
	if !info.CanTokenize {
		return nil, fmt.Errorf("count tokens on %s upstream: %w", info.Kind, ErrUnsupported)
	}

	// Unique non-empty texts, each remembered with the positions using it.
	uniq := make(map[string][]int, len(texts))
	order := make([]string, 0, len(texts))
	for i, t := range texts {
		if t == "" {
			continue
		}
		if _, ok := uniq[t]; !ok {
			order = append(order, t)
		}
		uniq[t] = append(uniq[t], i)
	}
	if len(order) == 0 {
		return out, nil
	}
	if info.BatchTokenize {
		counts, err := c.tokenizeBatch(ctx, order)
		if err != nil {
			return nil, fmt.Errorf("count tokens: %w", err)
		}
		for i, t := range order {
			for _, pos := range uniq[t] {
				out[pos] = counts[i]
			}
		}
		return out, nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		sem      = make(chan struct{}, c.opts.TokenizeConcurrency)
		counts   = make([]int, len(order))
	)
loop:
	for i, t := range order {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			n, err := c.tokenize(ctx, info, t)
			if err != nil {
				errOnce.Do(func() {
					firstErr = fmt.Errorf("text %d: %w", uniq[t][0], err)
					cancel(firstErr)
				})
				return
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	if firstErr != nil {
		return nil, fmt.Errorf("count tokens: %w", firstErr)
	}
	for i, t := range order {
		for _, pos := range uniq[t] {
			out[pos] = counts[i]
		}
	}
	return out, nil
}

// Ready checks that the upstream is reachable and ready to serve: GET
// /health for llama.cpp and vLLM (llama.cpp answers 503 while loading its
// model), GET /v1/models otherwise. Before any Discover it tries /health
// and falls back to /v1/models when that path does not exist.
func (c *Client) Ready(ctx context.Context) error {
	kind := ""
	if p := c.info.Load(); p != nil {
		kind = p.Kind
	}
	if kind != KindOpenAI {
		status, body, err := c.call(ctx, http.MethodGet, "/health", nil)
		if err != nil {
			return fmt.Errorf("ready: %w", err)
		}
		switch {
		case status >= 200 && status < 300:
			return nil
		case kind != "" || (status != http.StatusNotFound && status != http.StatusMethodNotAllowed &&
			status != http.StatusUnauthorized && status != http.StatusForbidden):
			return fmt.Errorf("ready: %w", statusError(http.MethodGet, "/health", status, body))
		}
	}
	status, body, err := c.call(ctx, http.MethodGet, "/v1/models", nil)
	if err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	if status < 200 || status >= 300 {
		return fmt.Errorf("ready: %w", statusError(http.MethodGet, "/v1/models", status, body))
	}
	return nil
}
