package lens

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/glove"
)

// Cover ranks blocks by how near their words come to the question's,
// counts weak matches, leaves out what keep rejects and small talk that
// recurs.
func TestCover(t *testing.T) {
	v := tinyVectors(t, []string{"vehicle", "car", "dealer", "bread", "noise"},
		[][]float64{{1, 0, 0, 0}, {0.9, 0.3, 0, 0}, {0.5, 0, 0.8, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}})
	x := NewIndex()
	x.UseVectors(v)
	x.Add("bought a car from the dealer") // 0: near and weak
	x.Add("fresh bread today")            // 1: far
	x.Add("the dealer called back")       // 2: weak only
	x.Add("borrowed a car for the trip")  // 3: rejected by keep
	for range 3 {
		x.Add("the car is making that noise again") // 4-6: recurring small talk
	}
	got := map[int]float64{}
	for _, c := range x.Cover("What vehicle do we own?", 0.3, x.Len(), 10, func(b int) bool { return b != 3 }, func(int) bool { return false }) {
		got[c.Block] = c.Score
	}
	if got[0] <= got[2] || got[2] <= 0 {
		t.Errorf("the block near the question (%.3f) should outrank the weak match (%.3f), which counts", got[0], got[2])
	}
	for _, b := range []int{1, 3, 4, 5, 6} {
		if _, ok := got[b]; ok {
			t.Errorf("block %d scored %.3f: far, rejected or recurring", b, got[b])
		}
	}
	if n := len(x.Cover("What vehicle?", 0.3, 0, 10, func(int) bool { return true }, func(int) bool { return false })); n > 0 {
		t.Error("limit 0 scores blocks")
	}
}

// Kin finds a seed's siblings by the values they name: the nearer a
// candidate's rare word to a seed's, the more it scores, weighted by the
// seed; a seed does not count for itself, and words rare rejects (small
// talk) bring nothing.
func TestKin(t *testing.T) {
	v := tinyVectors(t, []string{"golf", "niro", "tesla", "soup", "weather", "lunch"},
		[][]float64{{1, 0, 0, 0}, {0.9, 0.4, 0, 0}, {0.8, 0.6, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {0, 0.2, 0.9, 0.3}})
	x := NewIndex()
	x.UseVectors(v)
	texts := []string{
		"sold the golf at last",     // 0: the seed
		"we lease a niro now",       // 1: near the seed's value
		"a tesla maybe next year",   // 2: farther
		"made soup for lunch",       // 3: far
		"the weather again",         // 4: near only by a word rare rejects
		"golf clubs in the attic",   // 5: the seed's very word
		"weather weather and lunch", // 6: nothing rare
	}
	for _, s := range texts {
		x.Add(s)
	}
	rejected := map[string]bool{Stem("weather"): true}
	text := func(b int) string { return texts[b] }
	got := x.Kin(map[int]float64{0: 1}, []int{0, 1, 2, 3, 4, 5, 6}, func(t string) bool { return !rejected[t] }, 0.45)
	if _, ok := got[0]; ok {
		t.Errorf("the seed counts for itself: %.3f", got[0])
	}
	if !(got[5] > got[1] && got[1] > got[2] && got[2] > 0) {
		t.Errorf("kin should follow the values' similarity to the seed's: same word %.3f > niro %.3f > tesla %.3f > 0", got[5], got[1], got[2])
	}
	for _, b := range []int{3, 4, 6} {
		if s, ok := got[b]; ok {
			t.Errorf("block %d (%q) scored %.3f", b, text(b), s)
		}
	}
	half := x.Kin(map[int]float64{0: 0.5}, []int{1}, func(string) bool { return true }, 0.45)
	if d := half[1] - got[1]/2; d > 1e-6 || d < -1e-6 {
		t.Errorf("a seed of weight 0.5 gives %.4f, want half of %.4f", half[1], got[1])
	}
	if x.Kin(nil, []int{1}, func(string) bool { return true }, 0.45) != nil {
		t.Error("no seeds, yet kin")
	}
}

// TestCoverMatchesReference: Cover, which works in arrays by block,
// converts each history term's vector once and checks for recurring text
// only the blocks it returns, gives the bits and the order of the plain
// version it replaced (maps by term and block, one cosine at a time, every
// block checked, all of them sorted) on random histories, keep and joined
// filters, floors, limits and numbers of blocks asked.
func TestCoverMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var words []string
	var vecs [][]float64
	for i := range 60 {
		words = append(words, fmt.Sprintf("w%sx", strings.Repeat(string(rune('a'+i%26)), 1+i/26)))
		v := make([]float64, 12)
		for j := range v {
			v[j] = r.NormFloat64()
		}
		vecs = append(vecs, v)
	}
	v := tinyVectors(t, words, vecs)
	// Words outside the vectors too ("zq..."), names, and compounds.
	vocab := append(slices.Clone(words), "zqone", "zqtwo", "Wbbx", "wa", "x")
	nonEmpty := 0
	for trial := range 60 {
		x := NewIndex()
		x.UseVectors(v)
		nb := 5 + r.IntN(120)
		// Small talk that recurs, so that OnlyRecurring rejects some.
		talk := []string{"wax wbx wcx wdx wex", "wfx wgx whx wix. wjx wkx"}
		for range nb {
			if r.IntN(4) == 0 {
				x.Add(talk[r.IntN(len(talk))])
				continue
			}
			var sb strings.Builder
			for k := range 1 + r.IntN(14) {
				if k > 0 {
					sb.WriteByte(' ')
				}
				sb.WriteString(vocab[r.IntN(len(vocab))])
				if r.IntN(6) == 0 {
					sb.WriteByte('.')
				}
			}
			x.Add(sb.String())
		}
		var q strings.Builder
		for k := range 1 + r.IntN(6) {
			if k > 0 {
				q.WriteByte(' ')
			}
			q.WriteString(vocab[r.IntN(len(vocab))])
		}
		rejected := map[int]bool{}
		joinedSet := map[int]bool{}
		for b := range nb {
			rejected[b] = r.IntN(4) == 0
			joinedSet[b] = r.IntN(3) == 0
		}
		keep := func(b int) bool { return !rejected[b] }
		joined := func(b int) bool { return joinedSet[b] }
		floor := []float64{0.3, 0, -0.2, 0.6}[trial%4]
		limit := nb - r.IntN(nb/2+1)
		top := []int{1, 3, 1000}[trial%3]
		got := x.Cover(q.String(), floor, limit, top, keep, joined)
		var want []Covered
		for b, s := range x.coverReference(q.String(), floor, limit, keep, joined) {
			want = append(want, Covered{b, s})
		}
		slices.SortFunc(want, func(a, b Covered) int {
			if c := cmp.Compare(b.Score, a.Score); c != 0 {
				return c
			}
			return cmp.Compare(b.Block, a.Block)
		})
		want = want[:min(len(want), top)]
		if len(got) != len(want) {
			t.Fatalf("trial %d (%q): %d blocks, reference %d", trial, q.String(), len(got), len(want))
		}
		for i, w := range want {
			if g := got[i]; g.Block != w.Block || math.Float64bits(g.Score) != math.Float64bits(w.Score) {
				t.Fatalf("trial %d (%q): #%d is %+v, reference %+v", trial, q.String(), i, g, w)
			}
		}
		nonEmpty += min(1, len(want))
	}
	if nonEmpty < 30 {
		t.Fatalf("only %d of 60 trials found a block: the test compares little", nonEmpty)
	}
}

// coverReference is Cover as it was before its arrays: the reference
// TestCoverMatchesReference holds it to.
func (x *Index) coverReference(question string, floor float64, limit int, keep, joined func(b int) bool) map[int]float64 {
	s := x.sem
	if s == nil || len(s.terms) == 0 {
		return nil
	}
	type probe struct {
		term   string
		vec    []float32
		weight float64
	}
	var qs []probe
	seen := map[string]bool{}
	for i, w := range contentWords(question) {
		if (w.capital && i > 0) || vague[w.term] || seen[w.term] {
			continue
		}
		seen[w.term] = true
		id, ok := s.vec.Lookup(w.surface)
		if !ok {
			continue
		}
		v := make([]float32, s.vec.Dim())
		s.vec.Unit(id, v)
		qs = append(qs, probe{w.term, v, coverWeight(id)})
	}
	// A phrasal verb or a compound is one word in GloVe: "work out" is
	// near "gym" as "workout", not as "work" (and "out" is a stopword).
	fields := strings.Fields(strings.ToLower(question))
	for i := 0; i+1 < len(fields); i++ {
		a, b := strings.TrimFunc(fields[i], notLetter), strings.TrimFunc(fields[i+1], notLetter)
		if a == "" || b == "" || strings.ContainsAny(fields[i], ",.;:!?") {
			continue
		}
		joint := a + b
		if seen[Stem(joint)] {
			continue
		}
		if id, ok := s.vec.Lookup(joint); ok && !gist.IsStopword(joint) {
			seen[Stem(joint)] = true
			v := make([]float32, s.vec.Dim())
			s.vec.Unit(id, v)
			qs = append(qs, probe{Stem(joint), v, coverWeight(id)})
		}
	}
	if len(qs) == 0 || len(qs) > 16 {
		return nil
	}
	// The history's terms near each question word, and their similarity.
	type near struct {
		q   int
		sim float32
	}
	related := map[string][]near{}
	for _, t := range s.terms {
		for j, q := range qs {
			sim := float32(0)
			switch {
			case t.text == q.term:
				sim = 1
			case t.has:
				sim = s.vec.CosineTo(t.id, q.vec)
			}
			if float64(sim) >= floor {
				related[t.text] = append(related[t.text], near{j, sim})
			}
		}
	}
	best := map[int][]float32{}
	for _, t := range slices.Sorted(maps.Keys(related)) {
		for _, p := range x.postings[t] {
			b := int(p.block)
			if b >= limit {
				break
			}
			if !keep(b) {
				continue
			}
			row := best[b]
			if row == nil {
				row = make([]float32, len(qs))
				best[b] = row
			}
			for _, n := range related[t] {
				row[n.q] = max(row[n.q], n.sim)
			}
		}
	}
	// Both halves of a sentence cut by a block boundary count the words of
	// the whole sentence.
	for _, b := range slices.Sorted(maps.Keys(best)) {
		next, ok := best[b+1]
		if !ok || !joined(b) {
			continue
		}
		row := best[b]
		for j := range row {
			m := max(row[j], next[j])
			row[j], next[j] = m, m
		}
	}
	hashes := make(map[uint32]bool, len(related))
	for t := range related {
		hashes[TermHash(t)] = true
	}
	out := make(map[int]float64, len(best))
	for b, row := range best {
		sum := 0.0
		for j, sim := range row {
			if float64(sim) >= floor {
				sum += qs[j].weight * (float64(sim) - floor) / (1 - floor)
			}
		}
		if sum > 0 && !x.OnlyRecurring(b, func(h uint32) bool { return hashes[h] }) {
			out[b] = sum
		}
	}
	return out
}

// kinReference is Kin as it was before the index kept each block's words:
// it reads every seed's and candidate's text.
func kinReference(x *Index, seeds map[int]float64, cands []int, text func(b int) string, rare func(term string) bool, floor float64) map[int]float64 {
	s := x.sem
	ids := func(b int) []glove.ID {
		var out []glove.ID
		for _, w := range contentWords(text(b)) {
			if vague[w.term] || !rare(w.term) {
				continue
			}
			if id, ok := s.vec.Lookup(w.surface); ok && !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	out := map[int]float64{}
	for _, b := range cands {
		sum := 0.0
		for _, sb := range slices.Sorted(maps.Keys(seeds)) {
			sw := ids(sb)
			if sb == b || len(sw) == 0 {
				continue
			}
			best := float32(0)
			for _, id := range ids(b) {
				for _, oid := range sw {
					best = max(best, s.vec.Cosine(id, oid))
				}
			}
			if float64(best) >= floor {
				sum += seeds[sb] * (float64(best) - floor) / (1 - floor)
			}
		}
		if sum > 0 {
			out[b] = sum
		}
	}
	return out
}

// Kin, which reads the words the index kept at ingest, scores as reading
// the blocks' texts does, whatever Add, Truncate and Rewrite did before
// (words in several forms, vague words, words without a vector).
func TestKinMatchesReference(t *testing.T) {
	words := []string{"golf", "niro", "tesla", "soup", "weather", "lunch", "Ghent", "seville", "thing"}
	rng := rand.New(rand.NewPCG(5, 8))
	vecs := make([][]float64, len(words))
	for i := range vecs {
		vecs[i] = []float64{rng.Float64() - 0.2, rng.Float64() - 0.2, rng.Float64() - 0.2, rng.Float64() - 0.2}
	}
	v := tinyVectors(t, words, vecs)
	surface := append(slices.Clone(words), "golfs", "Golf", "souped", "lunches", "zzyzx", "the", "and")
	sentence := func() string {
		s := ""
		for range 1 + rng.IntN(6) {
			s += surface[rng.IntN(len(surface))] + " "
		}
		return s
	}
	for trial := range 200 {
		x := NewIndex()
		x.UseVectors(v)
		var texts []string
		for range 1 + rng.IntN(20) {
			texts = append(texts, sentence())
			x.Add(texts[len(texts)-1])
		}
		if n := 1 + rng.IntN(len(texts)); rng.IntN(2) == 0 {
			x.Truncate(n, func(b int) string { return texts[b] })
			texts = texts[:n]
		}
		if rng.IntN(2) == 0 {
			b := rng.IntN(len(texts))
			now := sentence()
			x.Rewrite(b, texts[b], now)
			texts[b] = now
		}
		seeds := map[int]float64{}
		for range 1 + rng.IntN(3) {
			seeds[rng.IntN(len(texts))] = rng.Float64()
		}
		cands := rng.Perm(len(texts))
		rare := func(term string) bool { return x.DF(term) <= 3 }
		got := x.Kin(seeds, cands, rare, 0.2)
		want := kinReference(x, seeds, cands, func(b int) string { return texts[b] }, rare, 0.2)
		if len(got) != len(want) {
			t.Fatalf("trial %d: Kin %v, reading the texts %v", trial, got, want)
		}
		for b, w := range want {
			if got[b] != w {
				t.Fatalf("trial %d block %d: Kin %v, reading the texts %v", trial, b, got[b], w)
			}
		}
	}
}
