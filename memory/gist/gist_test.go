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
