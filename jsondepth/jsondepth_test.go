package jsondepth

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDepth(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{``, 0},
		{`42`, 0},
		{`"[[[["`, 0},
		{`{}`, 1},
		{`[[]]`, 2},
		{`{"a":[{"b":[1,2,{"c":{}}]}]}`, 6},
		{`{"a":"\"[{"}`, 1},
		{`{"a":"\\"}`, 1},
		{`{"a":"\\\"[["}`, 1},
		{`]]]][[`, 2},
		{strings.Repeat("[", 10000), 10000},
	}
	for _, c := range cases {
		if got := Depth(c.in, 0); got != c.want {
			t.Errorf("Depth(%.40q) = %d, want %d", c.in, got, c.want)
		}
		if got := Depth([]byte(c.in), 0); got != c.want {
			t.Errorf("Depth([]byte %.40q) = %d, want %d", c.in, got, c.want)
		}
	}
	if got := Depth(strings.Repeat("[", 1<<20), 3); got != 4 {
		t.Errorf("Depth with stop 3 = %d, want 4 (stops at the first level past stop)", got)
	}
	if Exceeds(`[[1]]`, 2) || !Exceeds(`[[[1]]]`, 2) {
		t.Error("Exceeds disagrees with Depth")
	}
}

// FuzzDepth: on valid JSON, Depth agrees with the nesting encoding/json
// sees (it refuses exactly the documents nested deeper than 10,000).
func FuzzDepth(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"]"}]}`, `"\\"`, `[[[]]]`, strings.Repeat("[", 200) + strings.Repeat("]", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := Depth(s, 0)
		if !json.Valid([]byte(s)) {
			return
		}
		if want := decodedDepth(t, s); d != want {
			t.Fatalf("Depth(%q) = %d, decoded depth %d", s, d, want)
		}
	})
}

// decodedDepth is the nesting of s decoded with encoding/json.
func decodedDepth(t *testing.T, s string) int {
	var v any
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // a number too large for float64 is still valid JSON
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) int
	walk = func(v any) int {
		d := 0
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				d = max(d, walk(e))
			}
			return d + 1
		case map[string]any:
			for _, e := range x {
				d = max(d, walk(e))
			}
			return d + 1
		}
		return 0
	}
	return walk(v)
}
