package tree

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// DecodeNode reads a node record as json.Marshal writes a Node, in one
// pass and without reflection: a context of a million tokens holds some
// 50,000 nodes, and reading them back was most of what loading it cost.
// It reads what encoding/json would read (unknown keys are skipped) and
// fails on a record that is not an object or whose fields have the wrong
// types. s must be valid JSON (the caller checks, bounding its depth):
// on anything else DecodeNode does not fail safe, it only never panics.
//
// n.Text is a slice of s when the record holds it unescaped: a caller that
// keeps the node beyond s points it at its own copy of the text (the engine
// points a block at its message's text, which holds the same bytes).
// Every other string is the node's own.
func DecodeNode(s string) (*Node, error) {
	r := gjson.Parse(s)
	if !r.IsObject() {
		return nil, fmt.Errorf("tree: node record is not a JSON object")
	}
	n := &Node{}
	var err error
	r.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "l":
			n.Level, err = intField(k.Str, v)
		case "i":
			n.Index, err = intField(k.Str, v)
		case "f":
			n.First, err = intField(k.Str, v)
		case "z":
			n.Last, err = intField(k.Str, v)
		case "n":
			n.Tokens, err = intField(k.Str, v)
		case "c":
			n.Cost, err = intField(k.Str, v)
		case "sc":
			n.ShortCost, err = intField(k.Str, v)
		case "hd":
			n.Head, err = intField(k.Str, v)
		case "dh":
			n.DetailsHead, err = intField(k.Str, v)
		case "j":
			n.Join, err = intField(k.Str, v)
		case "p":
			n.Part, err = intField(k.Str, v)
		case "m":
			n.Msg, err = int64Field(k.Str, v)
		case "ts":
			n.Time, err = int64Field(k.Str, v)
		case "te":
			n.TimeEnd, err = int64Field(k.Str, v)
		case "t":
			n.Text, err = stringField(k.Str, v)
		case "s":
			n.Short, err = stringField(k.Str, v)
			n.Short = strings.Clone(n.Short)
		case "r":
			n.Role, err = stringField(k.Str, v)
			n.Role = role(n.Role)
		case "h":
			err = decodeHash(&n.Hash, v)
		case "g":
			n.Tags, err = stringsField(k.Str, v)
		case "sp":
			n.Spans, err = spansField(v)
		}
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// role returns the package's copy of a well-known role name.
func role(r string) string {
	for _, known := range [...]string{"user", "assistant", "system", "developer", "tool", "function"} {
		if r == known {
			return known
		}
	}
	return strings.Clone(r)
}

func intField(key string, v gjson.Result) (int, error) {
	x, err := int64Field(key, v)
	return int(x), err
}

func int64Field(key string, v gjson.Result) (int64, error) {
	switch v.Type {
	case gjson.Null:
		return 0, nil
	case gjson.Number:
		if !strings.ContainsAny(v.Raw, ".eE") {
			return v.Int(), nil
		}
	}
	return 0, fmt.Errorf("tree: node field %q is not an integer: %.40s", key, v.Raw)
}

func stringField(key string, v gjson.Result) (string, error) {
	switch v.Type {
	case gjson.Null:
		return "", nil
	case gjson.String:
		return v.Str, nil
	}
	return "", fmt.Errorf("tree: node field %q is not a string: %.40s", key, v.Raw)
}

func stringsField(key string, v gjson.Result) ([]string, error) {
	if v.Type == gjson.Null {
		return nil, nil
	}
	if !v.IsArray() {
		return nil, fmt.Errorf("tree: node field %q is not an array: %.40s", key, v.Raw)
	}
	out := []string{}
	var err error
	v.ForEach(func(_, e gjson.Result) bool {
		var s string
		if s, err = stringField(key, e); err == nil {
			out = append(out, strings.Clone(s))
		}
		return err == nil
	})
	return out, err
}

func spansField(v gjson.Result) ([]Span, error) {
	if v.Type == gjson.Null {
		return nil, nil
	}
	if !v.IsArray() {
		return nil, fmt.Errorf("tree: node field \"sp\" is not an array: %.40s", v.Raw)
	}
	out := []Span{}
	var err error
	v.ForEach(func(_, e gjson.Result) bool {
		if !e.IsObject() {
			err = fmt.Errorf("tree: a span is not an object: %.40s", e.Raw)
			return false
		}
		var sp Span
		e.ForEach(func(k, f gjson.Result) bool {
			switch k.Str {
			case "s":
				sp.Start, err = intField("sp.s", f)
			case "e":
				sp.End, err = intField("sp.e", f)
			case "r":
				sp.Rule, err = stringField("sp.r", f)
				sp.Rule = strings.Clone(sp.Rule)
			}
			return err == nil
		})
		out = append(out, sp)
		return err == nil
	})
	return out, err
}

// decodeHash reads a hash in either stored form (see Hash.UnmarshalJSON).
func decodeHash(h *Hash, v gjson.Result) error {
	switch {
	case v.Type == gjson.String:
		if len(v.Str) != base64.RawStdEncoding.EncodedLen(len(h)) {
			return fmt.Errorf("tree: hash of %d characters", len(v.Str))
		}
		_, err := base64.RawStdEncoding.Decode(h[:], []byte(v.Str))
		return err
	case v.IsArray():
		i := 0
		var err error
		v.ForEach(func(_, e gjson.Result) bool {
			x, e2 := int64Field("h", e)
			switch {
			case e2 != nil:
				err = e2
			case x < 0 || x > 255:
				err = fmt.Errorf("tree: hash byte %d", x)
			case i < len(h):
				h[i] = byte(x)
			}
			i++
			return err == nil
		})
		return err
	case v.Type == gjson.Null:
		return nil
	}
	return fmt.Errorf("tree: node field \"h\" is neither a string nor an array: %.40s", v.Raw)
}
