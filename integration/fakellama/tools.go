package fakellama

import (
	"encoding/json"
	"strings"
	"unicode"
)

// ToolCall is a tool call the fixture answers with instead of text.
type ToolCall struct {
	// ID is the call id ("call_" and random letters).
	ID string
	// Name is the function called.
	Name string
	// Arguments is the JSON text of the arguments.
	Arguments string
}

// tool is a function tool offered by a chat request.
type tool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string `json:"name"`
		Parameters struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

// toolChoice is a chat request's tool_choice: "none", "auto", "required" or
// {"type":"function","function":{"name":...}}.
type toolChoice struct {
	mode string
	name string
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *toolChoice) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.mode); err == nil {
		return nil
	}
	var obj struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return err
	}
	c.mode, c.name = "function", obj.Function.Name
	return nil
}

// DefaultToolCall decides whether a chat request is answered with a tool
// call, deterministically: when the request offers function tools, the
// last message is the user's, and tool_choice names a function, is
// "required", or is unset or "auto" and the user's text names one of the
// tools: its name, or the last word of it ("weather" for get_weather).
// The call's arguments give every string parameter the last word of the
// user's text ("What is the weather in Paris?" -> {"city":"Paris"}).
func DefaultToolCall(msgs []Message, tools []tool, choice toolChoice) *ToolCall {
	if len(tools) == 0 || len(msgs) == 0 || msgs[len(msgs)-1].Role != "user" || choice.mode == "none" {
		return nil
	}
	text := msgs[len(msgs)-1].Content
	lower := strings.ToLower(text)
	var pick *tool
	for i := range tools {
		t := &tools[i]
		name := t.Function.Name
		switch {
		case t.Type != "function" || name == "":
		case choice.mode == "function" && name == choice.name,
			choice.mode == "required" && pick == nil,
			(choice.mode == "" || choice.mode == "auto") && pick == nil &&
				(strings.Contains(lower, strings.ToLower(name)) || strings.Contains(lower, lastWord(strings.ToLower(name)))):
			pick = t
		}
	}
	if pick == nil {
		return nil
	}
	fields := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' })
	last := ""
	if len(fields) > 0 {
		last = fields[len(fields)-1]
	}
	args := map[string]string{}
	for k, p := range pick.Function.Parameters.Properties {
		if p.Type == "string" {
			args[k] = last
		}
	}
	b, _ := marshal(args)
	return &ToolCall{ID: "call_" + randomString()[:24], Name: pick.Function.Name, Arguments: string(b)}
}

// lastWord is the last word of a snake_case or dashed name.
func lastWord(name string) string {
	f := strings.FieldsFunc(name, func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(f) == 0 {
		return name
	}
	return f[len(f)-1]
}
