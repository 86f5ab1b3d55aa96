package proxy

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/megacontext/megacontext/memory"
)

// responsesRequest is the part of a Responses API request (POST
// /v1/responses) the proxy reads. Everything else stays in body.
type responsesRequest struct {
	body []byte
	// fields are the body's top-level fields, read in one pass (a Get on
	// the body would scan past the whole input for every field after it);
	// order is their order in the body.
	fields map[string]gjson.Result
	order  []string
	// model is the requested model ("" when unset).
	model string
	// instructions is the system prompt of this request.
	instructions string
	// input is the input: a string, or a list of items (an empty one
	// when scanned).
	input gjson.Result
	// scanned says the input's items were located by scanArray: items
	// are their byte ranges in body, not validated yet.
	scanned bool
	items   [][2]int
	// previousID is previous_response_id.
	previousID string
	// stream asks for server-sent events.
	stream bool
	// store keeps the response for GET and previous_response_id; default
	// true.
	store bool
	// maxOutput is max_output_tokens, 0 when unset.
	maxOutput int
	// user is the user field, which selects the MegaContext like chat's.
	user string
	// chatTools is the tools as chat completion tool schemas (JSON), ""
	// when there are none.
	chatTools string
	// chatToolChoice is tool_choice in chat completion terms (JSON), ""
	// when unset.
	chatToolChoice string
	// echoed holds the settings every response object echoes, once the
	// first object is built (object); nil before.
	echoed *responseObject
}

// responseFields are the request fields the proxy translates or answers
// itself; every other field reaches a chat completion upstream unchanged
// (llama.cpp's top_k, vLLM's repetition_penalty, ...).
var responseFields = map[string]bool{
	"model": true, "input": true, "instructions": true, "previous_response_id": true, "stream": true,
	"store": true, "max_output_tokens": true, "user": true, "tools": true, "tool_choice": true,
	"metadata": true, "text": true, "reasoning": true, "truncation": true, "include": true,
	"background": true, "conversation": true, "prompt": true, "prompt_cache_key": true,
	"safety_identifier": true, "service_tier": true, "stream_options": true, "max_tool_calls": true,
	"parallel_tool_calls": true, "top_logprobs": true, "temperature": true, "top_p": true,
	"prompt_cache_retention": true,
}

// parseResponsesRequest validates a Responses API body and extracts what
// the proxy needs. It never modifies body.
func parseResponsesRequest(body []byte) (*responsesRequest, *apiError) {
	return parseResponses(body, true)
}

// parseResponses is parseResponsesRequest; scan false parses the body
// whole (the fuzz target checks that both read the same items).
func parseResponses(body []byte, scan bool) (*responsesRequest, *apiError) {
	r := &responsesRequest{body: body, fields: map[string]gjson.Result{}, store: true}
	// A list of input items is located by one scan, as a chat request's
	// messages are, and only the body around it is parsed whole: the items
	// are read one at a time by messages.
	var root gjson.Result
	var aerr *apiError
	var lay bodyLayout
	res := scanOther
	if scan {
		lay, res = scanArray(body, "input", maxNesting)
	}
	switch res {
	case scanDuplicate:
		return nil, badRequest("input", "'input' appears more than once in the request body")
	case scanOK:
		rest := make([]byte, 0, len(body)-(lay.end-lay.start)+2)
		rest = append(append(append(rest, body[:lay.start]...), "[]"...), body[lay.end:]...)
		root, aerr = checkBody(rest)
		r.items, r.scanned = lay.elems, true
	default:
		root, aerr = checkBody(body)
	}
	if aerr != nil {
		return nil, aerr
	}
	root.ForEach(func(k, v gjson.Result) bool {
		if _, dup := r.fields[k.Str]; !dup {
			r.order = append(r.order, k.Str)
		}
		r.fields[k.Str] = v
		return true
	})
	str := func(name string, dst *string) *apiError {
		v := r.get(name)
		if !v.Exists() || v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.String {
			return badRequest(name, "'%s' must be a string", name)
		}
		*dst = v.Str
		return nil
	}
	boolean := func(name string, dst *bool) *apiError {
		v := r.get(name)
		if !v.Exists() || v.Type == gjson.Null {
			return nil
		}
		if v.Type != gjson.True && v.Type != gjson.False {
			return badRequest(name, "'%s' must be a boolean", name)
		}
		*dst = v.Bool()
		return nil
	}
	for _, e := range []*apiError{
		str("model", &r.model), str("instructions", &r.instructions), str("previous_response_id", &r.previousID),
		str("user", &r.user), boolean("stream", &r.stream), boolean("store", &r.store),
	} {
		if e != nil {
			return nil, e
		}
	}
	if v := r.get("max_output_tokens"); v.Exists() && v.Type != gjson.Null {
		if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) || v.Num < 1 || v.Num > 1<<30 {
			return nil, badRequest("max_output_tokens", "'max_output_tokens' must be a positive integer")
		}
		r.maxOutput = int(v.Num)
	}
	for _, name := range []string{"temperature", "top_p"} {
		if v := r.get(name); v.Exists() && v.Type != gjson.Null && v.Type != gjson.Number {
			return nil, badRequest(name, "'%s' must be a number", name)
		}
	}
	if v := r.get("metadata"); v.Exists() && v.Type != gjson.Null {
		if !v.IsObject() {
			return nil, badRequest("metadata", "'metadata' must be an object of strings")
		}
		var bad *apiError
		n := 0
		v.ForEach(func(k, val gjson.Result) bool {
			n++
			if val.Type != gjson.String || len(k.Str) > 64 || len(val.Str) > 512 {
				bad = badRequest("metadata", "'metadata' must map keys of at most 64 characters to strings of at most 512")
				return false
			}
			return true
		})
		if bad != nil {
			return nil, bad
		}
		if n > 16 {
			return nil, badRequest("metadata", "'metadata' may hold at most 16 keys")
		}
	}
	if v := r.get("background"); v.Type == gjson.True {
		return nil, unsupported("background", "background responses are not supported by this proxy")
	}
	if v := r.get("conversation"); v.Exists() && v.Type != gjson.Null {
		return nil, unsupported("conversation", "conversations are not supported by this proxy: chain with previous_response_id (MegaContext memory spans every conversation anyway)")
	}
	r.input = r.get("input")
	switch {
	case !r.input.Exists() || r.input.Type == gjson.Null:
		if r.previousID == "" {
			return nil, &apiError{status: 400, message: "'input' is required", typ: "invalid_request_error", param: "input", code: "missing_required_parameter"}
		}
	case r.input.Type == gjson.String, r.input.IsArray():
	default:
		return nil, badRequest("input", "'input' must be a string or an array of input items")
	}
	if aerr := r.parseTools(); aerr != nil {
		return nil, aerr
	}
	return r, nil
}

// get returns a top-level field of the body.
func (r *responsesRequest) get(name string) gjson.Result { return r.fields[name] }

// structured reports whether the request asks for structured output
// (text.format json_schema or json_object).
func (r *responsesRequest) structured() bool {
	switch r.get("text").Get("format").Get("type").Str {
	case "json_schema", "json_object":
		return true
	}
	return false
}

func unsupported(param, format string, args ...any) *apiError {
	return &apiError{status: 400, message: fmt.Sprintf(format, args...), typ: "invalid_request_error", param: param, code: "unsupported_parameter"}
}

// parseTools checks the function tools and tool_choice and translates them
// to chat completion terms.
func (r *responsesRequest) parseTools() *apiError {
	tools := r.get("tools")
	if tools.Exists() && tools.Type != gjson.Null {
		if !tools.IsArray() {
			return badRequest("tools", "'tools' must be an array")
		}
		var out []string
		for i, t := range tools.Array() {
			param := fmt.Sprintf("tools[%d]", i)
			if typ := t.Get("type").Str; typ != "function" {
				return unsupported(param+".type", "%s: tool type %q is not supported: this proxy serves function tools only", param, typ)
			}
			name := t.Get("name")
			if name.Type != gjson.String || name.Str == "" {
				return badRequest(param+".name", "%s.name must be a non-empty string", param)
			}
			fn := `{}`
			fn, _ = sjson.Set(fn, "name", name.Str)
			for _, k := range []string{"description", "parameters", "strict"} {
				if v := t.Get(k); v.Exists() && v.Type != gjson.Null {
					fn, _ = sjson.SetRaw(fn, k, v.Raw)
				}
			}
			out = append(out, `{"type":"function","function":`+fn+`}`)
		}
		if len(out) > 0 {
			r.chatTools = "[" + strings.Join(out, ",") + "]"
		}
	}
	tc := r.get("tool_choice")
	switch {
	case !tc.Exists() || tc.Type == gjson.Null:
	case tc.Type == gjson.String:
		switch tc.Str {
		case "none", "auto", "required":
			r.chatToolChoice = tc.Raw
		default:
			return badRequest("tool_choice", "'tool_choice' must be none, auto, required or a function")
		}
	case tc.IsObject():
		switch tc.Get("type").Str {
		case "function":
			name := tc.Get("name")
			if name.Type != gjson.String || name.Str == "" {
				return badRequest("tool_choice.name", "tool_choice.name must be a non-empty string")
			}
			b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": name.Str}})
			r.chatToolChoice = string(b)
		case "allowed_tools":
			// The chat API has no subset: keep the mode over all tools.
			mode := tc.Get("mode").Str
			if mode != "auto" && mode != "required" {
				return badRequest("tool_choice.mode", "tool_choice.mode must be auto or required")
			}
			r.chatToolChoice = `"` + mode + `"`
		default:
			return unsupported("tool_choice.type", "tool_choice type %q is not supported: this proxy serves function tools only", tc.Get("type").Str)
		}
	default:
		return badRequest("tool_choice", "'tool_choice' must be a string or an object")
	}
	return nil
}

// itemResolver finds the stored output item an item_reference names.
type itemResolver func(id string) (gjson.Result, bool)

// messages converts the instructions and the input items to the chat
// messages memory stores and the chat API takes (undecoded: only Raw is
// set; see decodeInput): a string input is one
// user message; message items keep their role; function_call items (and
// the assistant text beside them) become one assistant message with
// tool_calls; function_call_output items become tool messages; references
// to stored items are resolved; reasoning items are dropped.
func (r *responsesRequest) messages(resolve itemResolver) ([]memory.Message, *apiError) {
	var out []chatMessage
	if r.instructions != "" {
		out = append(out, chatMessage{Role: "system", Content: r.instructions})
	}
	switch {
	case r.input.Type == gjson.String:
		out = append(out, chatMessage{Role: "user", Content: r.input.Str})
	case r.scanned:
		for i, el := range r.items {
			raw := r.body[el[0]:el[1]]
			if !gjson.ValidBytes(raw) {
				return nil, errInvalidJSON
			}
			n := len(out)
			var aerr *apiError
			if out, aerr = appendItem(out, gjson.ParseBytes(raw), int64(i), resolve); aerr != nil {
				return nil, aerr
			}
			if len(out) == n+1 && out[n].raw.Exists() {
				out[n].src = raw // the item as it is: no copy of it
			}
		}
	case r.input.IsArray():
		var aerr *apiError
		r.input.ForEach(func(i, item gjson.Result) bool {
			out, aerr = appendItem(out, item, i.Int(), resolve)
			return aerr == nil
		})
		if aerr != nil {
			return nil, aerr
		}
	}
	// Left undecoded, like a chat request's: the engine decodes (with
	// decodeInput) only those it does not find stored by their bytes.
	msgs := make([]memory.Message, len(out))
	for i, cm := range out {
		if cm.src != nil {
			msgs[i].Raw = cm.src
			continue
		}
		if cm.raw.Exists() {
			msgs[i].Raw = json.RawMessage(cm.raw.Raw) // already a chat message
			continue
		}
		raw, err := json.Marshal(cm)
		if err != nil {
			return nil, badRequest("input", "input: %v", err)
		}
		msgs[i].Raw = raw
	}
	return msgs, nil
}

// decodeInput decodes one message messages converted: the engine's
// Decoder for a responses request.
func decodeInput(i int, raw json.RawMessage) (memory.Message, error) {
	m, err := decodeMessage(i, raw)
	if aerr, ok := err.(*apiError); ok {
		cp := *aerr
		cp.param = "input"
		return m, &cp
	}
	return m, err
}

// chatMessage is a chat completion message built from input items.
type chatMessage struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	ToolCalls  []chatCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	// raw, when set, is the input item itself, which is already a chat
	// message ({"role": ..., "content": "text"}: the common case), so that
	// it need not be encoded and parsed again. Changing the message clears
	// it.
	raw gjson.Result
	// src, when set, is raw's bytes in the request body (a scanned input),
	// used as they are, as a chat request's messages are. Changing the
	// message clears it.
	src []byte
}

// chatCall is one tool call of a chat completion message.
type chatCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

var inputRoles = map[string]bool{"user": true, "system": true, "developer": true, "assistant": true}

// inputParam names input item i in errors.
func inputParam(i int64) string { return "input[" + strconv.FormatInt(i, 10) + "]" }

// appendItem converts input item i and appends it to out, folding an
// assistant run (text and function calls) into one message. An
// item_reference is replaced by the stored item resolve finds (nil: not
// followed, as for a stored item that is itself a reference).
func appendItem(out []chatMessage, item gjson.Result, i int64, resolve itemResolver) ([]chatMessage, *apiError) {
	lastAssistant := len(out) > 0 && out[len(out)-1].Role == "assistant"
	if role, content, ok := chatShaped(item); ok && inputRoles[role] && !(role == "assistant" && lastAssistant) {
		// The common item, a chat message as it is: nothing more to do.
		return append(out, chatMessage{Role: role, Content: content, raw: item}), nil
	}
	param := inputParam(i)
	if !item.IsObject() {
		return out, badRequest(param, "%s must be an object", param)
	}
	typ := item.Get("type").Str
	if typ == "item_reference" && resolve != nil {
		id := item.Get("id").Str
		found, ok := resolve(id)
		if !ok {
			return out, &apiError{status: 404, message: fmt.Sprintf("Item with id '%s' not found.", id), typ: "invalid_request_error", param: param + ".id", code: "item_not_found"}
		}
		return appendItem(out, found, i, nil)
	}
	role := item.Get("role")
	if typ == "" && role.Exists() {
		typ = "message"
	}
	switch typ {
	case "message":
		if role.Type != gjson.String || !inputRoles[role.Str] {
			return out, badRequest(param+".role", "%s.role must be one of user, assistant, system, developer", param)
		}
		content, aerr := inputContent(item.Get("content"), role.Str == "assistant", param+".content")
		if aerr != nil {
			return out, aerr
		}
		if role.Str == "assistant" {
			text, _ := content.(string)
			if lastAssistant {
				prev := &out[len(out)-1]
				prev.Content, prev.raw, prev.src = joinText(prev.Content, text), gjson.Result{}, nil
				return out, nil
			}
			return append(out, chatMessage{Role: "assistant", Content: text}), nil
		}
		return append(out, chatMessage{Role: role.Str, Content: content}), nil
	case "function_call":
		var c chatCall
		c.Type = "function"
		c.ID = item.Get("call_id").Str
		c.Function.Name = item.Get("name").Str
		c.Function.Arguments = item.Get("arguments").Str
		if c.ID == "" || c.Function.Name == "" {
			return out, badRequest(param, "%s: a function_call needs call_id and name", param)
		}
		if lastAssistant {
			prev := &out[len(out)-1]
			prev.ToolCalls, prev.raw, prev.src = append(prev.ToolCalls, c), gjson.Result{}, nil
			return out, nil
		}
		return append(out, chatMessage{Role: "assistant", Content: nil, ToolCalls: []chatCall{c}}), nil
	case "function_call_output":
		id := item.Get("call_id").Str
		if id == "" {
			return out, badRequest(param+".call_id", "%s.call_id is required", param)
		}
		o := item.Get("output")
		text := o.Str
		if o.IsArray() {
			text = partsText(o)
		} else if o.Type != gjson.String {
			return out, badRequest(param+".output", "%s.output must be a string or an array of content parts", param)
		}
		return append(out, chatMessage{Role: "tool", ToolCallID: id, Content: text}), nil
	case "reasoning":
		return out, nil
	default:
		return out, unsupported(param+".type", "%s: input item type %q is not supported by this proxy", param, typ)
	}
}

// chatShaped reads an item that is a chat message as it is: a string role
// and a string content, and no other field (the common case).
func chatShaped(item gjson.Result) (role string, content string, ok bool) {
	var r, c gjson.Result
	ok = true
	item.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			r = v
		case "content":
			c = v
		default:
			ok = false
		}
		return ok
	})
	return r.Str, c.Str, ok && r.Type == gjson.String && c.Type == gjson.String
}

// joinText appends text to an assistant message's content.
func joinText(prev any, text string) any {
	p, _ := prev.(string)
	switch {
	case text == "":
		return prev
	case p == "":
		return text
	default:
		return p + "\n" + text
	}
}

// partsText joins the text of content parts.
func partsText(parts gjson.Result) string {
	var sb strings.Builder
	parts.ForEach(func(_, p gjson.Result) bool {
		t := p.Get("text")
		if t.Type != gjson.String {
			t = p.Get("refusal")
		}
		if t.Type == gjson.String {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			sb.WriteString(t.Str)
		}
		return true
	})
	return sb.String()
}

// inputContent converts a message item's content (a string or parts) to
// chat content: a string for assistants, parts for the others.
func inputContent(c gjson.Result, assistant bool, param string) (any, *apiError) {
	switch {
	case c.Type == gjson.String:
		return c.Str, nil
	case !c.IsArray():
		return nil, badRequest(param, "%s must be a string or an array of content parts", param)
	case assistant:
		return partsText(c), nil
	}
	var parts []map[string]any
	var aerr *apiError
	c.ForEach(func(i, p gjson.Result) bool {
		pp := fmt.Sprintf("%s[%d]", param, i.Int())
		switch p.Get("type").Str {
		case "input_text", "text", "output_text":
			t := p.Get("text")
			if t.Type != gjson.String {
				aerr = badRequest(pp+".text", "%s.text must be a string", pp)
				return false
			}
			parts = append(parts, map[string]any{"type": "text", "text": t.Str})
		case "input_image":
			url := p.Get("image_url")
			if url.Type != gjson.String || url.Str == "" {
				aerr = unsupported(pp+".image_url", "%s: images must be given by image_url (a URL or a data URL); file ids are not supported by this proxy", pp)
				return false
			}
			img := map[string]any{"url": url.Str}
			if d := p.Get("detail"); d.Type == gjson.String {
				img["detail"] = d.Str
			}
			parts = append(parts, map[string]any{"type": "image_url", "image_url": img})
		case "input_file":
			data := p.Get("file_data")
			if data.Type != gjson.String || data.Str == "" {
				aerr = unsupported(pp+".file_data", "%s: files must be given inline by file_data; file ids and URLs are not supported by this proxy", pp)
				return false
			}
			f := map[string]any{"file_data": data.Str}
			if n := p.Get("filename"); n.Type == gjson.String {
				f["filename"] = n.Str
			}
			parts = append(parts, map[string]any{"type": "file", "file": f})
		case "input_audio":
			parts = append(parts, map[string]any{"type": "input_audio", "input_audio": json.RawMessage(p.Get("input_audio").Raw)})
		default:
			aerr = unsupported(pp+".type", "%s: content part type %q is not supported by this proxy", pp, p.Get("type").Str)
			return false
		}
		return true
	})
	if aerr != nil {
		return nil, aerr
	}
	if parts == nil {
		return "", nil
	}
	return parts, nil
}

// chatBody translates the request into a chat completion body for an
// upstream without /v1/responses: the fields with a chat equivalent are
// renamed, the proxy's own are dropped, unknown ones are kept as they are,
// and the messages are set by renderBody.
func (r *responsesRequest) chatBody() []byte {
	body := []byte(`{}`)
	set := func(path, raw string) { body, _ = sjson.SetRawBytes(body, path, []byte(raw)) }
	if r.model != "" {
		set("model", r.get("model").Raw)
	}
	set("messages", `[]`)
	for _, k := range r.order {
		if !responseFields[k] {
			set(gjson.Escape(k), r.fields[k].Raw)
		}
	}
	for _, k := range []string{"temperature", "top_p", "parallel_tool_calls", "user"} {
		if v := r.get(k); v.Exists() && v.Type != gjson.Null {
			set(k, v.Raw)
		}
	}
	if r.maxOutput > 0 {
		set("max_tokens", fmt.Sprint(r.maxOutput))
	}
	if r.chatTools != "" {
		set("tools", r.chatTools)
	}
	if r.chatToolChoice != "" {
		set("tool_choice", r.chatToolChoice)
	}
	if e := r.get("reasoning").Get("effort"); e.Type == gjson.String {
		set("reasoning_effort", e.Raw)
	}
	switch f := r.get("text").Get("format"); f.Get("type").Str {
	case "json_schema":
		js := `{}`
		for _, k := range []string{"name", "schema", "strict", "description"} {
			if v := f.Get(k); v.Exists() {
				js, _ = sjson.SetRaw(js, k, v.Raw)
			}
		}
		set("response_format", `{"type":"json_schema","json_schema":`+js+`}`)
	case "json_object":
		set("response_format", `{"type":"json_object"}`)
	}
	if r.stream {
		set("stream", "true")
		set("stream_options", `{"include_usage":true}`)
	}
	return body
}
