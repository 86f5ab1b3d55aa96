package proxy

import (
	"encoding/json"
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

func (s *Server) chat(ctx *fasthttp.RequestCtx, start time.Time, p auth.Principal) {
	req, aerr := parseChatRequest(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if n := len(req.messages); n > s.opts.MaxMessages {
		writeError(ctx, badRequest("messages", "'messages' holds %d messages; this server accepts at most %d per request (limits.max_messages)", n, s.opts.MaxMessages))
		return
	}
	key, explicit := s.resolveKey(ctx, p.Tenant, req.user)
	if !explicit && s.opts.RequireID {
		writeError(ctx, errNoContextID)
		return
	}
	x := s.chatExchange(req, key, p.Scopes)
	if x.mounts, aerr = s.mountsFor(ctx, p, key); aerr != nil {
		writeError(ctx, aerr)
		return
	}
	cctx, stop := watchClient(ctx.Conn())
	resp, w := s.forward(ctx, cctx, start, x)
	if resp == nil {
		stop()
		return
	}
	s.relay(ctx, resp, x.finish(stop), s.storeReply(key, w))
}

// chatExchange is a chat completion request on its way to the upstream,
// for the live path and the dry run alike.
func (s *Server) chatExchange(req *chatRequest, key memory.Key, scopes []string) *exchange {
	return &exchange{
		key: key, scopes: scopes, messages: req.messages, decode: req.decode, maxTokens: req.maxTokens, tools: req.tools,
		path: "/v1/chat/completions", maxTokensField: "max_tokens",
		render: func(w *memory.Window) ([]byte, []policy.Hit, error) {
			return renderBody(req, w, s.opts.Policy, scopes)
		},
	}
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
	msgs := "[" + strings.Join(parts, ",") + "]"
	var body []byte
	if lay := r.layout; lay != nil {
		// Where the messages are is known: no search through the body.
		body = make([]byte, 0, len(r.body)-(lay.end-lay.start)+len(msgs))
		body = append(append(append(body, r.body[:lay.start]...), msgs...), r.body[lay.end:]...)
	} else {
		var err error
		if body, err = sjson.SetRawBytes(r.body, "messages", []byte(msgs)); err != nil {
			return nil, nil, err
		}
	}
	body, h, err := filterRequestFields(body, pol, scopes)
	return body, append(hits, h...), err
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
	s.actions.add(k.Tenant, counts)
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
