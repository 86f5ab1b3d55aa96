package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/proxy/upstream"
)

// newResponseID returns a fresh response id: "resp_" and 32 hex digits.
func newResponseID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "resp_" + hex.EncodeToString(b[:])
}

// Output item ids embed their response's id and position
// ("msg_<hex>_0", "fc_<hex>_1"), so an item_reference finds its item
// through the stored response.
func itemID(prefix, respID string, index int) string {
	return prefix + "_" + strings.TrimPrefix(respID, "resp_") + "_" + strconv.Itoa(index)
}

// parseItemID returns the response id and position an item id names.
func parseItemID(id string) (respID string, index int, ok bool) {
	_, rest, found := strings.Cut(id, "_")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil || n < 0 {
		return "", 0, false
	}
	return "resp_" + rest[:i], n, true
}

// outputItem is one item of a response's output.
type outputItem struct {
	// Type is "message", "function_call", "reasoning", or another type
	// kept verbatim in Raw (native upstreams only).
	Type string
	// ID is the item id (see itemID).
	ID string
	// Text is a message's or a reasoning item's text.
	Text string
	// CallID, Name and Arguments describe a function call.
	CallID, Name, Arguments string
	// Raw is an item of another type, as the upstream sent it.
	Raw json.RawMessage
	// Done is false while a streamed item is still open.
	Done bool
}

// status is the item's status field.
func (it *outputItem) status() string {
	if it.Done {
		return "completed"
	}
	return "in_progress"
}

// appendJSON appends the item as the Responses API renders it (see
// jsonObject).
func (it *outputItem) appendJSON(b []byte) []byte {
	if it.Type != "message" && it.Type != "function_call" && it.Type != "reasoning" {
		return append(b, it.Raw...)
	}
	var j jsonObject
	j.b = append(b, '{')
	j.str("id", it.ID)
	j.str("type", it.Type)
	j.str("status", it.status())
	switch it.Type {
	case "message":
		j.str("role", "assistant")
		j.key("content")
		j.b = append(j.b, '[')
		if it.Done || it.Text != "" {
			j.b = appendTextPart(j.b, it.Text)
		}
		j.b = append(j.b, ']')
	case "function_call":
		j.str("call_id", it.CallID)
		j.str("name", it.Name)
		j.str("arguments", it.Arguments)
	case "reasoning":
		j.raw("summary", []byte("[]"))
		j.key("content")
		j.b = append(j.b, '[')
		if it.Text != "" {
			j.b = append(j.b, `{"type":"reasoning_text","text":`...)
			j.b = append(gjson.AppendJSONString(j.b, it.Text), '}')
		}
		j.b = append(j.b, ']')
	}
	return j.close()
}

// MarshalJSON renders the item as the Responses API does.
func (it outputItem) MarshalJSON() ([]byte, error) { return it.appendJSON(nil), nil }

// responseUsage is the usage object of a response.
type responseUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// usageFromChat maps a chat completion's usage.
func usageFromChat(u *upstream.Usage) *responseUsage {
	if u == nil {
		return nil
	}
	out := &responseUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	out.InputTokensDetails.CachedTokens = u.CachedTokens
	if out.TotalTokens == 0 {
		out.TotalTokens = out.InputTokens + out.OutputTokens
	}
	return out
}

// usageFromResponses reads a native response's usage.
func usageFromResponses(v gjson.Result) *responseUsage {
	if !v.IsObject() {
		return nil
	}
	out := &responseUsage{InputTokens: int(v.Get("input_tokens").Int()), OutputTokens: int(v.Get("output_tokens").Int()), TotalTokens: int(v.Get("total_tokens").Int())}
	out.InputTokensDetails.CachedTokens = int(v.Get("input_tokens_details.cached_tokens").Int())
	out.OutputTokensDetails.ReasoningTokens = int(v.Get("output_tokens_details.reasoning_tokens").Int())
	if out.TotalTokens == 0 {
		out.TotalTokens = out.InputTokens + out.OutputTokens
	}
	return out
}

// responseError is the error of a failed response.
type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// answer is a model's answer in the Responses API's terms, built from a
// chat completion (translated) or a native response, whole or streamed.
type answer struct {
	// id is the response id the proxy gave it.
	id string
	// items is the output.
	items []outputItem
	// status is "in_progress", "completed", "incomplete" or "failed".
	status string
	// incomplete is the reason of an incomplete answer.
	incomplete string
	// err describes a failed answer.
	err *responseError
	// usage is the token usage, nil when the upstream reported none.
	usage *responseUsage
	// model is the model the upstream said it used.
	model string
}

// setFinish maps a chat finish_reason to the answer's status.
func (a *answer) setFinish(reason string) {
	switch reason {
	case "length":
		a.status, a.incomplete = "incomplete", "max_output_tokens"
	case "content_filter":
		a.status, a.incomplete = "incomplete", "content_filter"
	default:
		a.status = "completed"
	}
}

// fail marks the answer failed.
func (a *answer) fail(code, message string) {
	a.status, a.err = "failed", &responseError{Code: code, Message: message}
}

// answerFromChat builds the answer of a whole chat completion.
func answerFromChat(id string, msg upstream.Message) *answer {
	a := &answer{id: id, usage: usageFromChat(msg.Usage), model: msg.Model}
	if msg.Reasoning != "" {
		a.items = append(a.items, outputItem{Type: "reasoning", ID: itemID("rs", id, len(a.items)), Text: msg.Reasoning, Done: true})
	}
	if msg.Content != "" || len(msg.ToolCalls) == 0 {
		a.items = append(a.items, outputItem{Type: "message", ID: itemID("msg", id, len(a.items)), Text: msg.Content, Done: true})
	}
	for _, tc := range msg.ToolCalls {
		a.items = append(a.items, callItem(id, len(a.items), tc))
		a.items[len(a.items)-1].Done = true
	}
	a.setFinish(msg.FinishReason)
	return a
}

// callItem is a function_call item for a chat tool call.
func callItem(respID string, index int, tc upstream.ToolCall) outputItem {
	callID := tc.ID
	if callID == "" {
		callID = "call_" + strings.TrimPrefix(respID, "resp_") + "_" + strconv.Itoa(index)
	}
	return outputItem{Type: "function_call", ID: itemID("fc", respID, index), CallID: callID, Name: tc.Name, Arguments: tc.Arguments}
}

// answerFromResponse builds the answer of a whole native response, with
// the proxy's ids in place of the upstream's.
func answerFromResponse(id string, body []byte) *answer {
	root := gjson.ParseBytes(body)
	a := &answer{id: id, usage: usageFromResponses(root.Get("usage")), model: root.Get("model").Str}
	root.Get("output").ForEach(func(_, it gjson.Result) bool {
		a.items = append(a.items, nativeItem(id, len(a.items), it))
		return true
	})
	a.status = root.Get("status").Str
	switch a.status {
	case "incomplete":
		a.incomplete = root.Get("incomplete_details.reason").Str
	case "failed":
		a.fail(root.Get("error.code").Str, root.Get("error.message").Str)
	default:
		a.status = "completed"
	}
	return a
}

// nativeItem converts one output item of a native response.
func nativeItem(respID string, index int, it gjson.Result) outputItem {
	switch typ := it.Get("type").Str; typ {
	case "message":
		return outputItem{Type: "message", ID: itemID("msg", respID, index), Text: partsText(it.Get("content")), Done: true}
	case "function_call":
		o := callItem(respID, index, upstream.ToolCall{ID: it.Get("call_id").Str, Name: it.Get("name").Str, Arguments: it.Get("arguments").Str})
		o.Done = true
		return o
	case "reasoning":
		text := partsText(it.Get("content"))
		if text == "" {
			text = partsText(it.Get("summary"))
		}
		return outputItem{Type: "reasoning", ID: itemID("rs", respID, index), Text: text, Done: true}
	default:
		return outputItem{Type: typ, Raw: json.RawMessage(it.Raw), Done: true}
	}
}

// message is the answer as the assistant message memory stores: the text
// of its message items and its function calls.
func (a *answer) message() upstream.Message {
	m := upstream.Message{Role: "assistant", Model: a.model}
	var texts []string
	for _, it := range a.items {
		switch it.Type {
		case "message":
			if it.Text != "" {
				texts = append(texts, it.Text)
			}
		case "function_call":
			m.ToolCalls = append(m.ToolCalls, upstream.ToolCall{Index: len(m.ToolCalls), ID: it.CallID, Type: "function", Name: it.Name, Arguments: it.Arguments})
		case "reasoning":
			m.Reasoning += it.Text
		}
	}
	m.Content = strings.Join(texts, "\n")
	return m
}

// responseObject is a response as the API returns it. The request's
// settings are echoed as the client sent them.
type responseObject struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	CreatedAt          int64           `json:"created_at"`
	Status             string          `json:"status"`
	CompletedAt        *int64          `json:"completed_at"`
	Error              *responseError  `json:"error"`
	IncompleteDetails  *incomplete     `json:"incomplete_details"`
	Instructions       json.RawMessage `json:"instructions"`
	MaxOutputTokens    json.RawMessage `json:"max_output_tokens"`
	Model              string          `json:"model"`
	Output             []outputItem    `json:"output"`
	ParallelToolCalls  json.RawMessage `json:"parallel_tool_calls"`
	PreviousResponseID json.RawMessage `json:"previous_response_id"`
	Reasoning          json.RawMessage `json:"reasoning"`
	Store              bool            `json:"store"`
	Temperature        json.RawMessage `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopP               json.RawMessage `json:"top_p"`
	Truncation         string          `json:"truncation"`
	Usage              *responseUsage  `json:"usage"`
	User               json.RawMessage `json:"user"`
	Metadata           json.RawMessage `json:"metadata"`
}

// incomplete is a response's incomplete_details.
type incomplete struct {
	Reason string `json:"reason"`
}

// echo returns the request's value of a field, or def when unset.
func (r *responsesRequest) echo(field, def string) json.RawMessage {
	if v := r.get(field); v.Exists() && v.Type != gjson.Null {
		return json.RawMessage(v.Raw)
	}
	return json.RawMessage(def)
}

// object builds the response object of an answer to r, created at
// created.
func (r *responsesRequest) object(a *answer, created time.Time) *responseObject {
	if r.echoed == nil {
		// The same for every object of the request (a stream builds three).
		r.echoed = &responseObject{
			Instructions:       r.echo("instructions", "null"),
			MaxOutputTokens:    r.echo("max_output_tokens", "null"),
			ParallelToolCalls:  r.echo("parallel_tool_calls", "true"),
			PreviousResponseID: r.echo("previous_response_id", "null"),
			Reasoning:          r.echo("reasoning", `{"effort":null,"summary":null}`),
			Temperature:        r.echo("temperature", "1"),
			Text:               r.echo("text", `{"format":{"type":"text"}}`),
			ToolChoice:         r.echo("tool_choice", `"auto"`),
			Tools:              r.echo("tools", "[]"),
			TopP:               r.echo("top_p", "1"),
			User:               r.echo("user", "null"),
			Metadata:           r.echo("metadata", "{}"),
		}
	}
	o := new(responseObject)
	*o = *r.echoed
	o.ID, o.Object, o.CreatedAt, o.Status, o.Error = a.id, "response", created.Unix(), a.status, a.err
	o.Model, o.Output, o.Store, o.Truncation, o.Usage = r.model, a.items, r.store, "disabled", a.usage
	if o.Model == "" {
		o.Model = a.model
	}
	if o.Output == nil {
		o.Output = []outputItem{}
	}
	if a.status == "completed" || a.status == "incomplete" {
		now := time.Now().Unix()
		o.CompletedAt = &now
	}
	if a.incomplete != "" {
		o.IncompleteDetails = &incomplete{Reason: a.incomplete}
	}
	return o
}

// appendJSON appends the object (see jsonObject); the echoed settings are
// the client's own JSON, already validated.
func (o *responseObject) appendJSON(b []byte) []byte {
	var j jsonObject
	j.b = append(b, '{')
	null := []byte("null")
	j.str("id", o.ID)
	j.str("object", o.Object)
	j.num("created_at", o.CreatedAt)
	j.str("status", o.Status)
	if o.CompletedAt != nil {
		j.num("completed_at", *o.CompletedAt)
	} else {
		j.raw("completed_at", null)
	}
	if e := o.Error; e != nil {
		j.obj("error", func(j *jsonObject) { j.str("code", e.Code); j.str("message", e.Message) })
	} else {
		j.raw("error", null)
	}
	if d := o.IncompleteDetails; d != nil {
		j.obj("incomplete_details", func(j *jsonObject) { j.str("reason", d.Reason) })
	} else {
		j.raw("incomplete_details", null)
	}
	j.raw("instructions", o.Instructions)
	j.raw("max_output_tokens", o.MaxOutputTokens)
	j.str("model", o.Model)
	j.key("output")
	j.b = append(j.b, '[')
	for i := range o.Output {
		if i > 0 {
			j.b = append(j.b, ',')
		}
		j.b = o.Output[i].appendJSON(j.b)
	}
	j.b = append(j.b, ']')
	j.raw("parallel_tool_calls", o.ParallelToolCalls)
	j.raw("previous_response_id", o.PreviousResponseID)
	j.raw("reasoning", o.Reasoning)
	j.key("store")
	j.b = strconv.AppendBool(j.b, o.Store)
	j.raw("temperature", o.Temperature)
	j.raw("text", o.Text)
	j.raw("tool_choice", o.ToolChoice)
	j.raw("tools", o.Tools)
	j.raw("top_p", o.TopP)
	j.str("truncation", o.Truncation)
	if u := o.Usage; u != nil {
		j.obj("usage", func(j *jsonObject) {
			j.num("input_tokens", int64(u.InputTokens))
			j.obj("input_tokens_details", func(j *jsonObject) { j.num("cached_tokens", int64(u.InputTokensDetails.CachedTokens)) })
			j.num("output_tokens", int64(u.OutputTokens))
			j.obj("output_tokens_details", func(j *jsonObject) { j.num("reasoning_tokens", int64(u.OutputTokensDetails.ReasoningTokens)) })
			j.num("total_tokens", int64(u.TotalTokens))
		})
	} else {
		j.raw("usage", null)
	}
	j.raw("user", o.User)
	j.raw("metadata", o.Metadata)
	return j.close()
}

// MarshalJSON renders the object as the Responses API does.
func (o *responseObject) MarshalJSON() ([]byte, error) { return o.appendJSON(nil), nil }

// mustMarshal encodes v, which cannot fail for the proxy's own types.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("proxy: encode %T: %v", v, err))
	}
	return b
}
