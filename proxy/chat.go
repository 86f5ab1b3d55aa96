package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// Template costs assumed when the upstream cannot measure its template.
const (
	defaultPerMessage    = 8
	defaultTemplateFixed = 16
	// maxBufferedBody bounds a non-streamed upstream body.
	maxBufferedBody = 64 << 20
)

// resolveKey picks the MegaContext: the first configured header with a
// value, else the request's user field, else "default".
func (s *Server) resolveKey(ctx *fasthttp.RequestCtx, tenant string, r *chatRequest) memory.Key {
	k := memory.Key{Tenant: tenant, Context: "default"}
	found := false
	for _, h := range s.opts.ContextHeaders {
		if v := strings.TrimSpace(string(ctx.Request.Header.Peek(h))); v != "" {
			k.Context, found = v, true
			break
		}
	}
	if !found && r.user != "" {
		k.Context = r.user
	}
	for _, h := range s.opts.ThreadHeaders {
		if v := strings.TrimSpace(string(ctx.Request.Header.Peek(h))); v != "" {
			k.Thread = v
			break
		}
	}
	return k
}

// budget is the token budget of one request.
type budget struct {
	nctx, reserve, tools, fixed, perMessage, total int
}

func (s *Server) budgetFor(ctx context.Context, r *chatRequest) budget {
	info := s.upstreamInfo(ctx)
	b := budget{nctx: s.opts.NCtx, reserve: r.maxTokens, perMessage: info.TemplateOverhead.PerMessage, fixed: info.TemplateOverhead.Fixed}
	if b.nctx <= 0 {
		b.nctx = info.NCtx
	}
	if b.nctx <= 0 {
		b.nctx = s.opts.DefaultNCtx
	}
	if b.reserve <= 0 {
		b.reserve = min(s.opts.DefaultMaxTokens, b.nctx/4)
	}
	if b.perMessage <= 0 {
		b.perMessage = defaultPerMessage
	}
	if b.fixed <= 0 {
		b.fixed = defaultTemplateFixed
	}
	if r.tools != "" {
		b.tools = s.eng.Counter().Count(r.tools) + 16
	}
	b.total = b.nctx - b.reserve - b.tools - b.fixed - s.opts.SafetyMargin
	return b
}

func (s *Server) chat(ctx *fasthttp.RequestCtx, start time.Time, p auth.Principal) {
	req, aerr := parseChatRequest(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	key := s.resolveKey(ctx, p.Tenant, req)
	cctx, stop := watchClient(ctx.Conn())
	b := s.budgetFor(cctx, req)
	if b.total < 64 {
		stop()
		writeError(ctx, &apiError{status: 400, message: fmt.Sprintf("max_tokens (%d) leaves no room for the prompt in the model's context of %d tokens", b.reserve, b.nctx), typ: "invalid_request_error", param: "max_tokens", code: "context_length_exceeded"})
		return
	}
	var (
		resp *upstream.Response
		w    *memory.Window
	)
	for attempt := 0; ; attempt++ {
		var err error
		w, err = s.eng.Prepare(memory.Request{Key: key, Messages: req.messages, Budget: b.total, PerMessage: b.perMessage, TailPercent: s.opts.TailPercent, Scopes: p.Scopes})
		if err != nil {
			stop()
			s.memoryError(ctx, err, b)
			return
		}
		if attempt == 0 {
			s.m.ingested.Add(float64(w.NewMessages))
		}
		body, liveHits, err := renderBody(req, w, s.opts.Policy, p.Scopes)
		if err != nil {
			stop()
			writeError(ctx, &apiError{status: 500, message: "rewrite request: " + err.Error(), typ: "server_error", code: "internal_error"})
			return
		}
		if attempt == 0 {
			s.audit(key, append(liveHits, w.Hits...))
			s.m.overhead.Observe(time.Since(start).Seconds())
		}
		setWindowHeaders(ctx, key, w, b, time.Since(start))
		resp, err = s.up.Do(cctx, "POST", "/v1/chat/completions", s.forwardHeaders(ctx), body)
		if err != nil {
			stop()
			s.transportError(ctx, err)
			return
		}
		if attempt > 0 || resp.Status < 400 || resp.IsEventStream() {
			break
		}
		errBody, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if !upstream.IsContextLengthError(resp.Status, errBody) {
			resp = &upstream.Response{Status: resp.Status, Header: resp.Header, Body: io.NopCloser(strings.NewReader(string(errBody)))}
			break
		}
		// The upstream counted more than we did: shrink by the overshoot it
		// reports (llama.cpp says n_prompt_tokens and n_ctx), at least a quarter.
		s.m.retries.Inc()
		shrink := b.total / 4
		if np, nc := gjson.GetBytes(errBody, "error.n_prompt_tokens").Int(), gjson.GetBytes(errBody, "error.n_ctx").Int(); np > 0 && nc > 0 {
			shrink = max(shrink, int(np-nc)+b.reserve+s.opts.SafetyMargin)
		}
		b.total -= shrink
		s.log.Info("upstream context exceeded; retrying with a smaller window", "context", key.Context, "budget", b.total)
		if b.total < 64 {
			stop()
			writeError(ctx, &apiError{status: 400, message: "the conversation does not fit the model's context even after shrinking the window", typ: "invalid_request_error", param: "messages", code: "context_length_exceeded"})
			return
		}
	}
	s.m.windowTokens.Observe(float64(w.Tokens))
	s.m.historyTokens.Observe(float64(w.HistoryTokens))
	s.m.expansions.Add(float64(w.Expanded))
	parent, since := w.LastSeq, w.NextSeq
	s.relay(ctx, resp, stop, func(msg upstream.Message, complete bool) {
		if parent < 0 || (msg.Content == "" && len(msg.ToolCalls) == 0) {
			return
		}
		m, err := responseMessage(msg)
		if err != nil {
			s.log.Warn("response not stored", "err", err)
			return
		}
		// Store the reply off the response path. If the client's next turn
		// arrives first, it stores the same message and this becomes a no-op.
		s.ingesting.RLock()
		go func() {
			defer s.ingesting.RUnlock()
			if err := s.eng.AppendResponse(key, parent, since, m, !complete); err != nil {
				s.log.Error("store response", "context", key.Context, "err", err)
				return
			}
			s.m.ingested.Inc()
		}()
	})
}

func (s *Server) memoryError(ctx *fasthttp.RequestCtx, err error, b budget) {
	switch {
	case errors.Is(err, memory.ErrTooLong):
		writeError(ctx, &apiError{status: 400, message: fmt.Sprintf("the latest message is too long for the model's context: %d tokens available for the prompt (context %d, reserved output %d)", b.total, b.nctx, b.reserve), typ: "invalid_request_error", param: "messages", code: "context_length_exceeded"})
	case errors.Is(err, memory.ErrBadKey):
		writeError(ctx, &apiError{status: 400, message: err.Error(), typ: "invalid_request_error", param: "X-MegaContext-Id", code: "invalid_value"})
	default:
		s.log.Error("memory", "err", err)
		writeError(ctx, &apiError{status: 500, message: "memory error: " + err.Error(), typ: "server_error", code: "internal_error"})
	}
}

func setWindowHeaders(ctx *fasthttp.RequestCtx, k memory.Key, w *memory.Window, b budget, overhead time.Duration) {
	h := &ctx.Response.Header
	h.Set("X-MegaContext-Id", k.Context)
	h.Set("X-MegaContext-History-Tokens", strconv.Itoa(w.HistoryTokens))
	h.Set("X-MegaContext-Window-Tokens", strconv.Itoa(w.Tokens+b.fixed))
	h.Set("X-MegaContext-Budget-Tokens", strconv.Itoa(b.total+b.fixed))
	h.Set("X-MegaContext-Memory-Tokens", strconv.Itoa(w.MemoryTokens))
	h.Set("X-MegaContext-Expanded", strconv.Itoa(w.Expanded))
	h.Set("X-MegaContext-Omitted-Blocks", strconv.Itoa(w.Omitted))
	h.Set("X-MegaContext-New-Messages", strconv.Itoa(w.NewMessages))
	h.Set("X-MegaContext-Overhead-Ms", strconv.FormatFloat(float64(overhead.Microseconds())/1000, 'f', 3, 64))
}

// renderBody rewrites the request's messages into the window: client
// system prompts (the last one carrying the memory text), then the
// verbatim tail, each filtered by the policy for the caller's scopes.
// Every other field of the body is left as it was.
func renderBody(r *chatRequest, w *memory.Window, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	parts := make([]string, 0, w.Leading+len(r.messages)-w.TailFrom+1)
	var hits []policy.Hit
	placed := w.Memory == ""
	add := func(raw []byte) error {
		raw, h, err := filterMessage(raw, pol, scopes)
		if err != nil {
			return err
		}
		hits = append(hits, h...)
		parts = append(parts, string(raw))
		return nil
	}
	for i := 0; i < w.Leading; i++ {
		raw, h, err := filterMessage([]byte(r.messages[i].Raw), pol, scopes)
		if err != nil {
			return nil, nil, err
		}
		hits = append(hits, h...)
		if !placed && i == w.Leading-1 {
			// The memory text is already filtered by the engine.
			c := gjson.GetBytes(raw, "content")
			switch {
			case c.Type == gjson.String:
				raw, err = sjson.SetBytes(raw, "content", c.Str+"\n\n"+w.Memory)
				placed = true
			case c.IsArray():
				part, _ := json.Marshal(map[string]string{"type": "text", "text": w.Memory})
				raw, err = sjson.SetRawBytes(raw, "content.-1", part)
				placed = true
			}
			if err != nil {
				return nil, nil, err
			}
		}
		parts = append(parts, string(raw))
	}
	if !placed {
		m, _ := json.Marshal(map[string]string{"role": "system", "content": w.Memory})
		parts = append(parts, string(m))
	}
	for i := w.TailFrom; i < len(r.messages); i++ {
		if err := add([]byte(r.messages[i].Raw)); err != nil {
			return nil, nil, err
		}
	}
	body, err := sjson.SetRawBytes(r.body, "messages", []byte("["+strings.Join(parts, ",")+"]"))
	return body, hits, err
}

// withheld replaces the content of a live message that an exclude rule
// keeps from the model.
const withheld = memory.WithheldText

// filterMessage applies the policy to a message's text content (a string
// or text parts) and its tool-call arguments for the caller's scopes.
func filterMessage(raw []byte, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	if pol == nil {
		return raw, nil, nil
	}
	var callHits []policy.Hit
	for i, call := range gjson.GetBytes(raw, "tool_calls").Array() {
		args := call.Get("function.arguments")
		if args.Type != gjson.String {
			continue
		}
		out, excluded, hits := pol.Filter(args.Str, scopes)
		if len(hits) == 0 {
			continue
		}
		if excluded {
			out = "{}"
		}
		callHits = append(callHits, hits...)
		var err error
		if raw, err = sjson.SetBytes(raw, fmt.Sprintf("tool_calls.%d.function.arguments", i), out); err != nil {
			return nil, nil, err
		}
	}
	raw, hits, err := filterContent(raw, pol, scopes)
	return raw, append(callHits, hits...), err
}

// filterContent filters a message's content.
func filterContent(raw []byte, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	c := gjson.GetBytes(raw, "content")
	switch {
	case c.Type == gjson.String:
		out, excluded, hits := pol.Filter(c.Str, scopes)
		if len(hits) == 0 {
			return raw, nil, nil
		}
		if excluded {
			out = withheld
		}
		raw, err := sjson.SetBytes(raw, "content", out)
		return raw, hits, err
	case c.IsArray():
		var all []policy.Hit
		for i, part := range c.Array() {
			t := part.Get("text")
			if t.Type != gjson.String {
				continue
			}
			out, excluded, hits := pol.Filter(t.Str, scopes)
			if len(hits) == 0 {
				continue
			}
			if excluded {
				out = withheld
			}
			all = append(all, hits...)
			var err error
			if raw, err = sjson.SetBytes(raw, fmt.Sprintf("content.%d.text", i), out); err != nil {
				return nil, nil, err
			}
		}
		return raw, all, nil
	}
	return raw, nil, nil
}

// audit counts and logs policy actions: rule and context, never the text.
func (s *Server) audit(k memory.Key, hits []policy.Hit) {
	if len(hits) == 0 {
		return
	}
	counts := map[policy.Hit]int{}
	for _, h := range hits {
		counts[h]++
	}
	for h, n := range counts {
		s.m.policy.WithLabelValues(h.Rule, h.Action).Add(float64(n))
		s.log.Info("policy applied", "tenant", k.Tenant, "context", k.Context, "rule", h.Rule, "action", h.Action, "spans", n)
	}
}

// responseMessage turns an upstream reply into a memory message whose text
// flattens exactly as the client's resend of it will.
func responseMessage(msg upstream.Message) (memory.Message, error) {
	type fn struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	type call struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function fn     `json:"function"`
	}
	out := struct {
		Role      string  `json:"role"`
		Content   *string `json:"content"`
		ToolCalls []call  `json:"tool_calls,omitempty"`
	}{Role: "assistant"}
	if msg.Content != "" || len(msg.ToolCalls) == 0 {
		out.Content = &msg.Content
	}
	for _, tc := range msg.ToolCalls {
		typ := tc.Type
		if typ == "" {
			typ = "function"
		}
		out.ToolCalls = append(out.ToolCalls, call{ID: tc.ID, Type: typ, Function: fn{Name: tc.Name, Arguments: tc.Arguments}})
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return memory.Message{}, err
	}
	m, aerr := parseMessage(0, gjson.ParseBytes(raw))
	if aerr != nil {
		return memory.Message{}, aerr
	}
	return m, nil
}

// relay copies an upstream response to the client: event streams chunk by
// chunk as they arrive, other bodies whole. done, when set, receives the
// assembled assistant message after the body ends (complete is false for a
// stream cut before its end). stop releases the client watcher.
func (s *Server) relay(ctx *fasthttp.RequestCtx, resp *upstream.Response, stop func(), done func(msg upstream.Message, complete bool)) {
	for k, vs := range resp.Header {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Server") || strings.EqualFold(k, "Date") {
			continue
		}
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
	ctx.SetStatusCode(resp.Status)
	if resp.IsEventStream() && resp.Status < 400 {
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set("X-Accel-Buffering", "no")
		ctx.SetBodyStreamWriter(func(bw *bufio.Writer) {
			defer stop()
			defer resp.Body.Close()
			rd := upstream.NewSSEReader(resp.Body)
			var acc upstream.Accumulator
			clientGone := false
			for {
				ev, err := rd.Next()
				if len(ev.Raw) > 0 {
					if _, werr := bw.Write(ev.Raw); werr == nil {
						werr = bw.Flush()
						if werr != nil {
							clientGone = true
						}
					} else {
						clientGone = true
					}
					_ = acc.AddEvent(ev)
				}
				if err != nil || clientGone {
					if err != nil && !errors.Is(err, io.EOF) {
						s.log.Warn("stream from upstream ended with an error", "err", err)
						s.m.upstreamErrors.WithLabelValues("stream").Inc()
					}
					break
				}
			}
			msg := acc.Message()
			if done != nil {
				done(msg, !clientGone && (msg.Done || msg.FinishReason != ""))
			}
		})
		return
	}
	defer stop()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedBody))
	if err != nil {
		s.transportError(ctx, err)
		return
	}
	if resp.Status >= 400 {
		s.m.upstreamErrors.WithLabelValues(strconv.Itoa(resp.Status)).Inc()
		ctx.SetContentType("application/json")
		ctx.SetBody(upstream.OpenAIError(resp.Status, body))
		return
	}
	ctx.SetBody(body)
	if done != nil {
		if msg, err := upstream.FromCompletion(body); err == nil {
			done(msg, msg.FinishReason != "")
		}
	}
}
