package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/jsondepth"
)

// maxToolCalls bounds the tool calls one message may accumulate, so a
// hostile stream cannot grow it without limit.
const maxToolCalls = 1024

// ToolCall is one assistant tool call.
type ToolCall struct {
	// Index is the call's position as streamed by the upstream.
	Index int
	// ID is the call id the client must answer with.
	ID string
	// Type is "function" for every current server.
	Type string
	// Name is the function name.
	Name string
	// Arguments is the JSON text of the arguments, concatenated from all
	// streamed fragments (and not validated).
	Arguments string
}

// Usage is the token accounting an upstream reported.
type Usage struct {
	// PromptTokens is the prompt size the upstream counted.
	PromptTokens int
	// CompletionTokens is the number of generated tokens.
	CompletionTokens int
	// TotalTokens is their sum as reported.
	TotalTokens int
	// CachedTokens is prompt_tokens_details.cached_tokens, when reported.
	CachedTokens int
}

// Message is an assistant reply assembled from a chat completion (streamed
// or not).
type Message struct {
	// ID echoes the completion's id.
	ID string
	// Model echoes the completion's model field.
	Model string
	// Role is the message role, "assistant" unless the upstream said
	// otherwise.
	Role string
	// Content is the reply text.
	Content string
	// Reasoning is the separate reasoning text of thinking models
	// (reasoning_content or reasoning), if the upstream sent any.
	Reasoning string
	// ToolCalls are the requested tool calls ordered by Index.
	ToolCalls []ToolCall
	// FinishReason is the last non-empty finish_reason ("stop", "length",
	// "tool_calls", ...), "" if none was received (a cut-off stream).
	FinishReason string
	// Usage is the reported token usage, nil if none.
	Usage *Usage
	// Error is an error message the upstream reported in place of (or in the
	// middle of) the completion.
	Error string
	// Done is true once a stream's "[DONE]" sentinel was seen.
	Done bool
}

// Accumulator builds the final assistant Message from the data of
// chat.completion.chunk events. It tolerates unknown fields, null values,
// content given as an array of parts, tool calls without index, and the
// "[DONE]" sentinel. Only choice 0 is assembled. The zero value is ready to
// use; it is not safe for concurrent use.
type Accumulator struct {
	// OnDelta, when set, is called with every piece of the message as it
	// is folded in, so that a stream can be translated as it comes.
	OnDelta func(Delta)

	msg       Message
	content   strings.Builder
	reasoning strings.Builder
	tools     []ToolCall
	chunks    int
}

// Delta is one piece of a streamed message: text added to the reply or to
// its reasoning, or a tool-call fragment.
type Delta struct {
	// Content is text added to the reply.
	Content string
	// Reasoning is text added to the reasoning.
	Reasoning string
	// Tool is the position, in order of first appearance, of the tool call
	// a fragment added to; -1 when the piece is text.
	Tool int
	// Call is that tool call as it stands after the fragment (its ID and
	// Name may arrive after its first fragment).
	Call ToolCall
	// Arguments is the fragment's arguments text.
	Arguments string
}

var doneSentinel = []byte("[DONE]")

// Add consumes the data of one event. Empty data is ignored; "[DONE]" marks
// the stream done; anything else must be a JSON object, else Add returns an
// error and leaves the state unchanged.
func (a *Accumulator) Add(data []byte) error {
	d := bytes.TrimSpace(data)
	if len(d) == 0 {
		return nil
	}
	if bytes.Equal(d, doneSentinel) {
		a.msg.Done = true
		return nil
	}
	if !jsondepth.Valid(d) {
		return fmt.Errorf("accumulate: chunk is not JSON: %q", snippet(d, 80))
	}
	root := gjson.ParseBytes(d)
	if !root.IsObject() {
		return fmt.Errorf("accumulate: chunk is not a JSON object: %q", snippet(d, 80))
	}
	a.chunks++
	// One pass over each object level: gjson's Get rescans from the start.
	var choices gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			if a.msg.ID == "" && v.Type == gjson.String {
				a.msg.ID = v.Str
			}
		case "model":
			if a.msg.Model == "" && v.Type == gjson.String {
				a.msg.Model = v.Str
			}
		case "usage":
			if u := parseUsage(v); u != nil {
				a.msg.Usage = u
			}
		case "error":
			if e := errorMessage(v); e != "" {
				a.msg.Error = e
			}
		case "choices":
			choices = v
		}
		return true
	})
	choices.ForEach(func(_, ch gjson.Result) bool {
		var index int64
		var delta, message, finish gjson.Result
		ch.ForEach(func(k, v gjson.Result) bool {
			switch k.Str {
			case "index":
				index = v.Int()
			case "delta":
				delta = v
			case "message":
				message = v
			case "finish_reason":
				finish = v
			}
			return true
		})
		if index != 0 {
			return true
		}
		if !delta.IsObject() {
			delta = message // some servers stream whole messages
		}
		a.addDelta(delta)
		if finish.Type == gjson.String && finish.Str != "" {
			a.msg.FinishReason = finish.Str
		}
		return true
	})
	return nil
}

func (a *Accumulator) addDelta(delta gjson.Result) {
	var rc, r gjson.Result
	delta.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "role":
			if v.Type == gjson.String && v.Str != "" {
				a.msg.Role = v.Str
			}
		case "content":
			t := textOf(v)
			a.content.WriteString(t)
			if a.OnDelta != nil && t != "" {
				a.OnDelta(Delta{Content: t, Tool: -1})
			}
		case "reasoning_content":
			rc = v
		case "reasoning":
			r = v
		case "tool_calls":
			v.ForEach(func(_, tc gjson.Result) bool {
				a.mergeTool(tc)
				return true
			})
		}
		return true
	})
	// Some vLLM versions send both names with the same text.
	if rc.Type != gjson.String {
		rc = r
	}
	if rc.Type == gjson.String {
		a.reasoning.WriteString(rc.Str)
		if a.OnDelta != nil && rc.Str != "" {
			a.OnDelta(Delta{Reasoning: rc.Str, Tool: -1})
		}
	}
}

// AddEvent consumes one SSE event: its Data, or for an "error" event the
// error object it carries.
func (a *Accumulator) AddEvent(ev Event) error {
	if ev.Name == "error" {
		d := bytes.TrimSpace(ev.Data)
		if len(d) == 0 {
			return nil
		}
		if jsondepth.Valid(d) {
			r := gjson.ParseBytes(d)
			if e := errorMessage(r.Get("error")); e != "" {
				a.msg.Error = e
			} else if e := errorMessage(r); e != "" {
				a.msg.Error = e
			}
		} else {
			a.msg.Error = snippet(d, 500)
		}
		return nil
	}
	return a.Add(ev.Data)
}

// Done reports whether the stream's "[DONE]" sentinel was seen.
func (a *Accumulator) Done() bool { return a.msg.Done }

// Chunks returns how many JSON chunks were consumed.
func (a *Accumulator) Chunks() int { return a.chunks }

// Message returns the message assembled so far. It may be called at any
// time, also on a stream that was cut off.
func (a *Accumulator) Message() Message {
	m := a.msg
	if m.Role == "" {
		m.Role = "assistant"
	}
	m.Content = a.content.String()
	m.Reasoning = a.reasoning.String()
	if len(a.tools) > 0 {
		m.ToolCalls = append([]ToolCall(nil), a.tools...)
		sort.SliceStable(m.ToolCalls, func(i, j int) bool { return m.ToolCalls[i].Index < m.ToolCalls[j].Index })
	}
	if m.Usage != nil {
		u := *m.Usage
		m.Usage = &u
	}
	return m
}

// mergeTool folds one streamed tool-call fragment into the calls so far.
// Fragments are matched by index; without one, by id; without either, the
// fragment continues the last call.
func (a *Accumulator) mergeTool(tc gjson.Result) {
	if !tc.IsObject() {
		return
	}
	pos := -1
	id := tc.Get("id").String()
	if v := tc.Get("index"); v.Type == gjson.Number {
		idx := int(v.Int())
		for i := range a.tools {
			if a.tools[i].Index == idx {
				pos = i
				break
			}
		}
		if pos < 0 {
			pos = a.newTool(idx)
		}
	} else {
		switch {
		case id != "":
			for i := range a.tools {
				if a.tools[i].ID == id {
					pos = i
					break
				}
			}
		case len(a.tools) > 0:
			pos = len(a.tools) - 1
		}
		if pos < 0 {
			next := 0
			for _, x := range a.tools {
				if x.Index >= next {
					next = x.Index + 1
				}
			}
			pos = a.newTool(next)
		}
	}
	if pos < 0 {
		return
	}
	t := &a.tools[pos]
	if id != "" {
		t.ID = id
	}
	if v := tc.Get("type"); v.Type == gjson.String && v.String() != "" {
		t.Type = v.String()
	}
	fn := tc.Get("function")
	if v := fn.Get("name"); v.Type == gjson.String && v.String() != "" {
		switch name := v.String(); {
		case t.Name == "":
			t.Name = name
		case name != t.Name:
			t.Name += name // a name split over fragments
		}
	}
	args := argumentsOf(fn.Get("arguments"))
	t.Arguments += args
	if a.OnDelta != nil {
		a.OnDelta(Delta{Tool: pos, Call: *t, Arguments: args})
	}
}

// newTool adds a call and returns its position, -1 past maxToolCalls.
func (a *Accumulator) newTool(idx int) int {
	if len(a.tools) >= maxToolCalls {
		return -1
	}
	a.tools = append(a.tools, ToolCall{Index: idx, Type: "function"})
	return len(a.tools) - 1
}

// argumentsOf returns streamed or final arguments as JSON text; some
// servers send an object instead of a string.
func argumentsOf(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		return v.String()
	case v.IsObject() || v.IsArray():
		return v.Raw
	default:
		return ""
	}
}

// textOf returns message content given as a string or as an array of
// {"type":"text","text":...} parts.
func textOf(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		return v.String()
	case v.IsArray():
		var b strings.Builder
		v.ForEach(func(_, p gjson.Result) bool {
			if t := p.Get("text"); t.Type == gjson.String {
				b.WriteString(t.String())
			}
			return true
		})
		return b.String()
	default:
		return ""
	}
}

func reasoningOf(msg gjson.Result) string {
	if v := msg.Get("reasoning_content"); v.Type == gjson.String {
		return v.String()
	}
	if v := msg.Get("reasoning"); v.Type == gjson.String {
		return v.String()
	}
	return ""
}

func parseUsage(v gjson.Result) *Usage {
	if !v.IsObject() {
		return nil
	}
	return &Usage{
		PromptTokens:     int(v.Get("prompt_tokens").Int()),
		CompletionTokens: int(v.Get("completion_tokens").Int()),
		TotalTokens:      int(v.Get("total_tokens").Int()),
		CachedTokens:     int(v.Get("prompt_tokens_details.cached_tokens").Int()),
	}
}

// errorMessage extracts a message from an "error" value: a string, or an
// object with a message.
func errorMessage(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		return v.String()
	case v.IsObject():
		if m := v.Get("message"); m.Type == gjson.String && m.String() != "" {
			return m.String()
		}
		return v.Raw
	default:
		return ""
	}
}

// FromCompletion extracts the assistant Message from a non-streaming
// chat.completion JSON body (choice 0). A body that carries an upstream
// error yields a Message with Error set and an error; a body that is not a
// completion yields an error.
func FromCompletion(body []byte) (Message, error) {
	if !jsondepth.Valid(body) {
		return Message{}, fmt.Errorf("completion: not JSON: %q", snippet(body, 80))
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return Message{}, errors.New("completion: not a JSON object")
	}
	var m Message
	if v := root.Get("id"); v.Type == gjson.String {
		m.ID = v.String()
	}
	if v := root.Get("model"); v.Type == gjson.String {
		m.Model = v.String()
	}
	m.Usage = parseUsage(root.Get("usage"))
	if e := errorMessage(root.Get("error")); e != "" {
		m.Error = e
		return m, fmt.Errorf("completion: upstream error: %s", e)
	}
	var choice gjson.Result
	root.Get("choices").ForEach(func(_, ch gjson.Result) bool {
		if ch.Get("index").Int() == 0 {
			choice = ch
			return false
		}
		return true
	})
	if !choice.Exists() {
		return m, errors.New("completion: no choice 0")
	}
	msg := choice.Get("message")
	m.Role = "assistant"
	if r := msg.Get("role"); r.Type == gjson.String && r.String() != "" {
		m.Role = r.String()
	}
	m.Content = textOf(msg.Get("content"))
	m.Reasoning = reasoningOf(msg)
	i := 0
	msg.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
		if i >= maxToolCalls {
			return false
		}
		t := ToolCall{Index: i, ID: tc.Get("id").String(), Type: tc.Get("type").String(),
			Name: tc.Get("function.name").String(), Arguments: argumentsOf(tc.Get("function.arguments"))}
		if v := tc.Get("index"); v.Type == gjson.Number {
			t.Index = int(v.Int())
		}
		if t.Type == "" {
			t.Type = "function"
		}
		m.ToolCalls = append(m.ToolCalls, t)
		i++
		return true
	})
	if fr := choice.Get("finish_reason"); fr.Type == gjson.String {
		m.FinishReason = fr.String()
	}
	return m, nil
}
