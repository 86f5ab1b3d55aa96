package proxy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
)

// withheld replaces the content of a live message that an exclude rule
// keeps from the model.
const withheld = memory.WithheldText

// protocolKeys are message fields that hold the protocol's own values
// (roles, part types, ids that pair tool calls with results, enums), not
// text the user wrote: they are forwarded as sent. Filtering them would
// break the pairing of calls and results (ids look random enough for the
// api_key detector) and gain nothing a client does not control anyway.
var protocolKeys = map[string]bool{
	"role": true, "type": true, "id": true, "tool_call_id": true, "file_id": true, "detail": true, "format": true,
}

// textFilter filters the text-bearing fields of one message (or of one
// other part of a request) for a caller holding scopes. It remembers the
// hits and whether an exclude rule fired.
type textFilter struct {
	// pol is the policy; never nil.
	pol *policy.Policy
	// scopes are the caller's clearances.
	scopes []string
	// hits lists the spans filtered so far.
	hits []policy.Hit
	// excluded reports that an exclude rule the caller is not cleared for
	// matched somewhere.
	excluded bool
}

// text filters one string.
func (f *textFilter) text(s string) (string, bool) {
	out, ex, hits := f.pol.Filter(s, f.scopes)
	if len(hits) == 0 {
		return s, false
	}
	f.hits = append(f.hits, hits...)
	f.excluded = f.excluded || ex
	return out, true
}

// rewriteJSON re-emits the JSON value v with its scalars (and object keys)
// rewritten, keeping the order of fields; changed reports whether anything
// was, and v.Raw comes back untouched when nothing was. visit has the
// first say on every value, with the key holding it and the key holding
// its object (parent): handled means out replaces the value as a whole,
// else objects and arrays are walked and scalars kept. key rewrites object
// keys; nil keeps them.
func rewriteJSON(v gjson.Result, key, parent string, visit func(v gjson.Result, key, parent string) (out string, changed, handled bool), rekey func(k string) (string, bool)) (string, bool) {
	if out, changed, handled := visit(v, key, parent); handled {
		if !changed {
			return v.Raw, false
		}
		return out, true
	}
	if !v.IsObject() && !v.IsArray() {
		return v.Raw, false
	}
	var b strings.Builder
	changed := false
	open, close := byte('['), byte(']')
	if v.IsObject() {
		open, close = '{', '}'
	}
	b.WriteByte(open)
	n := 0
	v.ForEach(func(k, x gjson.Result) bool {
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		childKey := key
		if k.Type == gjson.String {
			childKey = k.Str
			kraw := k.Raw
			if rekey != nil {
				if out, c := rekey(k.Str); c {
					kraw, changed = out, true
				}
			}
			b.WriteString(kraw)
			b.WriteByte(':')
		}
		childParent := parent
		if v.IsObject() {
			childParent = key
		}
		out, c := rewriteJSON(x, childKey, childParent, visit, rekey)
		changed = changed || c
		b.WriteString(out)
		return true
	})
	b.WriteByte(close)
	if !changed {
		return v.Raw, false
	}
	return b.String(), true
}

// value returns v's JSON with every text-bearing string of a message (or
// of a part of one) filtered, and whether anything changed; see message.
func (f *textFilter) value(v gjson.Result, key, parent string) (string, bool) {
	return rewriteJSON(v, key, parent, f.message, nil)
}

// data returns v's JSON filtered as data: tool-call arguments and request
// fields, the model's or the user's own JSON, where every key, string and
// number is text.
func (f *textFilter) data(v gjson.Result) (string, bool) {
	return rewriteJSON(v, "", "", f.datum, f.quotedText)
}

// message visits a value of a message: protocolKeys and tool names are
// kept, arguments are data, "url" and binary payloads are handled by url
// and payload, other strings are text.
func (f *textFilter) message(v gjson.Result, key, parent string) (string, bool, bool) {
	if key == "arguments" && (v.IsObject() || v.IsArray()) {
		out, changed := f.data(v)
		return out, changed, true
	}
	if v.Type != gjson.String {
		return "", false, false
	}
	var out string
	var changed bool
	switch {
	case protocolKeys[key], key == "name" && (parent == "function" || parent == "function_call"):
	case key == "arguments":
		out, changed = f.arguments(v)
	case key == "url":
		out, changed = f.url(v)
	case key == "data" || key == "file_data":
		out, changed = f.payload(v)
	default:
		out, changed = f.quotedText(v.Str)
	}
	return out, changed, true
}

// datum visits a value of data: strings and numbers are text (a card
// number written as a JSON number is still a card number).
func (f *textFilter) datum(v gjson.Result, _, _ string) (string, bool, bool) {
	switch v.Type {
	case gjson.String:
		out, changed := f.quotedText(v.Str)
		return out, changed, true
	case gjson.Number:
		out, changed := f.quotedText(v.Raw)
		return out, changed, true
	}
	return "", false, false
}

// quotedText filters s and returns it as a JSON string when it changed.
func (f *textFilter) quotedText(s string) (string, bool) {
	out, changed := f.text(s)
	if !changed {
		return "", false
	}
	return quoteJSON(out), true
}

// arguments filters tool-call arguments sent as a string: a JSON document
// (as the API specifies) is filtered value by value, so that JSON escapes
// ("\u0040") hide nothing and the result stays valid JSON; other text is
// filtered as text.
func (f *textFilter) arguments(v gjson.Result) (string, bool) {
	if doc := strings.TrimSpace(v.Str); gjson.Valid(doc) {
		if inner := gjson.Parse(doc); inner.IsObject() || inner.IsArray() || inner.Type == gjson.String {
			out, changed := f.data(inner)
			if !changed {
				return v.Raw, false
			}
			return quoteJSON(out), true
		}
	}
	out, changed := f.text(v.Str)
	if !changed {
		return v.Raw, false
	}
	return quoteJSON(out), true
}

// url filters a URL: as written, and percent-decoded when that reveals
// more (an e-mail address in a query string is written "%40"). A data: URL
// has only its media type filtered (see payload).
func (f *textFilter) url(v gjson.Result) (string, bool) {
	if strings.HasPrefix(v.Str, "data:") {
		return f.payload(v)
	}
	out, changed := f.text(v.Str)
	if dec, ok := percentDecode(out); ok && dec != out {
		if d, c := f.text(dec); c {
			out, changed = d, true
		}
	}
	if !changed {
		return v.Raw, false
	}
	return quoteJSON(out), true
}

// payload filters a binary payload (an image, audio or file as base64,
// possibly as a data: URL): only the text before the first comma, the
// media type and its parameters. Encoded bytes are not read: the policy
// filters text, and base64 would only feed the api_key detector false
// positives that destroy the payload.
func (f *textFilter) payload(v gjson.Result) (string, bool) {
	head, rest, found := strings.Cut(v.Str, ",")
	if !found || !strings.HasPrefix(head, "data:") {
		return v.Raw, false
	}
	out, changed := f.text(head)
	if !changed {
		return v.Raw, false
	}
	return quoteJSON(out + "," + rest), true
}

// percentDecode decodes %XX escapes; ok is false when s has none or a bad
// one.
func percentDecode(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
			return s, false
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// quoteJSON encodes s as a JSON string, leaving <, > and & as they are.
func quoteJSON(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// filterMessage applies the policy to every text-bearing field of a chat
// message for the caller's scopes: the content (a string, or text parts,
// image URLs and file names of content parts), the participant name,
// reasoning_content and any other field a client adds, and tool-call
// arguments (tool_calls and the legacy function_call, as a JSON string or
// a JSON object). Only protocolKeys and tool names are forwarded as sent.
// When an exclude rule fires anywhere in the message, the whole message is
// withheld (see withhold).
func filterMessage(raw []byte, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	if pol == nil {
		return raw, nil, nil
	}
	msg := gjson.ParseBytes(raw)
	if !msg.IsObject() {
		return raw, nil, nil
	}
	f := &textFilter{pol: pol, scopes: scopes}
	held := "" // the key the message is read as held under
	if msg.Get("role").Str == "function" {
		held = "function" // a function result's name is the function's
	}
	out, changed := f.value(msg, held, "")
	if f.excluded {
		w, err := withhold(msg)
		return w, f.hits, err
	}
	if !changed {
		return raw, nil, nil
	}
	return []byte(out), f.hits, nil
}

// withhold returns the message with nothing of what the user wrote: the
// role, the content replaced by the withheld marker, tool calls with their
// ids and names but empty arguments, the tool_call_id of a tool result and
// the name of a function result. Every other field is dropped: an exclude
// rule withholds the whole message, including text its pattern did not
// match (the code next to "project Nightjar").
func withhold(msg gjson.Result) ([]byte, error) {
	out := []byte(`{}`)
	var err error
	set := func(path string, v any) {
		if err == nil {
			out, err = sjson.SetBytes(out, path, v)
		}
	}
	role := msg.Get("role").Str
	set("role", role)
	set("content", withheld)
	if id := msg.Get("tool_call_id"); id.Type == gjson.String {
		set("tool_call_id", id.Str)
	}
	if name := msg.Get("name"); role == "function" && name.Type == gjson.String {
		set("name", name.Str)
	}
	for i, call := range msg.Get("tool_calls").Array() {
		p := "tool_calls." + strconv.Itoa(i)
		set(p+".id", call.Get("id").Str)
		set(p+".type", call.Get("type").Str)
		set(p+".function.name", call.Get("function.name").Str)
		set(p+".function.arguments", "{}")
	}
	if fc := msg.Get("function_call"); fc.IsObject() {
		set("function_call.name", fc.Get("name").Str)
		set("function_call.arguments", "{}")
	}
	return out, err
}

// filterRequestFields filters the text-bearing fields of a request body
// outside its messages: the end-user id "user", "metadata" values and
// predicted output ("prediction"). An exclude rule drops the field. Other
// fields (model, sampling options, tool schemas, response formats) are
// configuration the application wrote, not conversation, and pass as sent.
func filterRequestFields(body []byte, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	return filterFields(body, []string{"user", "metadata", "prediction"}, pol, scopes)
}

// filterFields filters the named top-level fields of a JSON body as data
// (every key, string and number). A field an exclude rule matches is
// removed.
func filterFields(body []byte, fields []string, pol *policy.Policy, scopes []string) ([]byte, []policy.Hit, error) {
	if pol == nil {
		return body, nil, nil
	}
	var hits []policy.Hit
	for _, name := range fields {
		v := gjson.GetBytes(body, name)
		if !v.Exists() {
			continue
		}
		f := &textFilter{pol: pol, scopes: scopes}
		out, changed := f.data(v)
		hits = append(hits, f.hits...)
		var err error
		switch {
		case f.excluded:
			body, err = sjson.DeleteBytes(body, name)
		case changed:
			body, err = sjson.SetRawBytes(body, name, []byte(out))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return body, hits, nil
}
