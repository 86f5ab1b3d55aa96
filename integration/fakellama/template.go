package fakellama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ChatTemplate is the Jinja source of the fixture's ChatML template, as
// reported by /props "chat_template". ApplyTemplate implements it.
const ChatTemplate = "{% for message in messages %}" +
	"{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
	"{% endfor %}" +
	"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// Message is one chat message as the fixture understands it.
//
// It unmarshals from OpenAI JSON: "content" may be a string, null (e.g. an
// assistant message carrying only tool_calls) or an array of content parts.
// For an array, text parts ("text", "input_text") contribute their text and
// image parts ("image_url", "image", "input_image") contribute MediaMarker;
// the contributions are joined with "\n". Other fields (name, tool_calls,
// tool_call_id, ...) are ignored.
type Message struct {
	// Role is the message role ("system", "user", "assistant", "tool", ...).
	Role string
	// Content is the flattened content, with one MediaMarker per image.
	Content string
	// Images is the number of image parts the content had.
	Images int
}

// UnmarshalJSON implements json.Unmarshaler; see Message.
func (m *Message) UnmarshalJSON(b []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = Message{Role: raw.Role}
	c := bytes.TrimSpace(raw.Content)
	switch {
	case len(c) == 0 || bytes.Equal(c, []byte("null")):
	case c[0] == '"':
		return json.Unmarshal(c, &m.Content)
	case c[0] == '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(c, &parts); err != nil {
			return fmt.Errorf("message content parts: %w", err)
		}
		var out []string
		for _, p := range parts {
			switch p.Type {
			case "text", "input_text":
				out = append(out, p.Text)
			case "image_url", "image", "input_image":
				out = append(out, MediaMarker)
				m.Images++
			}
		}
		m.Content = strings.Join(out, "\n")
	default:
		return fmt.Errorf("message content must be a string, an array or null, got %.20s", c)
	}
	return nil
}

// MarshalJSON implements json.Marshaler: content is a string, or, when the
// message has images, an array of text and image_url parts (with an empty
// data URL) that unmarshals back to the same Message.
func (m Message) MarshalJSON() ([]byte, error) {
	type textPart struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type imagePart struct {
		Type     string            `json:"type"`
		ImageURL map[string]string `json:"image_url"`
	}
	if m.Images == 0 {
		return json.Marshal(struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}{m.Role, m.Content})
	}
	var parts []any
	for i, seg := range strings.Split(m.Content, MediaMarker) {
		if i > 0 {
			parts = append(parts, imagePart{"image_url", map[string]string{"url": "data:image/png;base64,"}})
		}
		seg = strings.TrimPrefix(seg, "\n")
		if i < strings.Count(m.Content, MediaMarker) {
			seg = strings.TrimSuffix(seg, "\n")
		}
		if seg != "" {
			parts = append(parts, textPart{"text", seg})
		}
	}
	return json.Marshal(struct {
		Role    string `json:"role"`
		Content []any  `json:"content"`
	}{m.Role, parts})
}

// ApplyTemplate renders messages with the ChatML template and the
// generation prompt:
//
//	<|im_start|>{role}\n{content}<|im_end|>\n   (per message)
//	<|im_start|>assistant\n
func ApplyTemplate(messages []Message) string {
	var b strings.Builder
	for _, m := range messages {
		b.WriteString(ImStart)
		b.WriteString(m.Role)
		b.WriteByte('\n')
		b.WriteString(m.Content)
		b.WriteString(ImEnd)
		b.WriteByte('\n')
	}
	b.WriteString(ImStart)
	b.WriteString("assistant\n")
	return b.String()
}

// PromptTokens is the number of prompt tokens the fixture charges for a
// chat request: CountTokens(ApplyTemplate(messages)). Each ChatML marker is
// one token and each image ImageTokens tokens.
func PromptTokens(messages []Message) int {
	return CountTokens(ApplyTemplate(messages))
}

// LastUserText returns the content of the last "user" message with image
// markers removed, or "" when there is none.
func LastUserText(messages []Message) string {
	for i := len(messages) - 1; i >= 0; i-- {
		if messages[i].Role == "user" {
			return strings.ReplaceAll(messages[i].Content, MediaMarker, " ")
		}
	}
	return ""
}

// DefaultReply is the reply used when Options.Reply is nil: "Noted: "
// followed by the first 8 whitespace-separated words of the last user
// message (of the prompt, for /v1/completions), or "Noted." when there are
// none.
func DefaultReply(req Request) string {
	text := req.Prompt
	if req.Messages != nil {
		text = LastUserText(req.Messages)
	}
	words := strings.Fields(text)
	if len(words) == 0 {
		return "Noted."
	}
	if len(words) > 8 {
		words = words[:8]
	}
	return "Noted: " + strings.Join(words, " ")
}
