package gist

import (
	"reflect"
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
