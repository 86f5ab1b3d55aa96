package pgstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
)

// extraFieldsByMap is extraFields as it was: every member decoded into a
// map, the known ones deleted, the rest encoded again. It is the reference
// the in-place walk must agree with.
func extraFieldsByMap(val string, known map[string]bool) ([]byte, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal([]byte(val), &all); err != nil {
		return nil, err
	}
	for k := range all {
		if known[k] {
			delete(all, k)
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	return json.Marshal(all)
}

// sameMembers reports whether two extraFields results hold the same
// members (as jsonb would store them: key order and spacing aside).
func sameMembers(t *testing.T, a, b []byte) bool {
	t.Helper()
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil {
		return true
	}
	var ma, mb map[string]any
	if err := json.Unmarshal(a, &ma); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &mb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return fmt.Sprint(ma) == fmt.Sprint(mb)
}

func TestExtraFields(t *testing.T) {
	known := map[string]bool{"s": true, "t": true, "x\"y": true}
	for _, tc := range []struct {
		val  string
		want string // "" for nil; "error" for an error
	}{
		{`{"s":1,"t":"a"}`, ""},
		{`{}`, ""},
		{`null`, ""},
		{`{"s":1,"new":{"a":[1,2]},"t":"x"}`, `{"new":{"a":[1,2]}}`},
		{`{"x\"y":1,"\u0073":2,"k\u00e9":"v"}`, `{"k\u00e9":"v"}`},
		{` { "a" : 1 , "s" : 2 } `, `{"a":1}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`[1,2]`, "error"},
		{`"s"`, "error"},
		{`{"a":`, "error"},
		{`{"a":1}x`, "error"},
	} {
		got, err := extraFields(tc.val, known)
		switch {
		case tc.want == "error":
			if err == nil {
				t.Errorf("%s: no error, got %s", tc.val, got)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.val, err)
		case tc.want == "":
			if got != nil {
				t.Errorf("%s: got %s, want none", tc.val, got)
			}
		case !sameMembers(t, got, []byte(tc.want)):
			t.Errorf("%s: got %s, want %s", tc.val, got, tc.want)
		}
	}
}

// TestExtraFieldsAgreesWithDecoding: over random records of known and
// unknown members (nested values, escaped keys), the walk in place finds
// the members the map decoding found, and fails where it failed.
func TestExtraFieldsAgreesWithDecoding(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 8))
	keys := []string{"s", "t", "m", "raw", "new", "é", `q"k`, `\u0073`, "x"}
	known := map[string]bool{"s": true, "t": true, "m": true, "raw": true, "x": true}
	values := []string{`1`, `-2.5e3`, `"text with \"quotes\" and , : { }"`, `null`, `true`, `[1,{"a":"}"}]`, `{"n":{"m":[]}}`, `""`}
	for i := range 2000 {
		var b strings.Builder
		b.WriteByte('{')
		for j := range r.IntN(6) {
			if j > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(keys[r.IntN(len(keys))])
			if keys[r.IntN(len(keys))] == `\u0073` {
				k = []byte(`"\u0073"`) // an escaped known key
			}
			fmt.Fprintf(&b, "%s:%s", k, values[r.IntN(len(values))])
		}
		b.WriteByte('}')
		val := b.String()
		if i%50 == 0 {
			val = val[:r.IntN(len(val))] // cut short: invalid
		}
		got, err := extraFields(val, known)
		want, werr := extraFieldsByMap(val, known)
		if (err != nil) != (werr != nil) {
			t.Fatalf("%s: error %v, decoding's %v", val, err, werr)
		}
		if err == nil && !sameMembers(t, got, want) {
			t.Fatalf("%s: got %s, decoding found %s", val, got, want)
		}
	}
}

// BenchmarkExtraFields: a turn's message record (a user message of 50
// words) walked in place against decoded into a map, as the write did.
//
//	go test ./memory/pgstore -run '^$' -bench ExtraFields
func BenchmarkExtraFields(b *testing.B) {
	text := strings.Repeat("the quick brown fox jumps over the lazy dog ", 6)
	raw, _ := json.Marshal(map[string]string{"role": "user", "content": text})
	m := msgJSON{Seq: 41, Parent: 40, Hash: strings.Repeat("ab", 32), Role: "user", Text: text, Tokens: 60, Raw: raw}
	val := encode(m)
	known := maps.Clone(msgFields)
	for _, bc := range []struct {
		name string
		f    func(string, map[string]bool) ([]byte, error)
	}{{"walk", extraFields}, {"map", extraFieldsByMap}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.f(val, known); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
