package gist

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/tree"
	"github.com/megacontext/megacontext/tokens"
)

func TestSplitSentences(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"One. Two!  Three?", []string{"One.", "Two!", "Three?"}},
		{"Pi is 3.14 today. Next", []string{"Pi is 3.14 today.", "Next"}},
		{"line one\nline two", []string{"line one", "line two"}},
		{"  spaced   out  words ", []string{"spaced out words"}},
	}
	for _, c := range cases {
		if got := SplitSentences(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitSentences(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func blocks(texts ...string) []*tree.Node {
	var out []*tree.Node
	for i, s := range texts {
		out = append(out, &tree.Node{Text: s, Msg: int64(i), Role: "user"})
	}
	return out
}

func TestGistKeepsCodesAndEntitiesWithinCap(t *testing.T) {
	e := Extractive{Counter: tokens.Estimate{}, MaxTokens: 48, ShortTokens: 12}
	g := e.Summarize(1, blocks(
		"we talked about the weather for a while and it was nice and sunny and warm outside today",
		"My locker code is ZX-4471-QK and the gym is on Baker Street.",
		"the garden needs water and the roses need pruning before the end of the month",
		"and then some more filler text that nobody will ever ask about again really",
	))
	if !strings.Contains(g.Text, "ZX-4471-QK") {
		t.Errorf("gist lost the code: %q", g.Text)
	}
	if !strings.Contains(g.Short, "ZX-4471-QK") {
		t.Errorf("headline lost the code: %q", g.Short)
	}
	if g.Cost != (tokens.Estimate{}).Count(g.Text) || g.ShortCost != (tokens.Estimate{}).Count(g.Short) {
		t.Errorf("costs %d/%d do not match the texts", g.Cost, g.ShortCost)
	}
	if g.Cost > 48+4 || g.ShortCost > 12+4 {
		t.Errorf("caps exceeded: %d %d", g.Cost, g.ShortCost)
	}
	// Gists of gists split pieces back and stay within the cap.
	parent := e.Summarize(2, []*tree.Node{{Text: g.Text, Short: g.Short}, {Text: "user: another span about Paris.", Short: "Paris"}})
	if parent.Cost > 48+4 || parent.Text == "" {
		t.Errorf("level-2 gist %q cost %d", parent.Text, parent.Cost)
	}
}

// A headline never glues the words of two messages together (it used to
// read "apples.Tim" for "...apples." and "Tim said..."), and it names what
// the span is about, not the boilerplate that opens its sentences.
func TestHeadlineSeparatesMessagesAndSkipsBoilerplate(t *testing.T) {
	e := Extractive{Counter: tokens.Estimate{}, MaxTokens: 48, ShortTokens: 12}
	children := []*tree.Node{
		{Text: "We bought apples.", Msg: 1, Role: "user"},
		{Text: "Tim said the orchard in Kent sells Bramley apples cheaply.", Msg: 2, Role: "user"},
		{Text: "Noted! Let me know if you want to talk about it.", Msg: 3, Role: "assistant"},
		{Text: "Noted. Let me know anytime.", Msg: 4, Role: "assistant"},
	}
	g := e.Summarize(1, children)
	for _, glued := range []string{"apples.Tim", "apples.tim", "it.Noted"} {
		if strings.Contains(g.Short, glued) || strings.Contains(g.Text, glued) {
			t.Errorf("words glued across messages: %q / %q", g.Short, g.Text)
		}
	}
	for _, w := range strings.Split(g.Short, ShortSeparator) {
		if w == "Noted" || w == "Let" {
			t.Errorf("headline %q names sentence-opening boilerplate", g.Short)
		}
	}
	if !strings.Contains(g.Short, "Kent") {
		t.Errorf("headline %q lacks the span's names", g.Short)
	}
	// With the history's rarity, recurring words give way to rare ones.
	common := map[string]bool{"noted": true, "let": true, "know": true, "talk": true, "anytime": true, "apples": true}
	e.Rarity = func(w string) float64 {
		if common[w] {
			return 0.1
		}
		return 3
	}
	e.IsName = func(w string) bool { return w == "tim" || w == "kent" || w == "bramley" }
	g = e.Summarize(1, children)
	if strings.Contains(g.Short, "anytime") || !strings.Contains(g.Short, "Tim") || strings.Contains(g.Short, "let") {
		t.Errorf("headline with rarity %q", g.Short)
	}
}

func TestOpaque(t *testing.T) {
	cases := []struct {
		w    string
		want bool
	}{
		{"call_8fJ2kQz9Xw1LmNp", true},
		{"call_Jd3cDZ1s2kHq9kXjF3iGdrB9", true},
		{"chatcmpl-9xYzA1b2C3d4", true},
		{"toolu_01A09q90qw90lq917835lq9", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{"3f2a9c1e-77b0-4c1e-9a0b-2f6d1c3e4a5b", true},
		{"d41d8cd98f00b204e9800998ecf8427e", true},
		{"1Z999AA10123456784", true},
		{"ZX-4471-QK", false},
		{"PGR-4471-QK", false},
		{"4471-QK-93", false},
		{"BA0287", false},
		{"Float64Slice", false},
		{"x509Certificate", false},
		{"sha256sum", false},
		{"ListenAndServe", false},
		{"2024-11-03", false},
		{"call_0", false},
		{"Biscuit", false},
		{"deadbeef-cafe", false},
	}
	for _, c := range cases {
		if got := opaque(c.w); got != c.want {
			t.Errorf("opaque(%q) = %v, want %v", c.w, got, c.want)
		}
	}
}

// TestHeadlinesNameWhatTheSpanIsAbout: the ids of tool calls and other
// machine-made identifiers are no key terms of a headline, at any level,
// unless the user wrote them; what the calls were about stays.
func TestHeadlinesNameWhatTheSpanIsAbout(t *testing.T) {
	type blk struct{ role, text string }
	cases := []struct {
		name      string
		blocks    []blk
		want, not []string
	}{
		{"tool call and result", []blk{
			{"user", "What is the weather in Lisbon tomorrow?"},
			{"assistant", `[tool call call_8fJ2kQz9Xw1LmNp] get_weather({"city":"Lisbon"})`},
			{"tool", `[tool result call_8fJ2kQz9Xw1LmNp] {"temp":21,"conditions":"sunny"}`},
			{"assistant", "Sunny and 21 degrees in Lisbon."},
		}, []string{"Lisbon"}, []string{"call_8fJ2kQz9Xw1LmNp", "call", "result"}},
		{"short ids are framing too", []blk{
			{"assistant", `[tool call call_0] lookup_order({"order":"shoes"})`},
			{"tool", `[tool result call_0] {"status":"shipped"}`},
		}, []string{"lookup_order"}, []string{"call_0"}},
		{"ids inside a tool's output", []blk{
			{"user", "Find my reservation at the Alfama restaurant."},
			{"tool", `{"reservation_id":"3f2a9c1e-77b0-4c1e-9a0b-2f6d1c3e4a5b","request":"chatcmpl-9xYzA1b2C3d4","venue":"Alfama"}`},
		}, []string{"Alfama"}, []string{"3f2a9c1e-77b0-4c1e-9a0b-2f6d1c3e4a5b", "chatcmpl-9xYzA1b2C3d4"}},
		{"an id the user wrote is content", []blk{
			{"user", "My parcel 1Z999AA10123456784 has not arrived."},
			{"assistant", "I will track parcel 1Z999AA10123456784 for you."},
		}, []string{"1Z999AA10123456784"}, nil},
		{"a person's code stays whoever says it", []blk{
			{"assistant", "Your locker code is ZX-4471-QK, noted."},
		}, []string{"ZX-4471-QK"}, nil},
	}
	e := Extractive{Counter: tokens.Estimate{}, MaxTokens: 64, ShortTokens: 12}
	for _, c := range cases {
		var bs []*tree.Node
		for i, b := range c.blocks {
			bs = append(bs, &tree.Node{Text: b.text, Msg: int64(i), Role: b.role})
		}
		g := e.Summarize(1, bs)
		// One level up, over this gist and another span's.
		up := e.Summarize(2, []*tree.Node{{Text: g.Text, Short: g.Short}, {Text: "user: a walk along the river.", Short: "river"}})
		for _, h := range []string{g.Short, up.Short} {
			terms := strings.Split(h, ShortSeparator)
			for _, w := range c.want {
				if !slices.Contains(terms, w) {
					t.Errorf("%s: headline %q lacks %q", c.name, h, w)
				}
			}
			for _, w := range c.not {
				if slices.Contains(terms, w) {
					t.Errorf("%s: headline %q names %q", c.name, h, w)
				}
			}
		}
	}
}
