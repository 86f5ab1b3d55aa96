package lens

import (
	"maps"
	"slices"
	"strings"
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
// scores nothing. Cover returns nil without vectors or question words.
func (x *Index) Cover(question string, floor float64, limit int, keep, joined func(b int) bool) map[int]float64 {
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
// text returns a block's text, rare reports the index terms that count
// (the values a statement names, not its small talk). Kin returns nil
// without vectors.
func (x *Index) Kin(seeds map[int]float64, cands []int, text func(b int) string, rare func(term string) bool, floor float64) map[int]float64 {
	s := x.sem
	if s == nil || len(seeds) == 0 {
		return nil
	}
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
