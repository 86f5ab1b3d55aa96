package memory

import (
	"math"
	"strings"
	"unicode"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/lens"
)

// Lists told across sessions (multi-evidence questions). "Which cities
// have I been to for work?" is answered by three or four statements told
// months apart, each in words of its own ("landed in Porto for the
// supplier meeting", "two nights in Ghent, the venue was freezing").
// Cover, which gather starts from, counts a question word as matched by
// the nearest word of a statement whatever that word is, and common words
// are near everything: "spent the whole evening making bread" matches
// "travelled" and "job" through "spent" and "whole" as well as a trip
// does. Among the user's statements told once, a list's items are told by
// the words that name something (rare in the history), so a list question
// ranks gather's statements by listScorer.score, which weighs each match
// by the rarity of the statement's word as well as the question's.

// listWord is a content word of a text: its lens term, GloVe id and
// whether it is capitalized inside a sentence (a name).
type listWord struct {
	term string
	id   glove.ID
	ok   bool
	name bool
}

// listWords returns a text's content words.
func listWords(v *glove.Vectors, text string) []listWord {
	var out []listWord
	opener := true
	for _, raw := range strings.Fields(text) {
		start := opener
		opener = strings.ContainsAny(raw[len(raw)-1:], ".!?:")
		f := strings.TrimFunc(raw, func(r rune) bool { return !unicode.IsLetter(r) })
		f = strings.TrimSuffix(strings.TrimSuffix(f, "'s"), "’s")
		if len([]rune(f)) < 2 {
			continue
		}
		lower := strings.ToLower(f)
		if gist.IsStopword(lower) || listClosed[lower] {
			continue
		}
		r := []rune(f)[0]
		w := listWord{term: lens.Stem(lower), name: !start && unicode.IsUpper(r)}
		if v != nil {
			w.id, w.ok = v.Lookup(lower)
		}
		out = append(out, w)
	}
	return out
}

// listClosed are the words of a list question that ask rather than name:
// quantifiers, the verbs of a request and the time words that bound a list
// ("this year", "so far"), which name no item.
var listClosed = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`list every everything everyone everybody everywhere all each
remind tell far already ever yet lately recently now today day days week weeks month months
year years time times ago`) {
		m[w] = true
	}
	return m
}()

// List parameters, measured with `megacontext eval` on the multi-evidence
// questions of chat seeds 1-3, 7 and 8 (32k and 128k, four questions of a
// type a case, 40 in all) at 4096 with llama-bpe: gather's Cover order and
// kin weight 4, 57 %; kin weight 1, 65 %; 0.5, 70 %; 0, 57 %; ranked by
// listScorer and kin weight 0.5, 73 % (answers 80 %); 1, 65 %; 2, 55 %;
// 0.25, 70 %. The dev split (`eval splits --split dev --budgets 4096`,
// seeds 1-3, 32k-512k): multi-evidence 41 -> 52 %, overall 85.9 -> 86.9 %,
// no other type changed.
const (
	// listFloor is the least GloVe cosine between a question word and a
	// statement word that counts.
	listFloor = 0.3
	// listKin weighs gather's kin hop for a list question: items of one
	// list name values of one kind, but so do the statements the best
	// matches drag in by chance (a kid's name finds every other name).
	listKin = 0.5
)

// rankList orders gather's pool of statements for a list question by
// listScore, best first.
func (e *Engine) rankList(c *mctx, ask string, pool []gathered) {
	ls := newListScorer(e.opts.Vectors, ask, c.index.DF, c.tree.Len())
	if ls == nil {
		return
	}
	for i := range pool {
		pool[i].s = ls.score(c.tree.Block(pool[i].b).Text)
	}
	sortGathered(pool)
	if pool[0].s <= 0 {
		// Nothing matched: keep every statement in the pool, equal.
		for i := range pool {
			pool[i].s = 1
		}
	}
}

// listScorer scores statements against a list question.
type listScorer struct {
	v  *glove.Vectors
	q  []listWord
	qw []float64
	df func(term string) int
	n  float64
}

// newListScorer prepares a question; nil when it has no word to weigh.
func newListScorer(v *glove.Vectors, question string, df func(string) int, n int) *listScorer {
	if v == nil {
		return nil
	}
	s := &listScorer{v: v, df: df, n: float64(max(n, 2))}
	seen := map[string]bool{}
	for _, w := range listWords(v, question) {
		if seen[w.term] || (!w.ok && !w.name) {
			continue
		}
		seen[w.term] = true
		s.q = append(s.q, w)
		s.qw = append(s.qw, s.rarity(w.term))
	}
	if len(s.q) == 0 {
		return nil
	}
	return s
}

// rarity weighs a term by how few blocks of the history hold it: 1 for a
// term told once, less for one repeated often.
func (s *listScorer) rarity(term string) float64 {
	df := float64(max(1, s.df(term)))
	return math.Max(0, math.Log(s.n/df)/math.Log(s.n))
}

// score is a statement's match: for each question word, the best of the
// statement's words by similarity above listFloor times the word's
// rarity, weighted by the question word's rarity.
func (s *listScorer) score(text string) float64 {
	words := listWords(s.v, text)
	sum := 0.0
	for i, q := range s.q {
		best := 0.0
		for _, w := range words {
			var sim float64
			switch {
			case w.term == q.term:
				sim = 1
			case q.ok && w.ok:
				sim = float64(s.v.Cosine(q.id, w.id))
			}
			if sim < listFloor {
				continue
			}
			best = math.Max(best, (sim-listFloor)/(1-listFloor)*s.rarity(w.term))
		}
		sum += s.qw[i] * best
	}
	return sum
}
