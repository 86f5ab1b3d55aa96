package proxy

import (
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

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// How /v1/responses reaches the upstream (Options.Responses).
const (
	// ResponsesAuto forwards natively when discovery found /v1/responses
	// on the upstream, and translates otherwise.
	ResponsesAuto = "auto"
	// ResponsesNative forwards to the upstream's /v1/responses with the
	// input rewritten into the window.
	ResponsesNative = "native"
	// ResponsesTranslate serves /v1/responses through the upstream's
	// /v1/chat/completions.
	ResponsesTranslate = "translate"
)

// native reports whether req is forwarded to the upstream's own
// /v1/responses. In auto mode, a request for structured output (text.format
// json_schema or json_object) in front of llama.cpp is translated: its
// /v1/responses ignores text.format, its chat completions honour
// response_format with a grammar.
func (s *Server) native(ctx context.Context, req *responsesRequest) bool {
	switch s.opts.Responses {
	case ResponsesNative:
		return true
	case ResponsesTranslate:
		return false
	}
	info := s.upstreamInfo(ctx)
	if info.Kind == upstream.KindLlamaCpp && req.structured() {
		return false
	}
	return info.Responses
}

// responsesRoute serves /v1/responses and /v1/responses/{id} (path is
// without the /v1).
func (s *Server) responsesRoute(ctx *fasthttp.RequestCtx, start time.Time, path string) {
	p, ok := s.authenticate(ctx)
	if !ok {
		return
	}
	id := strings.TrimPrefix(strings.TrimPrefix(path, "/responses"), "/")
	switch {
	case id == "" && ctx.IsPost():
		s.responses(ctx, start, p)
	case id == "":
		writeError(ctx, methodNotAllowed())
	case strings.Contains(id, "/"):
		writeError(ctx, &apiError{status: 404, message: fmt.Sprintf("unknown route %s %s", ctx.Method(), path), typ: "invalid_request_error", code: "not_found"})
	case ctx.IsGet():
		s.getResponse(ctx, p, id)
	case ctx.IsDelete():
		s.deleteResponse(ctx, p, id)
	default:
		writeError(ctx, methodNotAllowed())
	}
}

func responseNotFound(id string) *apiError {
	return &apiError{status: 404, message: fmt.Sprintf("Response with id '%s' not found.", id), typ: "invalid_request_error", param: "response_id", code: "not_found"}
}

// getResponse answers GET /v1/responses/{id} with the stored object.
func (s *Server) getResponse(ctx *fasthttp.RequestCtx, p auth.Principal, id string) {
	s.settle()
	_, rec, err := s.eng.Response(p.Tenant, id)
	if err != nil {
		s.responseLookupError(ctx, id, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(rec.Object)
}

// deleteResponse answers DELETE /v1/responses/{id}.
func (s *Server) deleteResponse(ctx *fasthttp.RequestCtx, p auth.Principal, id string) {
	s.settle()
	if err := s.eng.DeleteResponse(p.Tenant, id); err != nil {
		s.responseLookupError(ctx, id, err)
		return
	}
	writeJSON(ctx, map[string]any{"id": id, "object": "response.deleted", "deleted": true})
}

func (s *Server) responseLookupError(ctx *fasthttp.RequestCtx, id string, err error) {
	if errors.Is(err, memory.ErrNotFound) {
		writeError(ctx, responseNotFound(id))
		return
	}
	s.log.Error("response lookup", "err", err)
	writeError(ctx, &apiError{status: 500, message: "memory error", typ: "server_error", code: "internal_error"})
}

// responses serves POST /v1/responses: the input (after the conversation
// previous_response_id ended, when given) goes through memory like a chat
// request's messages, and the answer comes back as a response object or
// its event stream, stored for GET and for continuations.
func (s *Server) responses(ctx *fasthttp.RequestCtx, start time.Time, p auth.Principal) {
	req, aerr := parseResponsesRequest(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	key, explicit := s.resolveKey(ctx, p.Tenant, req.user)
	var prior []memory.Message
	if req.previousID != "" {
		pk, msgs, aerr := s.chain(p.Tenant, req.previousID)
		if aerr != nil {
			writeError(ctx, aerr)
			return
		}
		if explicit && pk.Context != key.Context {
			writeError(ctx, badRequest("previous_response_id", "previous_response_id %s belongs to another MegaContext than the one this request names", req.previousID))
			return
		}
		key, explicit, prior = pk, true, msgs
	}
	if !explicit && s.opts.RequireID {
		writeError(ctx, errNoContextID)
		return
	}
	input, aerr := req.messages(s.itemResolver(p.Tenant))
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	if n := len(input); n > s.opts.MaxMessages {
		writeError(ctx, badRequest("input", "'input' holds %d items; this server accepts at most %d per request (limits.max_messages)", n, s.opts.MaxMessages))
		return
	}
	mounts, aerr := s.mountsFor(ctx, p, key)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	cctx, stop := watchClient(ctx.Conn())
	native := s.native(cctx, req)
	x := &exchange{key: key, scopes: p.Scopes, messages: append(prior, input...), decode: decodeInput, maxTokens: req.maxOutput, tools: req.chatTools, path: "/v1/chat/completions", mounts: mounts}
	// A continuation is sent with this request's instructions, not with
	// the ones its conversation started with (as OpenAI does); memory keeps
	// the conversation as stored.
	lead, instr := 0, 0
	if req.previousID != "" {
		for lead < len(prior) && (prior[lead].Role == "system" || prior[lead].Role == "developer") {
			lead++
		}
		if req.instructions != "" {
			instr = 1
		}
		x.messages = append(prior, input[instr:]...)
		c := s.eng.Counter()
		diff := 0
		if instr == 1 {
			diff = c.Count(req.instructions) + defaultPerMessage
		}
		for _, m := range prior[:lead] {
			diff -= c.Count(m.Text)
		}
		x.extra = max(diff, 0)
	}
	x.render = func(w *memory.Window) ([]byte, []policy.Hit, error) {
		msgs, win := x.messages, w
		if req.previousID != "" {
			msgs = append(append([]memory.Message(nil), input[:instr]...), x.messages[lead:]...)
			ww := *w
			ww.Leading += instr - lead
			ww.TailFrom += instr - lead
			win = &ww
		}
		if native {
			return renderResponsesBody(req, msgs, win, s.opts.Policy, p.Scopes)
		}
		return renderBody(&chatRequest{body: req.chatBody(), messages: msgs}, win, s.opts.Policy, p.Scopes)
	}
	x.maxTokensField = "max_tokens"
	if native {
		x.path, x.maxTokensField = "/v1/responses", "max_output_tokens"
	}
	created := time.Now()
	resp, w := s.forward(ctx, cctx, start, x)
	if resp == nil {
		stop()
		return
	}
	stop = x.finish(stop)
	id := newResponseID()
	save := s.storeAnswer(key, w, req)
	if resp.Status >= 400 {
		s.relay(ctx, resp, stop, nil)
		return
	}
	if req.stream {
		s.streamResponse(ctx, resp, stop, req, id, created, native, save)
		return
	}
	defer stop()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedBody))
	if err != nil {
		s.transportError(ctx, err)
		return
	}
	var a *answer
	if native {
		if !jsondepth.Valid(body) {
			writeError(ctx, &apiError{status: 502, message: "the upstream's response is not JSON", typ: "server_error", code: "bad_upstream_response"})
			return
		}
		a = answerFromResponse(id, body)
	} else {
		msg, err := upstream.FromCompletion(body)
		if err != nil {
			writeError(ctx, &apiError{status: 502, message: "the upstream's chat completion could not be read: " + err.Error(), typ: "server_error", code: "bad_upstream_response"})
			return
		}
		a = answerFromChat(id, msg)
	}
	obj, err := save(a, created, true)
	if err != nil {
		writeError(ctx, storeFailure(err))
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(obj)
}

// storeAnswer returns the function that builds an answer's response
// object and stores the reply and the object in memory (the object only
// with store on), before the answer's last bytes go out, as storeReply does
// for chat. It returns the object's JSON; when storing fails, the client
// gets an error instead of the answer's end.
func (s *Server) storeAnswer(key memory.Key, w *memory.Window, req *responsesRequest) func(a *answer, created time.Time, complete bool) ([]byte, error) {
	parent, since := w.LastSeq, w.NextSeq
	return func(a *answer, created time.Time, complete bool) ([]byte, error) {
		obj := req.object(a, created).appendJSON(nil)
		var reply *memory.Message
		if msg := a.message(); parent >= 0 && (msg.Content != "" || len(msg.ToolCalls) > 0) {
			m, err := responseMessage(msg)
			if err != nil {
				s.log.Error("response not stored", "context", key.Context, "err", err)
				return nil, err
			}
			reply = &m
		}
		var rec *memory.ResponseRecord
		if req.store {
			rec = &memory.ResponseRecord{ID: a.id, Object: obj}
		}
		if reply == nil && rec == nil {
			return obj, nil
		}
		s.ingesting.RLock()
		defer s.ingesting.RUnlock()
		if _, err := s.eng.StoreResponse(key, parent, since, reply, !complete, rec); err != nil {
			s.log.Error("store response", "context", key.Context, "err", err)
			return nil, err
		}
		if reply != nil {
			s.m.ingested.Inc()
		}
		return obj, nil
	}
}

// chain returns the MegaContext and the stored conversation of a previous
// response, which a continuation resends.
func (s *Server) chain(tenant, id string) (memory.Key, []memory.Message, *apiError) {
	s.settle()
	k, rec, err := s.eng.Response(tenant, id)
	if errors.Is(err, memory.ErrNotFound) {
		return k, nil, &apiError{status: 404, message: fmt.Sprintf("Previous response with id '%s' not found.", id), typ: "invalid_request_error", param: "previous_response_id", code: "previous_response_not_found"}
	}
	if err != nil {
		s.log.Error("response lookup", "err", err)
		return k, nil, &apiError{status: 500, message: "memory error", typ: "server_error", code: "internal_error"}
	}
	stored, err := s.eng.Conversation(k, rec.Seq)
	if err != nil {
		s.log.Error("conversation of a response", "response", id, "err", err)
		return k, nil, &apiError{status: 500, message: "memory error", typ: "server_error", code: "internal_error"}
	}
	for i, m := range stored {
		if len(m.Raw) == 0 { // a record written without its JSON
			stored[i].Raw = mustMarshal(map[string]string{"role": m.Role, "name": m.Name, "content": m.Text})
		}
	}
	return k, stored, nil
}

// itemResolver finds output items of the tenant's stored responses by id,
// for item_reference inputs.
func (s *Server) itemResolver(tenant string) itemResolver {
	return func(id string) (gjson.Result, bool) {
		respID, index, ok := parseItemID(id)
		if !ok {
			return gjson.Result{}, false
		}
		s.settle()
		_, rec, err := s.eng.Response(tenant, respID)
		if err != nil {
			return gjson.Result{}, false
		}
		item := gjson.GetBytes(rec.Object, "output."+strconv.Itoa(index))
		return item, item.Exists() && item.Get("id").Str == id
	}
}

// renderResponsesBody rewrites a Responses request for an upstream that
// serves /v1/responses itself: the window, rendered as chat messages like
// renderBody does (system prompts with the memory text, then the verbatim
// tail), becomes the input items; the instructions are among them, and
// previous_response_id is answered by the proxy, so both leave the body.
func renderResponsesBody(req *responsesRequest, msgs []memory.Message, w *memory.Window, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	rendered, hits, err := renderBody(&chatRequest{body: []byte(`{"messages":[]}`), messages: msgs}, w, pol, scopes)
	if err != nil {
		return nil, nil, err
	}
	var items []string
	for _, m := range gjson.GetBytes(rendered, "messages").Array() {
		items = append(items, inputItems(m)...)
	}
	body, err := sjson.SetRawBytes(req.body, "input", []byte("["+strings.Join(items, ",")+"]"))
	for _, k := range []string{"instructions", "previous_response_id"} {
		if err == nil {
			body, err = sjson.DeleteBytes(body, k)
		}
	}
	return body, hits, err
}

// inputItems converts one chat message back to Responses input items.
func inputItems(m gjson.Result) []string {
	role := m.Get("role").Str
	switch role {
	case "tool":
		return []string{string(mustMarshal(map[string]string{"type": "function_call_output", "call_id": m.Get("tool_call_id").Str, "output": textOrParts(m.Get("content"))}))}
	case "assistant":
		var out []string
		if t := textOrParts(m.Get("content")); t != "" {
			// Typed, with output_text parts: the form every server takes
			// (llama.cpp refuses an assistant message with string content).
			out = append(out, string(mustMarshal(map[string]any{"type": "message", "role": "assistant", "content": []map[string]string{{"type": "output_text", "text": t}}})))
		}
		m.Get("tool_calls").ForEach(func(_, c gjson.Result) bool {
			out = append(out, string(mustMarshal(map[string]string{"type": "function_call", "call_id": c.Get("id").Str, "name": c.Get("function.name").Str, "arguments": c.Get("function.arguments").Str})))
			return true
		})
		return out
	}
	c := m.Get("content")
	if !c.IsArray() {
		return []string{string(mustMarshal(map[string]string{"role": role, "content": c.Str}))}
	}
	var parts []any
	c.ForEach(func(_, p gjson.Result) bool {
		switch p.Get("type").Str {
		case "text":
			parts = append(parts, map[string]string{"type": "input_text", "text": p.Get("text").Str})
		case "image_url":
			img := map[string]string{"type": "input_image", "image_url": p.Get("image_url.url").Str}
			if d := p.Get("image_url.detail"); d.Type == gjson.String {
				img["detail"] = d.Str
			} else {
				img["detail"] = "auto"
			}
			parts = append(parts, img)
		case "file":
			parts = append(parts, map[string]string{"type": "input_file", "file_data": p.Get("file.file_data").Str, "filename": p.Get("file.filename").Str})
		default:
			parts = append(parts, json.RawMessage(p.Raw))
		}
		return true
	})
	return []string{string(mustMarshal(map[string]any{"role": role, "content": parts}))}
}

// textOrParts returns a content's text: the string, or the parts' text.
func textOrParts(c gjson.Result) string {
	if c.IsArray() {
		return partsText(c)
	}
	return c.Str
}
