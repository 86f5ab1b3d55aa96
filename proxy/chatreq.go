package proxy

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/memory"
)

// imageTokens is what a non-text content part is charged in budgets: a
// conservative figure for one image at typical vision-model resolutions.
const imageTokens = 1024

// chatRequest is the part of a chat completion request the proxy reads.
// Everything else stays in body, untouched.
type chatRequest struct {
	body []byte
	// messages are the request's messages; with decode set they arrive
	// undecoded (only Raw) and the engine decodes those it does not find
	// stored by their bytes (see memory.Request.Decode).
	messages []memory.Message
	decode   memory.Decoder
	// layout is where body keeps its messages; nil when body took the
	// whole parse.
	layout       *bodyLayout
	stream       bool
	includeUsage bool
	maxTokens    int
	user         string
	model        string
	tools        string
}

// apiError is an error answered to the client in OpenAI error JSON.
type apiError struct {
	status  int
	message string
	typ     string
	param   string
	code    string
	// raw, when set, is the whole error body (already OpenAI error JSON).
	raw []byte
}

func (e *apiError) Error() string { return e.message }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: 400, message: fmt.Sprintf(format, args...), typ: "invalid_request_error", param: param, code: "invalid_value"}
}

var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// maxNesting bounds how deep a request body may nest objects and arrays:
// deeper bodies are refused before any parser sees them (see jsondepth).
const maxNesting = jsondepth.Limit

// parseChatRequest validates a chat completion body and extracts what
// memory needs. It never modifies body.
//
// A chat client resends the whole conversation every turn: the body is
// scanned once for where its messages are (scanBody), the rest of it is
// validated and read, and the messages are left undecoded for the engine,
// which matches most of them with stored messages by their bytes and
// decodes only the others with decodeMessage. So a resent history of
// megabytes costs a scan and a hash, not a parse, and every message is
// still validated: a message the store does not hold byte for byte is
// decoded, and one it holds was decoded when it was stored.
func parseChatRequest(body []byte) (*chatRequest, *apiError) {
	lay, res := scanBody(body, maxNesting)
	switch res {
	case scanDuplicate:
		return nil, badRequest("messages", "'messages' appears more than once in the request body")
	case scanOther:
		return parseWholeRequest(body)
	}
	// The body without its messages: small, validated and read whole.
	rest := make([]byte, 0, len(body)-(lay.end-lay.start)+2)
	rest = append(append(append(rest, body[:lay.start]...), "[]"...), body[lay.end:]...)
	if !jsondepth.Valid(rest) {
		return nil, errInvalidJSON
	}
	if len(lay.elems) == 0 {
		return nil, badRequest("messages", "'messages' must contain at least one message")
	}
	r := &chatRequest{body: body, layout: &lay, decode: decodeMessage, messages: make([]memory.Message, len(lay.elems))}
	for i, el := range lay.elems {
		r.messages[i].Raw = body[el[0]:el[1]]
	}
	if aerr := parseFields(gjson.ParseBytes(rest), r); aerr != nil {
		return nil, aerr
	}
	return r, nil
}

// errInvalidJSON answers a body that is not JSON.
var errInvalidJSON = &apiError{status: 400, message: "request body is not valid JSON", typ: "invalid_request_error", code: "invalid_json"}

// decodeMessage validates and decodes one message of a request body: the
// engine calls it for the messages it does not hold byte for byte.
func decodeMessage(i int, raw json.RawMessage) (memory.Message, error) {
	if !jsondepth.Valid(raw) {
		return memory.Message{}, errInvalidJSON
	}
	m, aerr := parseMessage(i, gjson.ParseBytes(raw))
	if aerr != nil {
		return memory.Message{}, aerr
	}
	return m, nil
}

// decodeAll decodes every message still undecoded (what the engine does
// for a context that holds none of them).
func (r *chatRequest) decodeAll() *apiError {
	for i := range r.messages {
		if r.decode == nil || r.messages[i].Role != "" {
			continue
		}
		m, err := r.decode(i, r.messages[i].Raw)
		if err != nil {
			return err.(*apiError)
		}
		r.messages[i] = m
	}
	return nil
}

// checkBody parses a request body that must be a JSON object. Its depth is
// checked before any parser runs: gjson recurses once per level, and 16 MiB
// of '[' overflowed the stack (a fatal error, not a panic).
func checkBody(body []byte) (gjson.Result, *apiError) {
	if jsondepth.Exceeds(body, maxNesting) {
		return gjson.Result{}, &apiError{status: 400, message: fmt.Sprintf("request body nests JSON deeper than %d levels", maxNesting), typ: "invalid_request_error", code: "json_too_deep"}
	}
	// The depth is checked: only the syntax is left (jsondepth.Valid would
	// scan for the depth again, maxNesting being its Limit).
	if !gjson.ValidBytes(body) {
		return gjson.Result{}, errInvalidJSON
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return gjson.Result{}, badRequest("", "request body must be a JSON object")
	}
	return root, nil
}

// parseWholeRequest validates and decodes a whole body: the path of the
// bodies scanBody does not take, which tells what is wrong with them.
func parseWholeRequest(body []byte) (*chatRequest, *apiError) {
	root, aerr := checkBody(body)
	if aerr != nil {
		return nil, aerr
	}
	r := &chatRequest{body: body}
	msgs := root.Get("messages")
	if !msgs.Exists() {
		return nil, &apiError{status: 400, message: "'messages' is a required property", typ: "invalid_request_error", param: "messages", code: "missing_required_parameter"}
	}
	if !msgs.IsArray() {
		return nil, badRequest("messages", "'messages' must be an array of message objects")
	}
	arr := msgs.Array()
	if len(arr) == 0 {
		return nil, badRequest("messages", "'messages' must contain at least one message")
	}
	for i, m := range arr {
		msg, err := parseMessage(i, m)
		if err != nil {
			return nil, err
		}
		r.messages = append(r.messages, msg)
	}
	if aerr := parseFields(root, r); aerr != nil {
		return nil, aerr
	}
	return r, nil
}

// parseFields reads the top-level fields of a body other than messages.
func parseFields(root gjson.Result, r *chatRequest) *apiError {
	if v := root.Get("stream"); v.Exists() && v.Type != gjson.Null {
		if v.Type != gjson.True && v.Type != gjson.False {
			return badRequest("stream", "'stream' must be a boolean")
		}
		r.stream = v.Bool()
	}
	r.includeUsage = root.Get("stream_options.include_usage").Bool()
	for _, p := range []string{"max_completion_tokens", "max_tokens"} {
		v := root.Get(p)
		if !v.Exists() || v.Type == gjson.Null {
			continue
		}
		if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) || v.Num < 1 || v.Num > 1<<30 {
			return badRequest(p, "'%s' must be a positive integer", p)
		}
		r.maxTokens = int(v.Num)
		break
	}
	if v := root.Get("user"); v.Exists() && v.Type != gjson.Null {
		if v.Type != gjson.String {
			return badRequest("user", "'user' must be a string")
		}
		r.user = v.Str
	}
	if v := root.Get("model"); v.Exists() && v.Type != gjson.Null && v.Type != gjson.String {
		return badRequest("model", "'model' must be a string")
	}
	r.model = root.Get("model").Str
	if v := root.Get("tools"); v.Exists() && v.Type != gjson.Null {
		if !v.IsArray() {
			return badRequest("tools", "'tools' must be an array")
		}
		r.tools = v.Raw
	}
	return nil
}

func parseMessage(i int, m gjson.Result) (memory.Message, *apiError) {
	param := fmt.Sprintf("messages[%d]", i)
	if !m.IsObject() {
		return memory.Message{}, badRequest(param, "%s must be an object", param)
	}
	role := m.Get("role")
	if role.Type != gjson.String || !validRoles[role.Str] {
		return memory.Message{}, badRequest(param+".role", "%s.role must be one of system, developer, user, assistant, tool", param)
	}
	out := memory.Message{Role: role.Str, Raw: []byte(m.Raw)}
	if n := m.Get("name"); n.Exists() && n.Type != gjson.Null {
		if n.Type != gjson.String {
			return memory.Message{}, badRequest(param+".name", "%s.name must be a string", param)
		}
		out.Name = n.Str
	}
	var sb strings.Builder
	content := m.Get("content")
	switch {
	case !content.Exists() || content.Type == gjson.Null:
		if role.Str != "assistant" && role.Str != "function" {
			return memory.Message{}, badRequest(param+".content", "%s.content is required for role %s", param, role.Str)
		}
	case content.Type == gjson.String:
		sb.WriteString(content.Str)
	case content.IsArray():
		for j, part := range content.Array() {
			pp := fmt.Sprintf("%s.content[%d]", param, j)
			if !part.IsObject() {
				return memory.Message{}, badRequest(pp, "%s must be an object", pp)
			}
			typ := part.Get("type")
			if typ.Type != gjson.String {
				return memory.Message{}, badRequest(pp+".type", "%s.type must be a string", pp)
			}
			switch typ.Str {
			case "text", "input_text":
				t := part.Get("text")
				if t.Type != gjson.String {
					return memory.Message{}, badRequest(pp+".text", "%s.text must be a string", pp)
				}
				if sb.Len() > 0 {
					sb.WriteByte('\n')
				}
				sb.WriteString(t.Str)
			default:
				if sb.Len() > 0 {
					sb.WriteByte('\n')
				}
				sb.WriteString("[" + typ.Str + "]")
				out.Extra += imageTokens
			}
		}
	default:
		return memory.Message{}, badRequest(param+".content", "%s.content must be a string, an array of content parts or null", param)
	}
	if tc := m.Get("tool_calls"); tc.Exists() && tc.Type != gjson.Null {
		if !tc.IsArray() {
			return memory.Message{}, badRequest(param+".tool_calls", "%s.tool_calls must be an array", param)
		}
		for _, call := range tc.Array() {
			if sb.Len() > 0 {
				sb.WriteByte('\n')
			}
			fmt.Fprintf(&sb, "[tool call %s] %s(%s)", call.Get("id").Str, call.Get("function.name").Str, argumentsText(call.Get("function.arguments")))
			out.Extra += 12
		}
	}
	if fc := m.Get("function_call"); fc.IsObject() {
		if sb.Len() > 0 {
			sb.WriteByte('\n')
		}
		fmt.Fprintf(&sb, "[function call] %s(%s)", fc.Get("name").Str, argumentsText(fc.Get("arguments")))
		out.Extra += 12
	}
	if id := m.Get("tool_call_id"); id.Type == gjson.String && role.Str == "tool" {
		out.Text = "[tool result " + id.Str + "] " + sb.String()
		return out, nil
	}
	out.Text = sb.String()
	return out, nil
}

// argumentsText is the text memory keeps of tool-call arguments: the JSON
// string as sent, or the JSON of arguments sent as an object. Unicode
// escapes ("\u0040") are decoded, so that the policy scans what the model
// reads; arguments without them are kept byte for byte.
func argumentsText(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		if strings.Contains(v.Str, `\u`) || strings.Contains(v.Str, `\/`) {
			if doc := gjson.Parse(v.Str); gjson.Valid(v.Str) && (doc.IsObject() || doc.IsArray()) {
				return unescapedJSON(doc)
			}
		}
		return v.Str
	case v.IsObject() || v.IsArray():
		return unescapedJSON(v)
	}
	return ""
}

// unescapedJSON writes v with its strings (and keys) re-encoded escaping
// only what JSON requires, so that "\u0040" reads "@".
func unescapedJSON(v gjson.Result) string {
	quote := func(s string) (string, bool) { return quoteJSON(s), true }
	out, _ := rewriteJSON(v, "", "", func(x gjson.Result, _, _ string) (string, bool, bool) {
		if x.Type != gjson.String {
			return "", false, false
		}
		out, _ := quote(x.Str)
		return out, true, true
	}, quote)
	return out
}
