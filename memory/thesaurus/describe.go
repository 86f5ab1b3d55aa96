package thesaurus

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/megacontext/megacontext/memory/lens"
)

// A reverse dictionary over the history's own nouns. People ask about a
// thing by describing it ("who trims my hair?", "the machine I walk on
// indoors") where they once named it ("my barber", "our new treadmill").
// WordNet describes nouns in the same words: "barber: a hairdresser who
// cuts hair", "treadmill: an exercise device ... on which a person can
// walk". Expand cannot guess which of the thousands of nouns a description
// fits, but the history names only a few hundred of them: ExpandIn scores
// the nouns whose description shares words with the question (through the
// question words' synonyms and hypernyms too: "christening" is a
// "baptism") and keeps those the history uses.

// Reverse dictionary parameters, tuned with `megacontext eval` on the dev
// seeds (see README).
const (
	// describeMinScore is the least score of a described noun: about one
	// rare question word in its own gloss.
	describeMinScore = 5.0
	// describeScale maps a score to a weight: a noun scoring this much (two
	// or three rare words) weighs as much as a question word.
	describeScale = 12.0
	// describeMax caps the nouns one question brings.
	describeMax = 8
	// describeMaxWords is the most content words of a question described
	// in reverse: a description names one thing in a few words; a longer
	// text (a statement, a pasted paragraph) would cost more to score than
	// the rest of an assembly and name nothing.
	describeMaxWords = 16
	// describeHyponym is the share of a noun's score its hyponyms inherit
	// (a "godson" is a "godchild": "an infant ... sponsored at baptism").
	describeHyponym = 0.8
	// relativeSynonym and relativeHypernym weigh a question word's
	// synonyms and hypernyms against the word itself.
	relativeSynonym  = 0.8
	relativeHypernym = 0.6
)

// ExpandIn returns the nouns that has reports the history holds (by lens
// term) and whose WordNet description fits the question, weighted by how
// well: the summed rarity of the question words (or their relatives)
// their description holds, the best relative of each question word once.
// Terms the question holds itself are never returned.
func (t *Thesaurus) ExpandIn(question string, has func(term string) bool) []lens.Term {
	if t == nil || has == nil {
		return nil
	}
	own := map[string]bool{}
	for _, term := range lens.Terms(question) {
		own[term] = true
	}
	// Each question word and its relatives, with a weight.
	type rel struct {
		q int
		w float64
	}
	rels := map[string]rel{}
	add := func(q int, w string, wt float64) {
		n := t.norm(w)
		if len(n) < 2 {
			return
		}
		if r, ok := rels[n]; !ok || wt > r.w {
			rels[n] = rel{q, wt}
		}
	}
	nq := 0
	for _, tk := range tokenize(question) {
		if !content(tk.word) || generic[tk.word] {
			continue
		}
		q := nq
		nq++
		add(q, tk.word, 1)
		for p, b := range t.bases(tk.word) {
			if b == "" {
				continue
			}
			refs := t.index[p][b]
			if len(refs) == 0 || len(refs) > maxSenses {
				continue
			}
			s := &t.syn[p][refs[0].idx()]
			for _, l := range s.words {
				for _, part := range splitLemma(l) {
					add(q, part, relativeSynonym)
				}
			}
			if p == noun {
				for _, h := range s.hyper {
					if hs := &t.syn[noun][h.idx()]; hs.lex != lexTops && hs.nHypo <= maxHypo {
						for _, l := range hs.words {
							for _, part := range splitLemma(l) {
								add(q, part, relativeHypernym)
							}
						}
					}
				}
			}
		}
	}
	if nq == 0 || nq > describeMaxWords {
		return nil
	}
	// Score noun synsets: per question word, its best relative in the
	// synset's description, by rarity. One question word at a time: cur
	// holds each synset's best score for it, then joins the totals.
	nSyn := float64(len(t.syn[noun]))
	byQ := make([][]string, nq)
	for w, r := range rels {
		byQ[r.q] = append(byQ[r.q], w)
	}
	totals := map[int]float64{}
	cur := map[int]float64{}
	for _, ws := range byQ {
		clear(cur)
		for _, w := range ws {
			ps := t.bag[w]
			if len(ps) == 0 || len(ps) > maxPostings {
				continue
			}
			rw := rels[w].w * math.Log(nSyn/float64(len(ps)))
			for _, p := range ps {
				i := int(p >> 2)
				if s := rw * fieldWeight[p&3]; s > cur[i] {
					cur[i] = s
				}
			}
		}
		for i, s := range cur {
			totals[i] += s
		}
	}
	// A synset's hyponyms inherit a share of its score.
	best := map[int]float64{}
	for i, total := range totals {
		if total > best[i] {
			best[i] = total
		}
		if total*describeHyponym >= describeMinScore {
			for _, h := range t.hypo[i] {
				if s := total * describeHyponym; s > best[int(h)] {
					best[int(h)] = s
				}
			}
		}
	}
	ids := make([]int, 0, 64)
	for i, s := range best {
		if s >= describeMinScore {
			ids = append(ids, i)
		}
	}
	slices.SortFunc(ids, func(x, y int) int {
		if c := cmp.Compare(best[y], best[x]); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	weight := map[string]float64{}
	var order []string
	for _, i := range ids {
		s := &t.syn[noun][i]
		if s.inst {
			continue
		}
		for _, l := range s.words {
			if strings.ContainsAny(l, "_-") {
				continue
			}
			term := t.lemmaTerm(l)
			if term == "" || own[term] || !has(term) {
				continue
			}
			if _, ok := weight[term]; !ok {
				order = append(order, term)
				weight[term] = min(1, best[i]/describeScale)
			}
		}
		if len(order) >= describeMax {
			break
		}
	}
	out := make([]lens.Term, len(order))
	for k, term := range order {
		out[k] = lens.Term{Text: term, Weight: weight[term]}
	}
	return out
}

// lemmaTerm returns the lens term of a one-word lemma ("" when it makes
// none or several), cached: the same nouns come up question after question.
func (t *Thesaurus) lemmaTerm(l string) string {
	if v, ok := t.terms.Load(l); ok {
		return v.(string)
	}
	term := ""
	if ts := lens.Terms(l); len(ts) == 1 {
		term = ts[0]
	}
	t.terms.Store(l, term)
	return term
}
