package pgstore

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/memory/qvec"
	"github.com/megacontext/megacontext/memory/tree"
)

// The engine's records are JSON values (memory/schema.go names their
// kinds); here each is taken apart into its table's columns, and built
// back when read. The shapes below mirror the engine's records field for
// field: the engine's suite, run on this store, reads every kind back.

// headerJSON is a context header (memory's ctxRecord).
type headerJSON struct {
	Created  int64  `json:"created"`
	Updated  int64  `json:"updated"`
	Messages int    `json:"messages"`
	Tokens   int64  `json:"tokens"`
	Bytes    int64  `json:"bytes"`
	Policy   string `json:"policy,omitempty"`
	// Tokenizer names the token counter of the context's counts (its
	// column since migration 0004).
	Tokenizer string `json:"tokenizer,omitempty"`
}

// columns are the scan destinations of a header row's columns from
// created_ms to extra (qHeader, qHeaders), extra into *extra.
func (h *headerJSON) columns(extra *[]byte) []any {
	return []any{&h.Created, &h.Updated, &h.Messages, &h.Tokens, &h.Bytes, &h.Policy, &h.Tokenizer, extra}
}

// value is the header record read back, with the fields no column holds.
func (h headerJSON) value(extra []byte) string {
	h.Tokenizer = goText(h.Tokenizer)
	return withExtra(encode(h), extra)
}

// originJSON is where a merged message came from (memory's Origin).
type originJSON struct {
	Context string `json:"context"`
	Seq     int64  `json:"seq"`
	Time    int64  `json:"time"`
}

// msgJSON is a stored message with its raw JSON (memory's msgDisk).
type msgJSON struct {
	Seq        int64           `json:"seq"`
	Parent     int64           `json:"parent"`
	Hash       string          `json:"hash"`
	RawKey     string          `json:"rk,omitempty"`
	Extra      int             `json:"extra,omitempty"`
	Role       string          `json:"role"`
	Name       string          `json:"name,omitempty"`
	Text       string          `json:"text"`
	Time       int64           `json:"time"`
	Partial    bool            `json:"partial,omitempty"`
	Superseded bool            `json:"superseded,omitempty"`
	Pruned     bool            `json:"pruned,omitempty"`
	Damaged    bool            `json:"damaged,omitempty"`
	Tags       []string        `json:"tags,omitempty"`
	Whole      []string        `json:"whole,omitempty"`
	Origin     *originJSON     `json:"origin,omitempty"`
	First      int             `json:"first"`
	Last       int             `json:"last"`
	Tokens     int             `json:"tokens"`
	Uncounted  bool            `json:"uncounted,omitempty"`
	Raw        json.RawMessage `json:"raw,omitempty"`
	// extra are the record's fields without a column (not encoded here).
	extra []byte
}

// rawKey returns the message's raw key as bytes (nil when none).
func (m *msgJSON) rawKey() ([]byte, error) {
	if m.RawKey == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(m.RawKey)
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("pgstore: message %d: raw key %q", m.Seq, m.RawKey)
	}
	return b, nil
}

// tagRows lists the message's tags as rows: Tags in order (whole when in
// Whole too), then the Whole rules Tags lacks.
func (m *msgJSON) tagRows() (ords []int16, rules []string, tagged, whole []bool) {
	add := func(rule string, t, w bool) {
		ords = append(ords, int16(len(ords)))
		rules, tagged, whole = append(rules, rule), append(tagged, t), append(whole, w)
	}
	for _, r := range m.Tags {
		add(r, true, slices.Contains(m.Whole, r))
	}
	for _, r := range m.Whole {
		if !slices.Contains(m.Tags, r) {
			add(r, false, true)
		}
	}
	return
}

// focusJSON is a node's focus telemetry (memory's NodeFocus).
type focusJSON struct {
	Expanded     int    `json:"expanded"`
	LastExpanded int64  `json:"last_expanded,omitempty"`
	Resident     int    `json:"resident"`
	LastResident int64  `json:"last_resident,omitempty"`
	Swaps        int    `json:"swaps"`
	Questions    int    `json:"questions"`
	LastQuestion uint64 `json:"last_question,omitempty"`
}

// provJSON is the part of a provenance record kept in columns besides
// the record itself.
type provJSON struct {
	Kind string `json:"kind"`
	Time int64  `json:"time"`
}

// encode writes a record as JSON. It cannot fail: the values are strings,
// numbers and JSON read back from the database.
func encode(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("pgstore: encode %T: %v", v, err))
	}
	return string(b)
}

// decode reads a record's JSON, saying which record failed.
func decode(k key, val string, v any) error {
	if err := json.Unmarshal([]byte(val), v); err != nil {
		return fmt.Errorf("pgstore: record %s is not what its kind holds: %w", k, err)
	}
	return nil
}

// blockSpans encodes a block's spans for the jsonb column (nil: none).
func blockSpans(n *tree.Node) []byte {
	if len(n.Spans) == 0 {
		return nil
	}
	b, _ := json.Marshal(n.Spans)
	return b
}

// blockTags are a block's tags: its spans' rules in order, as ingest sets
// them.
func blockTags(spans []tree.Span) []string {
	var tags []string
	for _, sp := range spans {
		if !slices.Contains(tags, sp.Rule) {
			tags = append(tags, sp.Rule)
		}
	}
	return tags
}

// vectorRow splits a vector record (qvec encoding) into its scale and
// elements.
func vectorRow(val string) (float32, []byte, error) {
	q, err := qvec.Decode([]byte(val))
	if err != nil {
		return 0, nil, err
	}
	data := make([]byte, len(q.Data))
	for i, x := range q.Data {
		data[i] = byte(x)
	}
	return q.Scale, data, nil
}

// vectorValue builds a vector record back.
func vectorValue(scale float32, data []byte) string {
	q := qvec.Vector{Scale: scale, Data: make([]int8, len(data))}
	for i, b := range data {
		q.Data[i] = int8(b)
	}
	return string(q.Encode())
}

// pgText makes s storable as PostgreSQL text, which holds neither NUL
// bytes nor invalid UTF-8: a NUL is written as \x01 '0' and \x01 itself as
// \x01 '1' (goText reverses it); a byte that is not UTF-8 becomes U+FFFD,
// as encoding/json (the embedded store's encoding) does.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 && strings.IndexByte(s, 1) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == 0:
			b.WriteString("\x010")
		case r == 1:
			b.WriteString("\x011")
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// goText reads back a text pgText wrote.
func goText(s string) string {
	if strings.IndexByte(s, 1) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == 1 && i+1 < len(s) {
			b.WriteByte(s[i+1] - '0')
			i++
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// pgName makes a context id storable as text, reversibly: an id that is
// valid UTF-8 without \x01 as it is, any other as \x01 and the hex of its
// bytes (goName reverses it). Ids are compared as stored, so two ids never
// become one.
func pgName(s string) string {
	if strings.IndexByte(s, 1) < 0 && utf8.ValidString(s) {
		return s
	}
	return "\x01" + hex.EncodeToString([]byte(s))
}

// goName reads back an id pgName wrote.
func goName(s string) string {
	if strings.HasPrefix(s, "\x01") {
		if b, err := hex.DecodeString(s[1:]); err == nil {
			return string(b)
		}
	}
	return s
}

// pgTexts is pgText of each string.
func pgTexts(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = pgText(s)
	}
	return out
}

// goTexts is goText of each string.
func goTexts(ss []string) []string {
	for i, s := range ss {
		ss[i] = goText(s)
	}
	return ss
}

// The engine's records may gain fields this store has no column for (a
// record written by a newer engine, or a field added without a
// migration): those travel in the row's extra column, as JSON, and come
// back with the record, so that nothing written is lost.

// knownFields returns the JSON names of v's fields.
func knownFields(v any) map[string]bool {
	out := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

var (
	headerFields = knownFields(headerJSON{})
	msgFields    = knownFields(msgJSON{})
	// nodeFields are the fields of tree.Node the blocks and nodes tables
	// have columns for (a later field of it travels in extra).
	nodeFields = map[string]bool{"l": true, "i": true, "f": true, "z": true, "n": true, "t": true, "c": true, "s": true, "sc": true,
		"hd": true, "dh": true, "j": true, "h": true, "m": true, "p": true, "r": true, "ts": true, "te": true, "g": true, "sp": true}
	focusFields = knownFields(focusJSON{})
)

// HasColumn reports whether records of kind (memory/schema.go's letters:
// c, m, n, f) keep their field named field (its JSON name) in a column of
// its own. A field without one still round-trips, in the row's extra
// column, but is neither typed nor queryable: the engine's tests check
// that every field of its records has a column (a migration adds one).
func HasColumn(kind, field string) bool {
	switch kind {
	case kindContext:
		return headerFields[field]
	case kindMessage:
		return msgFields[field]
	case kindNode:
		return nodeFields[field]
	case kindFocus:
		return focusFields[field]
	}
	return false
}

// extraFields returns the members of the JSON object val that known lacks,
// as a JSON object (nil when there are none). It runs for every record a
// turn writes, on the request path: it walks the object's top-level keys
// in place (gjson) rather than decoding every member into a map, which
// took a tenth of a turn's CPU in the write (BenchmarkExtraFields). The
// object it returns goes to a jsonb column, which normalizes it.
func extraFields(val string, known map[string]bool) ([]byte, error) {
	if !gjson.Valid(val) {
		return nil, fmt.Errorf("pgstore: a record is not valid JSON")
	}
	r := gjson.Parse(val)
	switch {
	case r.Type == gjson.Null:
		return nil, nil
	case !r.IsObject():
		return nil, fmt.Errorf("pgstore: a record is not a JSON object")
	}
	var out []byte
	r.ForEach(func(k, v gjson.Result) bool {
		if known[k.Str] {
			return true
		}
		if out == nil {
			out = append(out, '{')
		} else {
			out = append(out, ',')
		}
		out = append(out, k.Raw...)
		out = append(out, ':')
		out = append(out, v.Raw...)
		return true
	})
	if out != nil {
		out = append(out, '}')
	}
	return out, nil
}

// withExtra adds the members of the JSON object extra to the encoded
// object enc.
func withExtra(enc string, extra []byte) string {
	if len(extra) <= 2 || !strings.HasSuffix(enc, "}") {
		return enc
	}
	sep := ","
	if enc == "{}" {
		sep = ""
	}
	return enc[:len(enc)-1] + sep + string(extra[1:])
}
