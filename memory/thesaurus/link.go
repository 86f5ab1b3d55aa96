package thesaurus

import (
	"strings"
	"sync"

	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/lens"
)

// Words WordNet lacks. People name things in words newer, shorter or
// more compounded than the dictionary's: "my physio", "our lawnmower",
// "a mandoline". The reverse dictionary (ExpandIn) and the definitions
// (Define) reach only the nouns WordNet has, so a history that names a
// thing only so is never found by a description of it. LinkWord links
// such a word to the WordNet nouns it stands for:
//   - a compound whose last part is a WordNet noun and whose first part
//     is a WordNet word is a kind of that noun ("lawnmower" is a mower,
//     as English compounds name their kind last);
//   - else the WordNet nouns nearest it by GloVe, when near enough
//     ("physio" is the physiotherapist at 0.70, "mandoline" the slicer at
//     0.63).
//
// The engine links the history's words as it learns them and lets a
// description that finds the linked noun find the history's word.

// Linking parameters, checked on memory/said_fresh_test.go (the
// lawnmower and the physio) and the chat dev seeds (the mandoline).
const (
	// linkFloor is the least GloVe cosine between a word and a noun it
	// is linked to by its vector (the mandoline's slicer is at 0.63, its
	// next noun, the scalpel, 0.61; the lawnmower's mower only 0.49,
	// under the ketch).
	linkFloor = 0.6
	// linkMax is the most nouns one word is linked to by its vector.
	linkMax = 2
	// linkMinRank is the least frequency rank in GloVe's corpus of a word
	// linked by its vector (its ID): the words WordNet lacks that the
	// corpus uses often are chat words, not names of things ("yeah" at
	// 8267 is near "wow", "kinda" at 33167 near swearwords; "physio" is at
	// 60379, "mandoline" at 114908).
	linkMinRank = 40000
	// linkProbe is how many GloVe clusters are searched for the nouns (12
	// cost twice the time and linked the same words of the tests).
	linkProbe = 6
	// linkMinLen is the least length of a linked word and of each part of
	// a compound: shorter strings are abbreviations and typos, and short
	// parts split words that are no compounds.
	linkMinLen = 3
	// linkMinHead is the least length of a compound's head ("anyways" is
	// no kind of way).
	linkMinHead = 4
)

// nounVecs are WordNet's one-word noun lemmas that have a GloVe vector,
// bucketed by the vectors' clusters.
type nounVecs struct {
	buckets [][]glove.ID
}

// nounVecCache maps a *glove.Vectors to its nounVecs, per Thesaurus.
type nounVecCache struct {
	mu sync.Mutex
	by map[*glove.Vectors]*nounVecs
}

// nounsFor returns the bucketed noun lemmas of v, built on first use.
func (t *Thesaurus) nounsFor(v *glove.Vectors) *nounVecs {
	t.nv.mu.Lock()
	defer t.nv.mu.Unlock()
	if nv := t.nv.by[v]; nv != nil {
		return nv
	}
	nv := &nounVecs{buckets: make([][]glove.ID, v.Clusters())}
	for l := range t.index[noun] {
		if strings.ContainsAny(l, "_-.'") {
			continue
		}
		if id, ok := v.Lookup(l); ok {
			c := v.Cluster(id)
			nv.buckets[c] = append(nv.buckets[c], id)
		}
	}
	if t.nv.by == nil {
		t.nv.by = map[*glove.Vectors]*nounVecs{}
	}
	t.nv.by[v] = nv
	return nv
}

// LinkWord returns the WordNet nouns that word, a lower-case word of a
// history that WordNet does not know in any part of speech, stands for,
// as lens terms weighted by how surely (1 for a compound's head, the
// cosine for a vector's neighbour); nil for a word WordNet knows, a
// stopword or a word with other than letters. v may be nil (compounds
// only).
func (t *Thesaurus) LinkWord(word string, v *glove.Vectors) []lens.Term {
	if t == nil || len(word) < linkMinLen+1 || !content(word) {
		return nil
	}
	for _, r := range word {
		if r < 'a' || r > 'z' {
			return nil
		}
	}
	for _, b := range t.bases(word) {
		if b != "" {
			return nil
		}
	}
	// A compound: the longest head that is a noun after a first part
	// that is a word.
	for i := linkMinLen; i+linkMinLen <= len(word); i++ {
		head, first := word[i:], word[:i]
		hb := t.base(head, noun)
		if len(hb) < linkMinHead || generic[hb] {
			continue
		}
		known := false
		for _, b := range t.bases(first) {
			known = known || (b != "" && content(first))
		}
		if !known {
			continue
		}
		if term := t.lemmaTerm(hb); term != "" {
			return []lens.Term{{Text: term, Weight: 1}}
		}
	}
	if v == nil {
		return nil
	}
	id, ok := v.Lookup(word)
	if !ok || int(id) < linkMinRank {
		return nil
	}
	nv := t.nounsFor(v)
	q := make([]float32, v.Dim())
	v.Unit(id, q)
	var best []lens.Term
	for _, c := range v.NearestClusters(q, linkProbe, make([]int, 0, linkProbe)) {
		for _, n := range nv.buckets[c] {
			sim := float64(v.CosineTo(n, q))
			if sim < linkFloor {
				continue
			}
			l := v.Word(n)
			term := t.lemmaTerm(l)
			if term == "" || term == lens.Stem(word) || !t.specific(l) {
				continue
			}
			best = insertBest(best, lens.Term{Text: term, Weight: sim}, linkMax)
		}
	}
	return best
}

// insertBest inserts x into ts, kept in descending weight (ties by text)
// and to at most n terms, one per text.
func insertBest(ts []lens.Term, x lens.Term, n int) []lens.Term {
	for i, t := range ts {
		if t.Text == x.Text {
			if x.Weight <= t.Weight {
				return ts
			}
			ts = append(ts[:i], ts[i+1:]...)
			break
		}
	}
	i := 0
	for i < len(ts) && (ts[i].Weight > x.Weight || (ts[i].Weight == x.Weight && ts[i].Text < x.Text)) {
		i++
	}
	if i >= n {
		return ts
	}
	ts = append(ts, lens.Term{})
	copy(ts[i+1:], ts[i:])
	ts[i] = x
	if len(ts) > n {
		ts = ts[:n]
	}
	return ts
}

// specific reports whether lemma l is mostly a noun and its first sense
// names a kind of thing rather than a vague one (no top noun, not
// generic, at most maxHypo hyponyms): "gonna" is near "somebody", which
// describes every person.
func (t *Thesaurus) specific(l string) bool {
	refs := t.index[noun][l]
	if len(refs) == 0 || generic[l] || !t.mostlyNoun(l, l) {
		return false
	}
	s := &t.syn[noun][refs[0].idx()]
	return s.lex != lexTops && s.nHypo <= maxHypo
}
