package focus

import (
	"fmt"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/megacontext/megacontext/memory/tree"
)

// buildTree makes a tree of n blocks with the given block costs; gists cost
// gistCost and headlines shortCost.
func buildTree(k, f int, costs []int, gistCost, shortCost int) *tree.Tree {
	t := tree.New(k, f, func(level int, children []*tree.Node) tree.Gist {
		return tree.Gist{Text: fmt.Sprintf("g%d", level), Cost: gistCost, Short: "s", ShortCost: shortCost}
	})
	for i, c := range costs {
		t.Append(&tree.Node{Text: fmt.Sprint(i), Tokens: c, Cost: c, Msg: int64(i / 3), Role: "user"})
	}
	return t
}

func checkInvariants(t *rapid.T, in Input, r Result) {
	n := in.Tree.Len()
	// Budget (outline mode: see checkOutline).
	sum := 0
	for _, e := range r.Entries {
		sum += e.Cost
	}
	if sum != r.Cost && in.OutlineBudget <= 0 {
		t.Fatalf("cost %d != sum of entries %d", r.Cost, sum)
	}
	if r.Cost > in.Budget && r.Cost > 0 {
		t.Fatalf("cost %d over budget %d", r.Cost, in.Budget)
	}
	// Coverage and contiguity of [Cut, n).
	pos := r.Cut
	for _, e := range r.Entries {
		if e.First != pos {
			t.Fatalf("gap/overlap at %d: entry starts at %d (cut %d)", pos, e.First, r.Cut)
		}
		if e.Last < e.First {
			t.Fatalf("empty entry %+v", e)
		}
		pos = e.Last + 1
		if e.Tail {
			if e.Cost != 0 || e.Node != nil {
				t.Fatalf("tail entry with node or cost: %+v", e)
			}
			inTail := false
			for _, tr := range in.Tail {
				if e.First >= tr.First && e.Last <= tr.Last {
					inTail = true
				}
			}
			if !inTail {
				t.Fatalf("tail entry %d-%d not inside a tail range", e.First, e.Last)
			}
			continue
		}
		// Alignment: an entry covers exactly one node.
		if e.Node.First != e.First || e.Node.Last != e.Last {
			t.Fatalf("entry %d-%d misaligned with node %d-%d", e.First, e.Last, e.Node.First, e.Node.Last)
		}
		if in.Tree.Node(e.Node.Level, e.Node.Index) != e.Node {
			t.Fatalf("entry node not in tree")
		}
		if e.Detail == Elided {
			// Only outline mode elides: focus entries, and the outline's
			// oldest entries when even its headlines do not fit.
			if (e.Refines == nil && in.OutlineBudget <= 0) || e.Cost != 0 {
				t.Fatalf("elided entry %d-%d outside outline mode or with a cost", e.First, e.Last)
			}
		} else if (e.Node.Level == 0) != (e.Detail == Verbatim) {
			t.Fatalf("detail %v at level %d", e.Detail, e.Node.Level)
		}
		checkReason(t, in, e)
		// Memory entries never cover tail blocks.
		for _, tr := range in.Tail {
			if e.First <= tr.Last && tr.First <= e.Last {
				t.Fatalf("memory entry %d-%d overlaps tail %d-%d", e.First, e.Last, tr.First, tr.Last)
			}
		}
	}
	if len(r.Entries) > 0 && pos != n {
		t.Fatalf("entries end at %d, timeline has %d blocks", pos, n)
	}
	if len(r.Entries) == 0 && r.Cut != n {
		t.Fatalf("no entries but cut %d != %d", r.Cut, n)
	}
}

// checkReason asserts that an entry's reason is one its input can give.
func checkReason(t *rapid.T, in Input, e Entry) {
	relevant := false
	for _, s := range in.Scores {
		relevant = relevant || s > 0
	}
	switch e.Why {
	case Relevant:
		if e.Round < 1 || e.Round > in.Rounds || !relevant {
			t.Fatalf("entry %d-%d expanded in round %d of %d with scores %v", e.First, e.Last, e.Round, in.Rounds, in.Scores)
		}
	case Hysteresis:
		if in.Sticky == nil {
			t.Fatalf("entry %d-%d kept by hysteresis without a previous window", e.First, e.Last)
		}
	case Weak:
		if e.Score <= 0 || in.OutlineBudget <= 0 {
			t.Fatalf("weak match %d-%d with score %v", e.First, e.Last, e.Score)
		}
	}
	if e.Why != Relevant && e.Round != 0 || e.Score < 0 || (e.Why == Cover || e.Why == Recent) && e.Score != 0 {
		t.Fatalf("entry %d-%d: reason %v round %d score %v", e.First, e.Last, e.Why, e.Round, e.Score)
	}
}

func genInput(t *rapid.T) Input {
	k := 32
	f := rapid.IntRange(2, 8).Draw(t, "f")
	nb := rapid.IntRange(0, 400).Draw(t, "blocks")
	costs := make([]int, nb)
	for i := range costs {
		costs[i] = rapid.IntRange(1, k).Draw(t, "cost")
	}
	tr := buildTree(k, f, costs, rapid.IntRange(4, 60).Draw(t, "gist"), rapid.IntRange(1, 10).Draw(t, "short"))
	var tail []Range
	if nb > 0 && rapid.Bool().Draw(t, "hasTail") {
		first := rapid.IntRange(0, nb-1).Draw(t, "tailFirst")
		last := rapid.IntRange(first, nb-1).Draw(t, "tailLast")
		tail = append(tail, Range{first, last})
		if last+2 < nb && rapid.Bool().Draw(t, "second") {
			f2 := rapid.IntRange(last+2, nb-1).Draw(t, "t2f")
			tail = append(tail, Range{f2, rapid.IntRange(f2, nb-1).Draw(t, "t2l")})
		}
	}
	scores := map[int]float64{}
	if nb > 0 {
		for i := rapid.IntRange(0, 10).Draw(t, "nscores"); i > 0; i-- {
			scores[rapid.IntRange(0, nb-1).Draw(t, "b")] = rapid.Float64Range(0, 10).Draw(t, "s")
		}
	}
	oh := rapid.IntRange(0, 8).Draw(t, "overhead")
	return Input{
		Tree:     tr,
		Tail:     tail,
		Budget:   rapid.IntRange(0, 3000).Draw(t, "budget"),
		Scores:   scores,
		Overhead: func(*tree.Node, Detail, *tree.Node) int { return oh },
		Rounds:   rapid.IntRange(1, 3).Draw(t, "rounds"),
		Refocus: func(_ int, revealed []*tree.Node) map[int]float64 {
			s := map[int]float64{}
			for _, b := range revealed {
				if b.Index+1 < nb {
					s[b.Index+1] = 1
				}
			}
			return s
		},
	}
}

func TestAllocateInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := genInput(t)
		r := Allocate(in)
		checkInvariants(t, in, r)
		// Determinism.
		if r2 := Allocate(in); !reflect.DeepEqual(r, r2) {
			t.Fatalf("not deterministic")
		}
	})
}

func TestRelevantBlockBecomesVerbatim(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 8, costs, 40, 6)
	in := Input{Tree: tr, Budget: 900, Scores: map[int]float64{137: 5}, Tail: []Range{{500, 511}}}
	r := Allocate(in)
	found := false
	for _, e := range r.Entries {
		if !e.Tail && e.Node.Level == 0 && e.Node.Index == 137 {
			found = true
		}
	}
	if !found {
		t.Fatalf("block 137 not verbatim; entries: %d cost %d", len(r.Entries), r.Cost)
	}
	if r.Cut != 0 {
		t.Fatalf("cut %d, want whole timeline covered", r.Cut)
	}
	if r.Cost > in.Budget {
		t.Fatalf("over budget")
	}
}

func TestTinyBudgetDropsOldest(t *testing.T) {
	costs := make([]int, 100)
	for i := range costs {
		costs[i] = 20
	}
	tr := buildTree(32, 4, costs, 30, 5)
	r := Allocate(Input{Tree: tr, Budget: 12})
	if r.Cut == 0 || r.Cost > 12 {
		t.Fatalf("cut %d cost %d", r.Cut, r.Cost)
	}
}

func BenchmarkAllocate(b *testing.B) {
	for _, blocks := range []int{10_000 / 32, 100_000 / 32, 1_000_000 / 32} {
		costs := make([]int, blocks)
		for i := range costs {
			costs[i] = 28
		}
		tr := buildTree(32, 8, costs, 40, 6)
		scores := map[int]float64{}
		for i := 0; i < 40; i++ {
			scores[(i*7919)%blocks] = float64(i%7 + 1)
		}
		b.Run(fmt.Sprintf("tokens=%d", blocks*32), func(b *testing.B) {
			for b.Loop() {
				Allocate(Input{Tree: tr, Budget: 3000, Scores: scores, Tail: []Range{{blocks - 20, blocks - 1}}})
			}
		})
	}
}

// checkOutline checks an outline-mode result: the outline tiles the
// retained timeline and fits its budget; the effective entries tile it too,
// each outline entry either kept or tiled by focus entries that refine it;
// the cost counts the whole outline, the focus entries and one header per
// refined outline entry, within the budget.
func checkOutline(t *rapid.T, in Input, r Result, details func(*tree.Node) int) {
	n := in.Tree.Len()
	if r.Outline == nil && n > 0 && r.Cut < n {
		t.Fatalf("outline mode without an outline")
	}
	pos, ocost := r.Cut, 0
	outline := map[*tree.Node]bool{}
	for _, e := range r.Outline {
		if e.First != pos {
			t.Fatalf("outline gap/overlap at %d: entry starts at %d", pos, e.First)
		}
		pos = e.Last + 1
		if e.Refines != nil || (e.Detail == Elided && e.Cost != 0) {
			t.Fatalf("outline entry %+v refines, or is elided with a cost", e)
		}
		if !e.Tail {
			outline[e.Node] = true
			ocost += e.Cost
		}
	}
	if len(r.Outline) > 0 && pos != n {
		t.Fatalf("outline ends at %d, timeline has %d blocks", pos, n)
	}
	if ocost != r.OutlineCost {
		t.Fatalf("outline cost %d != sum %d", r.OutlineCost, ocost)
	}
	if ocost > r.OutlineBudget && ocost > 0 || r.OutlineBudget > max(in.Budget, 0) {
		t.Fatalf("outline cost %d over its budget %d (window budget %d)", ocost, r.OutlineBudget, in.Budget)
	}
	sum := ocost
	refined := map[*tree.Node]bool{}
	for _, e := range r.Entries {
		if e.Tail {
			continue
		}
		if e.Refines == nil {
			if !outline[e.Node] {
				t.Fatalf("effective entry %d-%d is neither an outline entry nor refines one", e.First, e.Last)
			}
			continue
		}
		if !outline[e.Refines] {
			t.Fatalf("entry %d-%d refines a node that is not an outline entry", e.First, e.Last)
		}
		if e.First < e.Refines.First || e.Last > e.Refines.Last || e.Node == e.Refines {
			t.Fatalf("entry %d-%d outside the entry %d-%d it refines", e.First, e.Last, e.Refines.First, e.Refines.Last)
		}
		if !refined[e.Refines] {
			refined[e.Refines] = true
			sum += details(e.Refines)
		}
		sum += e.Cost
		if e.Detail == Elided && e.Cost != 0 {
			t.Fatalf("elided entry costs %d", e.Cost)
		}
	}
	for _, e := range r.Entries {
		if !e.Tail && e.Refines == nil && refined[e.Node] {
			t.Fatalf("outline entry %d-%d both kept and refined", e.First, e.Last)
		}
	}
	if sum != r.Cost {
		t.Fatalf("cost %d != outline + focus + headers %d", r.Cost, sum)
	}
	if in.Follow != nil {
		// Each block the focus zone shows costs what Follow says after
		// the one it shows before it, however they were added.
		var prev *tree.Node
		for _, e := range r.Entries {
			if e.Tail || e.Refines == nil || e.Detail != Verbatim {
				continue
			}
			if want := e.Node.Cost + in.Follow(prev, e.Node); e.Cost != want {
				after := -1
				if prev != nil {
					after = prev.Index
				}
				t.Fatalf("block %d costs %d, %d after block %d", e.Node.Index, e.Cost, want, after)
			}
			prev = e.Node
		}
	}
	if r.Cost > in.Budget && r.Cost > 0 {
		t.Fatalf("cost %d over budget %d", r.Cost, in.Budget)
	}
}

// checkSpent checks that outline mode spends its budget: every matching
// block is shown, or showing its unit would cost more than what is left;
// and the focus zone holds at least what retrieval would fit in
// DetailFloor tokens: every match ranked before the first one left out
// is shown, or the outline has yielded all it could.
func checkSpent(t *rapid.T, in Input, r Result) {
	spare := in.Budget - r.Cost
	shown := map[int]bool{}
	for _, e := range r.Entries {
		if !e.Tail && e.Node.Level == 0 && e.Detail == Verbatim {
			shown[e.Node.Index] = true
		}
	}
	elidedOutline := map[int]bool{}
	for _, e := range r.Outline {
		if !e.Tail && e.Node.Level == 0 && e.Detail == Elided {
			elidedOutline[e.Node.Index] = true
		}
	}
	for b, s := range in.Scores {
		if s <= 0 || shown[b] || elidedOutline[b] || inTailRanges(in.Tail, b) {
			continue
		}
		u := Range{b, b}
		if in.Unit != nil {
			u = in.Unit(b)
		}
		// What showing it costs at most: each block with its overhead,
		// and a header.
		need := in.Details(in.Tree.Block(b))
		for x := u.First; x <= u.Last; x++ {
			if !shown[x] && !inTailRanges(in.Tail, x) {
				n := in.Tree.Block(x)
				if in.Follow != nil {
					need += n.Cost + in.Follow(nil, n)
				} else {
					need += n.Cost + in.Overhead(n, Verbatim, nil)
				}
			}
		}
		if need <= spare {
			t.Fatalf("block %d (score %.2f) not shown: its unit costs at least %d, %d tokens left unused", b, s, need, spare)
		}
	}
}

func inTailRanges(rs []Range, b int) bool {
	for _, r := range rs {
		if b >= r.First && b <= r.Last {
			return true
		}
	}
	return false
}

func genOutlineInput(t *rapid.T) (Input, func(*tree.Node) int) {
	in := genInput(t)
	in.OutlineBudget = rapid.IntRange(1, max(1, in.Budget)).Draw(t, "outlineBudget")
	in.OutlineStep = rapid.IntRange(0, 5).Draw(t, "step")
	in.DetailFloor = rapid.IntRange(0, max(0, in.Budget)).Draw(t, "floor")
	in.OutlineQuantum = rapid.IntRange(0, 64).Draw(t, "quantum")
	if rapid.Bool().Draw(t, "units") {
		// Units of up to three consecutive blocks of one message.
		in.Unit = func(b int) Range {
			m := b / 3
			return Range{max(b-1, 3*m), min(b+1, 3*m+2, in.Tree.Len()-1)}
		}
	}
	hd := rapid.IntRange(0, 12).Draw(t, "details")
	in.Details = func(*tree.Node) int { return hd }
	details := in.Details
	if in.Headless = rapid.Bool().Draw(t, "headless"); in.Headless {
		// No header is charged, whatever Details says.
		details = func(*tree.Node) int { return 0 }
	}
	if rapid.Bool().Draw(t, "follow") {
		in.Follow = testFollow
		details = func(*tree.Node) int { return 0 }
	}
	sticky := map[int]bool{}
	for i := rapid.IntRange(0, 6).Draw(t, "nsticky"); i > 0 && in.Tree.Len() > 0; i-- {
		sticky[rapid.IntRange(0, in.Tree.Len()-1).Draw(t, "sticky")] = true
	}
	in.Sticky = func(n *tree.Node) bool { return sticky[n.First] }
	return in, details
}

func TestAllocateOutlineInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in, details := genOutlineInput(t)
		r := Allocate(in)
		checkInvariants(t, in, r)
		checkOutline(t, in, r, details)
		if r2 := Allocate(in); !reflect.DeepEqual(r, r2) {
			t.Fatalf("not deterministic")
		}
		checkSpent(t, in, r)
		// The outline depends on the query and the previous window only
		// through the budget it was fitted to.
		in.Scores, in.Sticky, in.Refocus, in.DetailFloor = nil, nil, nil, 0
		in.Budget, in.OutlineBudget = r.OutlineBudget, max(1, r.OutlineBudget)
		if r3 := Allocate(in); !reflect.DeepEqual(r.Outline, r3.Outline) || r.OutlineCost != r3.OutlineCost || r.Cut != r3.Cut {
			t.Fatalf("outline depends on the query beyond its budget")
		}
	})
}

// TestOutlineStableAsHistoryGrows: as blocks are appended, the outline's
// first half changes only when its collapse point moves a step (or the
// tree forms a new top node): quantized steps change it less often.
func TestOutlineStableAsHistoryGrows(t *testing.T) {
	costs := make([]int, 600)
	for i := range costs {
		costs[i] = 30
	}
	changes := func(step int) int {
		var prev []Entry
		n := 0
		for blocks := 500; blocks <= 600; blocks++ {
			tr := buildTree(32, 8, costs[:blocks], 40, 6)
			r := Allocate(Input{Tree: tr, Budget: 1200, OutlineBudget: 500, OutlineStep: step, OutlineQuantum: 1200 / 16, Scores: map[int]float64{blocks / 3: 5}})
			if prev != nil {
				same := 0
				for same < len(prev) && same < len(r.Outline) && prev[same].First == r.Outline[same].First &&
					prev[same].Last == r.Outline[same].Last && prev[same].Detail == r.Outline[same].Detail {
					same++
				}
				if same < len(prev)/2 {
					n++
				}
			}
			prev = r.Outline
		}
		return n
	}
	one, four := changes(1), changes(4)
	t.Logf("outline start changed %d times with step 1, %d with step 4, over 100 appended blocks", one, four)
	if four >= one || four > 20 {
		t.Fatalf("quantized steps: %d changes, unquantized %d", four, one)
	}
}

func TestOutlineRefinementShowsRelevantBlock(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 8, costs, 40, 6)
	in := Input{Tree: tr, Budget: 900, OutlineBudget: 600, OutlineStep: 4, Scores: map[int]float64{137: 5}, Tail: []Range{{500, 511}},
		Details: func(*tree.Node) int { return 10 }}
	r := Allocate(in)
	found := false
	for _, e := range r.Entries {
		if !e.Tail && e.Node.Level == 0 && e.Node.Index == 137 {
			found = e.Refines != nil && e.Detail == Verbatim
		}
	}
	if !found {
		t.Fatalf("block 137 not detailed in the focus zone")
	}
	if r.Cost > in.Budget || r.OutlineCost > r.OutlineBudget {
		t.Fatalf("over budget: %d (outline %d of %d)", r.Cost, r.OutlineCost, r.OutlineBudget)
	}
}

// In the focus zone a shown block costs its whole text: strong matches are
// shown first, and the weak matches around them only with what budget is
// left, so that a tight budget still shows the strong one and an ample one
// shows them all.
func TestOutlineShowsStrongMatchWhenWeakOnesDoNotFit(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 8, costs, 40, 6)
	scores := map[int]float64{137: 5}
	for b := 136; b <= 143; b++ {
		if b != 137 {
			scores[b] = 1 // under MinRelevance of the best
		}
	}
	shown := func(budget int) (strong bool, weak int, r Result) {
		in := Input{Tree: tr, Budget: budget, OutlineBudget: 600, OutlineStep: 4, Scores: scores, Tail: []Range{{500, 511}},
			MinRelevance: 0.35, Details: func(*tree.Node) int { return 10 }}
		r = Allocate(in)
		if r.Cost > in.Budget {
			t.Fatalf("budget %d: cost %d over it", budget, r.Cost)
		}
		for _, e := range r.Entries {
			if e.Tail || e.Node.Level != 0 || e.Refines == nil || e.Detail != Verbatim {
				continue
			}
			if e.Node.Index == 137 {
				strong = true
			} else if scores[e.Node.Index] > 0 {
				weak++
			}
		}
		return strong, weak, r
	}
	_, _, base := shown(600)
	tight := base.OutlineCost + 120 // room for the strong block, not for all eight
	if strong, weak, _ := shown(tight); !strong || weak == 7 {
		t.Fatalf("budget %d (outline %d): strong match shown %v, weak matches shown %d", tight, base.OutlineCost, strong, weak)
	}
	if strong, weak, _ := shown(base.OutlineCost + 2000); !strong || weak != 7 {
		t.Fatalf("ample budget: strong match shown %v, weak matches shown %d of 7", strong, weak)
	}
}

// The outline elides its oldest entries when even its headlines do not
// fit its budget, and the focus zone still details a match inside them:
// details reach every span, including those the outline leaves out.
func TestFocusReachesElidedOutline(t *testing.T) {
	costs := make([]int, 1024)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 4, costs, 40, 6)
	in := Input{Tree: tr, Budget: 300, OutlineBudget: 20, OutlineStep: 4, Scores: map[int]float64{3: 5}, Tail: []Range{{1020, 1023}},
		Details: func(*tree.Node) int { return 10 }}
	r := Allocate(in)
	elided, shown := false, false
	for _, e := range r.Outline {
		if !e.Tail && e.First <= 3 && 3 <= e.Last {
			elided = e.Detail == Elided
		}
	}
	for _, e := range r.Entries {
		if !e.Tail && e.Node.Level == 0 && e.Node.Index == 3 {
			shown = e.Detail == Verbatim && e.Refines != nil
		}
	}
	if !elided || !shown {
		t.Fatalf("block 3: outline elides it %v, focus zone shows it %v", elided, shown)
	}
	if r.Cost > in.Budget || r.Cut != 0 || r.Omitted == 0 {
		t.Fatalf("cost %d (budget %d), cut %d, omitted %d", r.Cost, in.Budget, r.Cut, r.Omitted)
	}
}

// With a detail floor, the outline yields: matches that the outline's
// share would crowd out are shown, best first, up to the floor, and the
// outline takes what they leave.
func TestOutlineYieldsToDetailFloor(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 8, costs, 40, 6)
	scores := map[int]float64{}
	for i := 0; i < 10; i++ {
		scores[40*i+5] = float64(20 - i)
	}
	shownMatches := func(floor int) (int, Result) {
		in := Input{Tree: tr, Budget: 800, OutlineBudget: 780, OutlineStep: 4, OutlineQuantum: 50, Scores: scores, Tail: []Range{{500, 511}},
			Details: func(*tree.Node) int { return 10 }, DetailFloor: floor}
		r := Allocate(in)
		n := 0
		for _, e := range r.Entries {
			if !e.Tail && e.Node.Level == 0 && e.Refines != nil && e.Detail == Verbatim && scores[e.Node.Index] > 0 {
				n++
			}
		}
		if r.Cost > in.Budget {
			t.Fatalf("floor %d: cost %d over budget", floor, r.Cost)
		}
		return n, r
	}
	without, _ := shownMatches(0)
	with, r := shownMatches(400)
	// Each match costs 30 tokens and a 10-token header: the floor holds 10.
	if with != 10 || with <= without {
		t.Fatalf("matches shown: %d with a floor of 400 tokens, %d without", with, without)
	}
	if r.OutlineBudget > 800-400 || r.OutlineBudget%50 != 0 {
		t.Fatalf("outline budget %d: did not yield in steps of 50", r.OutlineBudget)
	}
}

// A headless focus zone charges no header per refined outline entry, so
// that the same budget shows more matches, and the result says so for the
// renderer.
func TestHeadlessDetailsShowMoreMatches(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 30
	}
	tr := buildTree(32, 8, costs, 40, 6)
	scores := map[int]float64{}
	for i := 0; i < 12; i++ {
		scores[40*i+5] = float64(20 - i)
	}
	shownMatches := func(headless bool) (int, Result) {
		in := Input{Tree: tr, Budget: 400, OutlineBudget: 50, OutlineStep: 4, OutlineQuantum: 25, Scores: scores, Tail: []Range{{500, 511}},
			Details: func(*tree.Node) int { return 30 }, DetailFloor: 350, Headless: headless}
		r := Allocate(in)
		n := 0
		for _, e := range r.Entries {
			if !e.Tail && e.Node.Level == 0 && e.Refines != nil && e.Detail == Verbatim && scores[e.Node.Index] > 0 {
				n++
			}
		}
		if r.Cost > in.Budget || r.Headless != headless {
			t.Fatalf("headless %v: cost %d over budget %d, or result headless %v", headless, r.Cost, in.Budget, r.Headless)
		}
		return n, r
	}
	with, _ := shownMatches(false)
	without, r := shownMatches(true)
	// Each match costs 30 tokens, and 30 more for its header when it has one.
	if without <= with || without < 10 {
		t.Fatalf("matches shown: %d headless, %d under headers", without, with)
	}
	focus := 0
	for _, e := range r.Entries {
		if !e.Tail && e.Refines != nil {
			focus += e.Cost
		}
	}
	if focus+r.OutlineCost != r.Cost {
		t.Fatalf("headless cost %d is not the outline's %d and the details' %d alone", r.Cost, r.OutlineCost, focus)
	}
}

// testFollow prices a focus block after the one shown before it: nothing
// when it goes on with its message, 1 token in the same group of four
// messages (a shared time), 5 otherwise. Showing a block never makes the
// next one dearer.
func testFollow(prev, n *tree.Node) int {
	switch {
	case prev != nil && prev.Msg == n.Msg && prev.Index+1 == n.Index:
		return 0
	case prev != nil && prev.Msg/4 == n.Msg/4:
		return 1
	}
	return 5
}

// A focus zone priced by Follow charges what consecutive details share
// once: matches that share it fit where each under its own header would
// not, the zone's cost is its blocks' Follow prices, and the result says
// so for the renderer.
func TestFollowedDetailsShowMoreMatches(t *testing.T) {
	costs := make([]int, 512)
	for i := range costs {
		costs[i] = 10
	}
	tr := buildTree(32, 8, costs, 40, 6)
	// Matches in runs of three, each in a message of its own group of
	// four messages (blocks 12 apart): a shared time, not a message.
	scores := map[int]float64{}
	for g := 0; g < 8; g++ {
		for j := 0; j < 3; j++ {
			scores[12*4*g+3*j] = float64(30 - g - j)
		}
	}
	shownMatches := func(follow bool) (int, Result) {
		in := Input{Tree: tr, Budget: 400, OutlineBudget: 50, OutlineStep: 4, OutlineQuantum: 25, Scores: scores, Tail: []Range{{500, 511}},
			Overhead: func(*tree.Node, Detail, *tree.Node) int { return 20 }, DetailFloor: 350, Headless: true}
		if follow {
			// A header of 20 tokens, said once for its group.
			in.Follow = func(prev, n *tree.Node) int {
				if prev != nil && prev.Msg/4 == n.Msg/4 {
					return 1
				}
				return 20
			}
		}
		r := Allocate(in)
		n := 0
		for _, e := range r.Entries {
			if !e.Tail && e.Node.Level == 0 && e.Refines != nil && e.Detail == Verbatim && scores[e.Node.Index] > 0 {
				n++
			}
		}
		if r.Cost > in.Budget || r.Followed != follow {
			t.Fatalf("follow %v: cost %d over budget %d, or result followed %v", follow, r.Cost, in.Budget, r.Followed)
		}
		return n, r
	}
	headed, _ := shownMatches(false)
	followed, r := shownMatches(true)
	// A match costs 30 tokens under its own header, 11 after another of
	// its group.
	if followed < headed+4 {
		t.Fatalf("matches shown: %d followed, %d each under its header", followed, headed)
	}
	focus := 0
	for _, e := range r.Entries {
		if !e.Tail && e.Refines != nil {
			focus += e.Cost
		}
	}
	if focus+r.OutlineCost != r.Cost {
		t.Fatalf("followed cost %d is not the outline's %d and the details' %d alone", r.Cost, r.OutlineCost, focus)
	}
}
