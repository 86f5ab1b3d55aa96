package memory

import (
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/focus"
	"github.com/megacontext/megacontext/memory/tree"
)

// A message whose blocks fall in the spans of two outline entries still
// reads as one in the detail sections: the second block goes on the first
// one's line, and the second span's header follows it.
func TestRenderZonesJoinsMessageSplitAcrossSpans(t *testing.T) {
	const day = int64(1_700_000_000_000)
	block := func(i int, msg int64, part int, text string) *tree.Node {
		return &tree.Node{Index: i, First: i, Last: i, Msg: msg, Part: part, Role: "user", Text: text, Time: day + int64(i)*60_000, TimeEnd: day + int64(i)*60_000}
	}
	b0 := block(0, 1, 0, "Unrelated opener.")
	b1 := block(1, 2, 0, "The budget went up to")
	b2 := block(2, 2, 1, " $23,500. Quick question.")
	b3 := block(3, 3, 0, "Something else entirely.")
	g1 := &tree.Node{Level: 1, Index: 0, First: 0, Last: 1, Text: "opener and budget", Time: b0.Time, TimeEnd: b1.Time}
	g2 := &tree.Node{Level: 1, Index: 1, First: 2, Last: 3, Text: "question and else", Time: b2.Time, TimeEnd: b3.Time}
	res := focus.Result{
		Outline: []focus.Entry{
			{Node: g1, Detail: focus.Full, First: 0, Last: 1},
			{Node: g2, Detail: focus.Full, First: 2, Last: 3},
		},
		Entries: []focus.Entry{
			{Node: b0, Detail: focus.Elided, First: 0, Last: 0, Refines: g1},
			{Node: b1, Detail: focus.Verbatim, First: 1, Last: 1, Refines: g1},
			{Node: b2, Detail: focus.Verbatim, First: 2, Last: 2, Refines: g2},
			{Node: b3, Detail: focus.Verbatim, First: 3, Last: 3, Refines: g2},
		},
	}
	e := &Engine{opts: Options{Render: RenderOutline}}
	text, _, _ := e.renderZones(nil, res, nil, OutlinePreamble)
	if !strings.Contains(text, "The budget went up to $23,500.") {
		t.Fatalf("the split message does not read as one:\n%s", text)
	}
	h1, h2 := strings.Index(text, detailsHeader(g1)), strings.Index(text, detailsHeader(g2))
	cont, other := strings.Index(text, "$23,500."), strings.Index(text, "Something else")
	if h1 < 0 || h2 < 0 || !(h1 < cont && cont < h2 && h2 < other) {
		t.Fatalf("headers out of place (g1 %d, continuation %d, g2 %d, next block %d):\n%s", h1, cont, h2, other, text)
	}
}
