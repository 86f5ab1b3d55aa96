// Package lens scores the blocks of a timeline for a query: BM25 over an
// append-only inverted index, so that scoring touches only the postings of
// the query's terms and never scans the whole history. It also counts, at
// ingest, how often each run of three terms recurs (recur.go), so that a
// block that matches only through small talk repeated all through a
// history can be told from a fact told once.
package lens

import (
	"iter"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/gist"
)

// BM25 parameters.
const (
	k1 = 1.2
	b  = 0.75
)

type posting struct {
	block int32
	tf    uint16
}

// Index is an inverted index over blocks, appended in block order. It is
// not safe for concurrent mutation; callers serialize Add with Score, and
// OnlyRecurring (which keeps what it learned) with both.
type Index struct {
	postings map[string][]posting
	docLen   []uint16
	total    int64
	// bytes is the approximate memory the index holds (Bytes).
	bytes int64
	// sem is the GloVe channel, nil without vectors (UseVectors).
	sem *Semantic
	// lower counts the occurrences of each term written in lower case, and
	// midCap those capitalized inside a sentence: a term of midCap never
	// seen in lower case is a name (Name). Counts, so that Rewrite can take
	// a text's occurrences back.
	lower, midCap map[string]int32
	// shingleN counts each shingle's occurrences in the history, and
	// blockTerms holds each block's terms as hashes (recur.go).
	shingleN   map[uint64]int32
	blockTerms [][]uint32
	// rare counts each block's terms found in at most RareDF blocks
	// (rare.go).
	rare []uint16
	// open marks each block whose text ends inside a sentence (ends.go).
	open []bool
	// recurGen counts the times a shingle's count fell below minRecur;
	// recurAt[b] is 1 + the recurGen at which recurBits[b] (a bit per
	// term of block b: known to lie in recurring text) was started, 0 for
	// none (recur.go). Not counted in bytes: a few bits a term, for the
	// blocks a question checked.
	recurGen  uint64
	recurAt   []uint64
	recurBits [][]uint64
}

// Approximate memory costs of the index, in bytes (64-bit Go): a posting
// in its list, with the slack of lists grown by appending; a term's map
// entry (string and slice headers in a map at its usual load) plus its
// text; a block's length.
const (
	postingBytes = 10
	termBytes    = 64
	docBytes     = 2
)

// Bytes returns the approximate memory the index holds: what a memory
// budget charges for it.
func (x *Index) Bytes() int64 { return x.bytes }

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{postings: map[string][]posting{}, lower: map[string]int32{}, midCap: map[string]int32{}, shingleN: map[uint64]int32{}}
}

// Name reports whether term is a name: capitalized inside a sentence
// somewhere in the history, and never written in lower case there
// ("Damien", never "damien"; not "Noted", which only opens sentences).
func (x *Index) Name(term string) bool {
	_, low := x.lower[term]
	_, mid := x.midCap[term]
	return mid && !low
}

// Capitalized reports whether term is in the history and never written in
// lower case there: a name, or a word that only ever opens a sentence
// ("Noted"); a rare one is most likely a name.
func (x *Index) Capitalized(term string) bool {
	_, low := x.lower[term]
	return !low && len(x.postings[term]) > 0
}

// countCase adds delta to the case counts of words (sentence openers are
// not counted: any word may open one).
func (x *Index) countCase(words []word, delta int32) {
	for _, w := range words {
		set := x.lower
		if w.capital {
			if w.opener {
				continue
			}
			set = x.midCap
		}
		n := set[w.term]
		switch {
		case n == 0 && delta > 0:
			x.bytes += termBytes
		case n+delta <= 0:
			delete(set, w.term)
			x.bytes -= termBytes
			continue
		}
		set[w.term] = n + delta
	}
}

// Len returns the number of blocks indexed.
func (x *Index) Len() int { return len(x.docLen) }

// Add indexes the text of the next block, which must be block number Len().
func (x *Index) Add(text string) {
	id := int32(len(x.docLen))
	terms := Terms(text)
	tf := map[string]int{}
	for _, t := range terms {
		tf[t]++
	}
	// Deterministic posting order is not needed (postings are per term),
	// but map iteration is fine since each term's list gets one entry.
	for t, n := range tf {
		if n > math.MaxUint16 {
			n = math.MaxUint16
		}
		list, ok := x.postings[t]
		if !ok {
			x.bytes += termBytes + int64(len(t))
		}
		x.postings[t] = append(list, posting{block: id, tf: uint16(n)})
		x.rareCross(t, len(list), len(list)+1, id)
	}
	x.rare = append(x.rare, x.countRare(tf))
	x.open = append(x.open, endsOpen(text))
	x.bytes += postingBytes*int64(len(tf)) + docBytes + rareBytes + openBytes
	l := len(terms)
	if l > math.MaxUint16 {
		l = math.MaxUint16
	}
	x.docLen = append(x.docLen, uint16(l))
	x.total += int64(l)
	hs := termHashes(terms)
	x.countShingles(hs, 1)
	x.blockTerms = append(x.blockTerms, hs)
	x.bytes += termListBytes(hs)
	words := contentWords(text)
	x.countCase(words, 1)
	if x.sem != nil {
		x.bytes += x.sem.add(words)
	}
}

// Term is a query term with a weight.
type Term struct {
	Text   string
	Weight float64
}

// Query turns text into weighted, de-duplicated query terms.
func Query(text string, weight float64) []Term {
	seen := map[string]bool{}
	var out []Term
	for _, t := range Terms(text) {
		if !seen[t] {
			seen[t] = true
			out = append(out, Term{Text: t, Weight: weight})
		}
	}
	return out
}

// Merge combines term lists, keeping the highest weight of each term.
func Merge(lists ...[]Term) []Term {
	w := map[string]float64{}
	var order []string
	for _, l := range lists {
		for _, t := range l {
			if old, ok := w[t.Text]; !ok {
				order = append(order, t.Text)
				w[t.Text] = t.Weight
			} else if t.Weight > old {
				w[t.Text] = t.Weight
			}
		}
	}
	out := make([]Term, len(order))
	for i, t := range order {
		out[i] = Term{Text: t, Weight: w[t]}
	}
	return out
}

// DF returns the number of blocks that contain term.
func (x *Index) DF(term string) int { return len(x.postings[term]) }

// IDF returns the inverse document frequency of a term.
func (x *Index) IDF(term string) float64 {
	n := float64(len(x.docLen))
	df := float64(len(x.postings[term]))
	return math.Log(1 + (n-df+0.5)/(df+0.5))
}

// Score returns BM25 scores of the blocks in [0, limit) that contain any
// query term. Terms present in more than maxDF of the blocks are skipped
// as uninformative (0 disables the cut).
func (x *Index) Score(q []Term, limit int, maxDF float64) map[int]float64 {
	var acc Scores
	x.ScoreInto(&acc, q, limit, maxDF)
	out := make(map[int]float64, len(acc.touched))
	for _, b := range acc.touched {
		out[int(b)] = acc.val[b]
	}
	return out
}

// ScoreInto is Score into acc, which it resets to the index's length: a
// question of common words over a long history matches most of its
// blocks, and a map of them cost more than the scoring.
func (x *Index) ScoreInto(acc *Scores, q []Term, limit int, maxDF float64) {
	n := len(x.docLen)
	acc.Reset(n)
	if n == 0 || limit <= 0 {
		return
	}
	avg := float64(x.total) / float64(n)
	if avg == 0 {
		avg = 1
	}
	for _, t := range q {
		ps := x.postings[t.Text]
		if len(ps) == 0 {
			continue
		}
		if maxDF > 0 && n > 50 && float64(len(ps)) > maxDF*float64(n) {
			continue
		}
		idf := x.IDF(t.Text) * t.Weight
		for _, p := range ps {
			if int(p.block) >= limit {
				break // postings are in block order
			}
			tf := float64(p.tf)
			dl := float64(x.docLen[p.block])
			acc.Add(int(p.block), idf*tf*(k1+1)/(tf+k1*(1-b+b*dl/avg)))
		}
	}
}

// Terms splits text into index terms: lower-cased words without stopwords,
// lightly stemmed; codes that join letters and digits with '-' or '_' are
// kept whole as well as split.
func Terms(text string) []string {
	var out []string
	for t := range TermSeq(text) {
		out = append(out, t)
	}
	return out
}

// TermSeq yields the terms of text that Terms returns, in order, one at a
// time: a caller that looks for one term stops reading the text there.
func TermSeq(text string) iter.Seq[string] {
	return func(yield func(string) bool) {
		i := 0
		for i < len(text) {
			r, size := utf8.DecodeRuneInString(text[i:])
			if !isWordRune(r) {
				i += size
				continue
			}
			j := i
			for j < len(text) {
				r2, s2 := utf8.DecodeRuneInString(text[j:])
				if isWordRune(r2) || ((r2 == '-' || r2 == '_' || r2 == '.') && j+s2 < len(text) && nextIsWord(text[j+s2:])) {
					j += s2
					continue
				}
				break
			}
			word := strings.ToLower(text[i:j])
			i = j
			if strings.ContainsAny(word, "-_.") {
				if hasDigit(word) && !yield(word) {
					return
				}
				for _, p := range strings.FieldsFunc(word, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
					if t, ok := term(p); ok && !yield(t) {
						return
					}
				}
				continue
			}
			if t, ok := term(word); ok && !yield(t) {
				return
			}
		}
	}
}

// term returns the index term of the lower-case word w, false for a
// stopword or a single letter.
func term(w string) (string, bool) {
	if w == "" || gist.IsStopword(w) {
		return "", false
	}
	if len(w) == 1 && !hasDigit(w) {
		return "", false
	}
	return Stem(w), true
}

func nextIsWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return isWordRune(r)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func hasDigit(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			return true
		}
	}
	return false
}

// Stem strips common English inflections so that "meetings" matches
// "meeting" and "moved" matches "move". It is deliberately light. A final
// "e" goes, except after a short consonant-vowel-consonant stem, where it is
// kept, and put back after "-ed" and "-ing" (Porter's rule): "cared" and
// "care" stay apart from "car", and "moved" still meets "move".
func Stem(w string) string {
	if hasDigit(w) || len(w) <= 3 {
		return w
	}
	switch {
	case strings.HasSuffix(w, "'s"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2]
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
	case strings.HasSuffix(w, "s"):
		w = w[:len(w)-1]
	}
	cut := ""
	switch {
	case strings.HasSuffix(w, "ing") && len(w) > 5:
		cut = w[:len(w)-3]
	case strings.HasSuffix(w, "ed") && len(w) > 4:
		cut = w[:len(w)-2]
	}
	if cut != "" {
		if u := undouble(cut); u != cut {
			return u // hopped -> hop
		}
		if shortStem(cut) {
			return cut + "e" // hoped -> hope
		}
		return cut
	}
	if strings.HasSuffix(w, "e") && len(w) > 3 && !shortStem(w[:len(w)-1]) {
		w = w[:len(w)-1]
	}
	return w
}

// shortStem reports whether w has one vowel group followed by a final
// consonant-vowel-consonant (not w, x or y): "car", "hop", "shad".
func shortStem(w string) bool {
	n := len(w)
	if n < 3 || !consonant(w, n-3) || consonant(w, n-2) || !consonant(w, n-1) || strings.IndexByte("wxy", w[n-1]) >= 0 {
		return false
	}
	// One vowel group: everything before the final vowel is consonants.
	for i := 0; i < n-2; i++ {
		if !consonant(w, i) {
			return false
		}
	}
	return true
}

// consonant reports whether byte i of w is a consonant (y after a
// consonant is a vowel).
func consonant(w string, i int) bool {
	switch w[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !consonant(w, i-1)
	}
	return w[i] >= 'a' && w[i] <= 'z'
}

func undouble(w string) string {
	n := len(w)
	if n >= 2 && w[n-1] == w[n-2] && !strings.ContainsRune("lsz", rune(w[n-1])) {
		return w[:n-1]
	}
	return w
}

// Top returns the blocks of scores ordered by descending score, ties by
// ascending block, at most n of them (n <= 0: all).
func Top(scores map[int]float64, n int) []int {
	ids := make([]int, 0, len(scores))
	for id := range scores {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if scores[ids[i]] != scores[ids[j]] {
			return scores[ids[i]] > scores[ids[j]]
		}
		return ids[i] < ids[j]
	})
	if n > 0 && len(ids) > n {
		ids = ids[:n]
	}
	return ids
}

// Truncate takes the index back to its first n blocks, undoing the Adds of
// the blocks after them; text returns the text each of those blocks was
// added with. It undoes a speculative ingest (a dry run).
func (x *Index) Truncate(n int, text func(block int) string) {
	for blk := len(x.docLen) - 1; blk >= n && blk >= 0; blk-- {
		old := text(blk)
		for _, t := range Terms(old) {
			ps := x.postings[t]
			// Postings are in block order: the block's entry is the last.
			if k := len(ps); k > 0 && int(ps[k-1].block) == blk {
				x.bytes -= postingBytes
				if k == 1 {
					delete(x.postings, t)
					x.bytes -= termBytes + int64(len(t))
				} else {
					x.postings[t] = ps[:k-1]
					x.rareCross(t, k, k-1, -1)
				}
			}
		}
		x.total -= int64(x.docLen[blk])
		x.docLen = x.docLen[:blk]
		x.rare = x.rare[:blk]
		x.open = x.open[:blk]
		x.bytes -= rareBytes + openBytes
		x.countShingles(x.blockTerms[blk], -1)
		x.bytes -= termListBytes(x.blockTerms[blk])
		x.blockTerms = x.blockTerms[:blk]
		x.forgetRecur(blk)
		x.countCase(contentWords(old), -1)
		if x.sem != nil {
			x.bytes -= x.sem.truncate(blk)
		}
		x.bytes -= docBytes
	}
}

// Rewrite re-indexes block blk, which was added with the text old, as
// holding text now (a retention rule pruned its raw text): the old terms'
// postings of the block go, the new ones are put in block order.
func (x *Index) Rewrite(blk int, old, text string) {
	if blk < 0 || blk >= len(x.docLen) {
		return
	}
	at := func(ps []posting) (int, bool) {
		i := sort.Search(len(ps), func(i int) bool { return int(ps[i].block) >= blk })
		return i, i < len(ps) && int(ps[i].block) == blk
	}
	seen := map[string]bool{}
	for _, t := range Terms(old) {
		if seen[t] {
			continue
		}
		seen[t] = true
		ps := x.postings[t]
		if i, ok := at(ps); ok {
			x.bytes -= postingBytes
			if len(ps) == 1 {
				delete(x.postings, t)
				x.bytes -= termBytes + int64(len(t))
			} else {
				x.postings[t] = append(ps[:i:i], ps[i+1:]...)
				x.rareCross(t, len(ps), len(ps)-1, -1)
			}
		}
	}
	terms := Terms(text)
	tf := map[string]int{}
	for _, t := range terms {
		tf[t]++
	}
	for t, n := range tf {
		ps, ok := x.postings[t]
		if !ok {
			x.bytes += termBytes + int64(len(t))
		}
		i, _ := at(ps)
		x.postings[t] = slices.Insert(ps, i, posting{block: int32(blk), tf: uint16(min(n, math.MaxUint16))})
		x.bytes += postingBytes
		x.rareCross(t, len(ps), len(ps)+1, int32(blk))
	}
	x.rare[blk] = x.countRare(tf)
	x.open[blk] = endsOpen(text)
	l := min(len(terms), math.MaxUint16)
	x.total += int64(l) - int64(x.docLen[blk])
	x.docLen[blk] = uint16(l)
	x.countShingles(x.blockTerms[blk], -1)
	x.bytes -= termListBytes(x.blockTerms[blk])
	x.blockTerms[blk] = termHashes(terms)
	x.forgetRecur(blk)
	x.countShingles(x.blockTerms[blk], 1)
	x.bytes += termListBytes(x.blockTerms[blk])
	x.countCase(contentWords(old), -1)
	words := contentWords(text)
	x.countCase(words, 1)
	if x.sem != nil {
		x.bytes += x.sem.rewrite(blk, words)
	}
}
