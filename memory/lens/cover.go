package lens

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/glove"
)

// Cover scores blocks by how near their words come to each content word
// of a question, by GloVe: for each question word, the most similar word
// of the block (1 for the word itself), counted above floor and weighted
// by the question word's rarity. A block that speaks of every thing the
// question names, in words of its own ("picked up a Ford Focus from the
// dealer" for "what vehicle do we own"), outranks one that repeats one of
// its words. Unlike soft term matching (SoftTerms), no neighbour is too
// weak to count: the caller restricts the blocks (keep) to those where a
// weak match means something, such as the user's own statements.
//
// A sentence cut at a block's end goes on in the next block (joined
// reports it): each of the two blocks counts the words of both.
//
// Only blocks in [0, limit) that keep accepts are scored; a block whose
// matching words all lie in recurring text (OnlyRecurring: small talk)
// scores nothing. Cover returns the top best blocks, best first (the newer
// on ties), nil without vectors or question words. keep and joined are
// asked at most once a block.
func (x *Index) Cover(question string, floor float64, limit, top int, keep, joined func(b int) bool) []Covered {
	s := x.sem
	if s == nil || len(s.terms) == 0 {
		return nil
	}
	var qs []coverProbe
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
		qs = append(qs, coverProbe{w.term, v, coverWeight(id)})
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
			qs = append(qs, coverProbe{Stem(joint), v, coverWeight(id)})
		}
	}
	if len(qs) == 0 || len(qs) > 16 {
		return nil
	}
	sc := coverPool.Get().(*coverScratch)
	defer coverPool.Put(sc)
	sc.relate(s, qs, floor)
	// The blocks of the related terms' postings, each with its row of the
	// best similarity to each question word; keep is asked once a block.
	nq := len(qs)
	n := max(0, min(limit, len(x.docLen)))
	sc.reset(n)
	for i, p := range sc.relPos {
		near := sc.relNear[sc.relStart[i]:sc.relStart[i+1]]
		for _, ps := range x.postings[s.terms[p].text] {
			b := int(ps.block)
			if b >= n {
				break // postings are in block order
			}
			r := sc.rowIdx[b]
			if r == 0 {
				if !keep(b) {
					sc.rowIdx[b] = -1
					continue
				}
				r = sc.newRow(b, nq)
			}
			if r < 0 {
				continue
			}
			row := sc.rows[int(r-1)*nq : int(r)*nq]
			for _, nr := range near {
				row[nr.q] = max(row[nr.q], nr.sim)
			}
		}
	}
	// Both halves of a sentence cut by a block boundary count the words of
	// the whole sentence, in block order (so that a sentence over three
	// blocks reaches the last).
	slices.Sort(sc.blocks)
	for _, b := range sc.blocks {
		if int(b)+1 >= n || sc.rowIdx[b+1] <= 0 || !joined(int(b)) {
			continue
		}
		row, next := sc.row(int(b), nq), sc.row(int(b)+1, nq)
		for j := range row {
			m := max(row[j], next[j])
			row[j], next[j] = m, m
		}
	}
	sc.hashes.reset(len(sc.relPos))
	for _, p := range sc.relPos {
		sc.hashes.add(s.terms[p].hash)
	}
	// The best, taken from a heap in order, until top of them hold more
	// than recurring text (checked only for those taken).
	h := sc.heap[:0]
	for _, b := range sc.blocks {
		sum := 0.0
		for j, sim := range sc.row(int(b), nq) {
			if float64(sim) >= floor {
				sum += qs[j].weight * (float64(sim) - floor) / (1 - floor)
			}
		}
		if sum > 0 {
			h = append(h, Covered{int(b), sum})
		}
	}
	sc.heap = h
	var out []Covered
	for i := len(h)/2 - 1; i >= 0; i-- {
		coverDown(h, i)
	}
	for len(h) > 0 && len(out) < top {
		c := h[0]
		h[0] = h[len(h)-1]
		h = h[:len(h)-1]
		coverDown(h, 0)
		if !x.OnlyRecurring(c.Block, sc.hashes.has) {
			out = append(out, c)
		}
	}
	return out
}

// Covered is a block Cover found, with its score.
type Covered struct {
	Block int
	Score float64
}

// coverAbove reports whether x ranks before y in Cover's order: higher
// scores first, the newer block on ties.
func coverAbove(x, y Covered) bool {
	if x.Score != y.Score {
		return x.Score > y.Score
	}
	return x.Block > y.Block
}

// coverDown restores the heap order of h (the best first) below i.
func coverDown(h []Covered, i int) {
	for {
		m, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && coverAbove(h[l], h[m]) {
			m = l
		}
		if r < len(h) && coverAbove(h[r], h[m]) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}

// coverProbe is one word of a question Cover weighs: its index term, unit
// vector and weight.
type coverProbe struct {
	term   string
	vec    []float32
	weight float64
}

// coverNear is a history term's similarity to question word q.
type coverNear struct {
	q   int32
	sim float32
}

// coverScratch is what one Cover call works in, reused through coverPool:
// a question over a long history relates thousands of terms and touches
// thousands of blocks, whose maps cost more than the arithmetic.
type coverScratch struct {
	// relPos lists the positions of the terms related to a question word
	// (similarity at least the floor); relNear[relStart[i]:relStart[i+1]]
	// are term relPos[i]'s question words and similarities.
	relPos   []int32
	relStart []int32
	relNear  []coverNear
	// vecs, sims and buf are scratch for the similarities of one term.
	vecs      [][]float32
	sims, buf []float32
	// rowIdx holds, per block, 0 while unseen, -1 when keep rejected it,
	// else 1 + its row in rows (len(qs) similarities); blocks lists the
	// blocks with a row.
	rowIdx []int32
	rows   []float32
	blocks []int32
	// hashes holds the related terms' TermHash.
	hashes hashSet
	// heap holds the scored blocks, to take the best from.
	heap []Covered
}

// coverPool holds Cover's scratch between calls.
var coverPool = sync.Pool{New: func() any { return new(coverScratch) }}

// relate finds the history terms whose similarity to a question word of
// qs is at least floor: 1 for the word itself, else the cosine of their
// vectors (0 without one), each term's vector read once for all words.
func (sc *coverScratch) relate(s *Semantic, qs []coverProbe, floor float64) {
	sc.relPos, sc.relNear = sc.relPos[:0], sc.relNear[:0]
	sc.relStart = append(sc.relStart[:0], 0)
	sc.vecs = sc.vecs[:0]
	self := make([]int32, len(qs)) // each word's own term position, or -1
	for j, q := range qs {
		sc.vecs = append(sc.vecs, q.vec)
		self[j] = -1
		if p, ok := s.termPos[q.term]; ok {
			self[j] = p
		}
	}
	sc.sims = slices.Grow(sc.sims[:0], len(qs))[:len(qs)]
	sc.buf = slices.Grow(sc.buf[:0], s.vec.Dim())[:s.vec.Dim()]
	for p := range s.terms {
		if s.terms[p].has {
			row, scale := s.termRow(p)
			glove.CosinesTo(row, scale, sc.vecs, sc.sims, sc.buf)
		} else {
			clear(sc.sims)
		}
		related := false
		for j, sim := range sc.sims {
			if self[j] == int32(p) {
				sim = 1
			}
			if float64(sim) >= floor {
				sc.relNear = append(sc.relNear, coverNear{int32(j), sim})
				related = true
			}
		}
		if related {
			sc.relPos = append(sc.relPos, int32(p))
			sc.relStart = append(sc.relStart, int32(len(sc.relNear)))
		}
	}
}

// reset readies the per-block state for blocks [0, n).
func (sc *coverScratch) reset(n int) {
	sc.rowIdx = slices.Grow(sc.rowIdx[:0], n)[:n]
	clear(sc.rowIdx)
	sc.rows, sc.blocks = sc.rows[:0], sc.blocks[:0]
}

// newRow gives block b a row of nq zeros and returns its rowIdx.
func (sc *coverScratch) newRow(b, nq int) int32 {
	sc.rows = append(sc.rows, make([]float32, nq)...)
	sc.blocks = append(sc.blocks, int32(b))
	r := int32(len(sc.blocks))
	sc.rowIdx[b] = r
	return r
}

// row returns block b's row, which it must have.
func (sc *coverScratch) row(b, nq int) []float32 {
	r := int(sc.rowIdx[b])
	return sc.rows[(r-1)*nq : r*nq]
}

// notLetter reports a rune that is no letter.
func notLetter(r rune) bool { return !unicode.IsLetter(r) }

// coverWeight weighs a question word by its rarity in English (GloVe's
// words come in order of frequency): "vehicle" near 1, "work" about 0.3.
func coverWeight(id glove.ID) float64 {
	r := float64(id) + 1
	return r / (r + 300)
}

// Kin scores candidate blocks by how near their rare words come to the
// rare words of seed blocks, by GloVe: for each seed, the most similar pair
// of a candidate's word and the seed's (counted above floor), weighted by
// the seed's weight. Statements about one slot or one list name values of
// one kind ("a Kia Niro", "a Mazda CX-5"; "back from Ghent", "flying to
// Seville"), and the values' words are near each other even where the
// statements share no word with each other or the question: a seed found
// by the question finds its siblings. A seed does not count for itself.
// rare reports the index terms that count (the values a statement names,
// not its small talk). A block's words are those the index read at
// ingest (Semantic.blockWords), not its text again: a gathering question
// weighs up to a thousand candidates. Kin returns nil without vectors.
func (x *Index) Kin(seeds map[int]float64, cands []int, rare func(term string) bool, floor float64) map[int]float64 {
	s := x.sem
	if s == nil || len(seeds) == 0 {
		return nil
	}
	var buf []glove.ID
	ids := func(b int) []glove.ID {
		out := buf[len(buf):]
		if b >= 0 && b < len(s.blockWords) {
			for _, w := range s.blockWords[b] {
				if rare(s.terms[w.pos].text) {
					out = append(out, w.id)
				}
			}
		}
		buf = out[len(out):]
		return out
	}
	type seed struct {
		b      int
		weight float64
		ids    []glove.ID
	}
	var ss []seed
	for _, b := range slices.Sorted(maps.Keys(seeds)) {
		if w := ids(b); len(w) > 0 {
			ss = append(ss, seed{b, seeds[b], w})
		}
	}
	// near[id][j]: the best similarity of word id to seed j's words.
	near := map[glove.ID][]float32{}
	out := make(map[int]float64, len(cands))
	for _, b := range cands {
		words := ids(b)
		sum := 0.0
		for j, sd := range ss {
			if sd.b == b {
				continue
			}
			best := float32(0)
			for _, id := range words {
				row, ok := near[id]
				if !ok {
					row = make([]float32, len(ss))
					for k, o := range ss {
						for _, oid := range o.ids {
							row[k] = max(row[k], s.vec.Cosine(id, oid))
						}
					}
					near[id] = row
				}
				best = max(best, row[j])
			}
			if float64(best) >= floor {
				sum += sd.weight * (float64(best) - floor) / (1 - floor)
			}
		}
		if sum > 0 {
			out[b] = sum
		}
	}
	return out
}
