package lens

import (
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/glove"
	"github.com/megacontext/megacontext/memory/qvec"
)

// Semantic is an index's GloVe channel (memory/glove): the history's words
// that have a vector, bucketed by the vectors' clusters so that a
// question's word finds its near neighbours among them without scanning
// them all, and each block's SIF-weighted sentence vector. It grows with
// the index (Index.Add); a question reads it (SoftTerms, Similar).
type Semantic struct {
	vec *glove.Vectors
	// termPos maps an index term to its position in terms.
	termPos map[string]int32
	// terms are the history's terms in order of first occurrence.
	terms []semTerm
	// termVecs holds each term's int8 vector (Dim values, in the order of
	// terms; zeros without one) and termScales the scale that makes it a
	// unit vector: a question's word is compared with every history term
	// (Cover), which reads them in order here rather than all over the
	// vectors' file.
	termVecs   []int8
	termScales []float32
	// buckets lists, per cluster, the positions of the terms whose vector
	// falls in it (only terms seen in lower case: not names).
	buckets [][]int32
	// blockVecs holds each block's SIF vector as Dim int8 values;
	// blockScale[b] turns block b's values into its unit vector (0: the
	// block has no word with a vector).
	blockVecs  []int8
	blockScale []float32
	// blockWords holds each block's words with a vector (vague ones left
	// out), one per vector: what Kin compares, read at ingest rather than
	// from the text of each of a gathering question's candidates.
	blockWords [][]semWord
	// scratch is reused by Add (Add is not concurrent).
	scratch []float32
}

// semTerm is one history term of the semantic channel.
type semTerm struct {
	text string
	id   glove.ID
	// hash is the text's TermHash.
	hash uint32
	// has reports that the term's first surface form has a vector.
	has bool
	// lower reports that the term occurred in lower case (a name occurs
	// capitalized only: its neighbours are other names, never a paraphrase).
	lower bool
}

// semWord is a word of a block with a vector: its term's position in
// terms, and the vector of its own surface form.
type semWord struct {
	pos int32
	id  glove.ID
}

// semWordBytes is the memory of a block's semWord; wordsBytes that of a
// block's list of them.
const semWordBytes = 8

func wordsBytes(ws []semWord) int64 { return 24 + semWordBytes*int64(len(ws)) }

// vectorWords returns the words of words (whose terms learn has recorded)
// that have a vector and are not vague, one per vector, in order.
func (s *Semantic) vectorWords(words []word) []semWord {
	var out []semWord
	for _, w := range words {
		if vague[w.term] {
			continue
		}
		id, ok := s.vec.Lookup(w.surface)
		if !ok || slices.ContainsFunc(out, func(x semWord) bool { return x.id == id }) {
			continue
		}
		out = append(out, semWord{s.termPos[w.term], id})
	}
	return out
}

// SoftOptions tune SoftTerms.
type SoftOptions struct {
	// Threshold is the least cosine similarity a neighbour needs.
	Threshold float64
	// PerWord caps the neighbours each question word or phrase brings.
	PerWord int
	// Probe is how many clusters are searched per word.
	Probe int
	// Weight scales the neighbours' weights: a neighbour at similarity s
	// weighs Weight * (s-Threshold)/(1-Threshold), at least MinWeight.
	Weight, MinWeight float64
}

// DefaultSoftOptions are the options tuned with `megacontext eval` on the
// dev seeds (see README).
var DefaultSoftOptions = SoftOptions{Threshold: 0.6, PerWord: 6, Probe: 12, Weight: 0.8, MinWeight: 0.2}

// UseVectors attaches GloVe vectors to an empty index: from then on Add
// also feeds the semantic channel. It panics when the index is not empty.
func (x *Index) UseVectors(v *glove.Vectors) {
	if len(x.docLen) > 0 {
		panic("lens: UseVectors on a non-empty index")
	}
	if v == nil {
		x.sem = nil
		return
	}
	x.sem = &Semantic{vec: v, termPos: map[string]int32{}, buckets: make([][]int32, v.Clusters()), scratch: make([]float32, v.Dim())}
}

// Semantic returns the index's semantic channel, nil without vectors.
func (x *Index) Semantic() *Semantic { return x.sem }

// sifWeight is the smooth inverse frequency weight of the word of
// frequency rank r: a/(a+p) with p estimated by Zipf's law (0.1/(r+1))
// and a = 1e-3, so that "the" weighs 0.01 and a rank-1000 word 0.9.
func sifWeight(r glove.ID) float32 {
	rr := float32(r) + 1
	return rr / (rr + 100)
}

// add feeds one block's words (each word's index term and lower-case
// surface form) to the channel and returns the approximate bytes it took.
func (s *Semantic) add(words []word) (bytes int64) {
	dim := s.vec.Dim()
	bytes = s.learn(words)
	start := len(s.blockVecs)
	s.blockVecs = slices.Grow(s.blockVecs, dim)[:start+dim]
	s.blockScale = append(s.blockScale, 0)
	s.setVector(start/dim, s.sum(words))
	ws := s.vectorWords(words)
	s.blockWords = append(s.blockWords, ws)
	return bytes + int64(dim) + 4 + wordsBytes(ws)
}

// learn records the terms of words not seen before, and the clusters of
// those first seen in lower case; it returns the bytes they took.
func (s *Semantic) learn(words []word) (bytes int64) {
	for _, w := range words {
		p, ok := s.termPos[w.term]
		if !ok {
			t := semTerm{text: w.term, hash: TermHash(w.term)}
			t.id, t.has = s.vec.Lookup(w.surface)
			p = int32(len(s.terms))
			s.termPos[w.term] = p
			s.terms = append(s.terms, t)
			s.appendTermVec(t)
			bytes += semTermBytes + int64(s.vec.Dim()) + 4
		}
		t := &s.terms[p]
		if !w.capital && !t.lower {
			t.lower = true
			if t.has {
				c := s.vec.Cluster(t.id)
				s.buckets[c] = append(s.buckets[c], p)
				bytes += 4
			}
		}
	}
	return bytes
}

// appendTermVec appends the vector of t, a new term, to termVecs.
func (s *Semantic) appendTermVec(t semTerm) {
	dim := s.vec.Dim()
	n := len(s.termVecs)
	s.termVecs = slices.Grow(s.termVecs, dim)[:n+dim]
	var scale float32
	if t.has {
		var row []int8
		row, scale = s.vec.Row(t.id)
		copy(s.termVecs[n:], row)
	} else {
		clear(s.termVecs[n:])
	}
	s.termScales = append(s.termScales, scale)
}

// termRow returns term p's int8 vector and the scale that makes it a unit
// vector (as glove.Vectors.Row).
func (s *Semantic) termRow(p int) ([]int8, float32) {
	dim := s.vec.Dim()
	return s.termVecs[p*dim : (p+1)*dim : (p+1)*dim], s.termScales[p]
}

// sum returns the SIF-weighted sum of the vectors of words (in scratch),
// nil when none has a vector.
func (s *Semantic) sum(words []word) []float32 {
	if !s.sumInto(s.scratch, words) {
		return nil
	}
	return s.scratch
}

// sumInto sets acc to the SIF-weighted sum of the vectors of words and
// reports whether any has one.
func (s *Semantic) sumInto(acc []float32, words []word) bool {
	clear(acc)
	any := false
	for _, w := range words {
		id, ok := s.vec.Lookup(w.surface)
		if !ok {
			continue
		}
		row, sc := s.vec.Row(id)
		wt := sifWeight(id) * sc
		for i, v := range row {
			acc[i] += wt * float32(v)
		}
		any = true
	}
	return any
}

// setVector stores acc, the weighted sum of block b's word vectors (nil:
// none), as b's unit vector in int8.
func (s *Semantic) setVector(b int, acc []float32) {
	dim := s.vec.Dim()
	row := s.blockVecs[b*dim : (b+1)*dim]
	var scale float32
	if acc != nil && qvec.Normalize(acc) {
		var m float32
		for _, v := range acc {
			m = max(m, float32(math.Abs(float64(v))))
		}
		scale = m / 127
		for i, v := range acc {
			row[i] = int8(math.Round(float64(v / scale)))
		}
	} else {
		clear(row)
	}
	s.blockScale[b] = scale
}

// rewrite replaces block b's sentence vector by that of words (the text
// that replaced the block's: a pruned block's). The terms the old text
// brought stay known: they only widen the neighbours a question may find,
// each still scored by the BM25 postings, which Rewrite took back.
func (s *Semantic) rewrite(b int, words []word) (bytes int64) {
	if b < 0 || b >= len(s.blockScale) {
		return 0
	}
	bytes = s.learn(words)
	s.setVector(b, s.sum(words))
	ws := s.vectorWords(words)
	bytes += wordsBytes(ws) - wordsBytes(s.blockWords[b])
	s.blockWords[b] = ws
	return bytes
}

// truncate takes the channel back to its first n blocks' vectors and
// returns the bytes that freed. The terms the dropped blocks brought stay
// known (see rewrite).
func (s *Semantic) truncate(n int) (bytes int64) {
	if n < 0 || n >= len(s.blockScale) {
		return 0
	}
	dim := s.vec.Dim()
	dropped := len(s.blockScale) - n
	for _, ws := range s.blockWords[n:] {
		bytes += wordsBytes(ws)
	}
	clear(s.blockWords[n:])
	s.blockVecs = s.blockVecs[:n*dim]
	s.blockScale = s.blockScale[:n]
	s.blockWords = s.blockWords[:n]
	return bytes + int64(dropped)*(int64(dim)+4)
}

// semTermBytes is the approximate memory of one term of the channel: its
// map entry and its record.
const semTermBytes = 96

// word is one word of a text: its index term, its lower-case surface form,
// whether it was capitalized and whether it opened a sentence.
type word struct {
	term, surface   string
	capital, opener bool
}

// contentWords lists the words of text that carry content (no stopwords,
// no single letters, no codes): each with its index term.
func contentWords(text string) []word {
	var out []word
	opener := true
	for _, raw := range strings.Fields(text) {
		start := opener
		opener = strings.ContainsAny(raw[len(raw)-1:], ".!?:")
		f := strings.TrimFunc(raw, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		if f == "" || strings.ContainsAny(f, "-_") || strings.IndexFunc(f, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' && r != '’' }) >= 0 {
			continue
		}
		lower := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(f, "'s"), "’s"))
		if utf8.RuneCountInString(lower) < 2 || gist.IsStopword(lower) || strings.Contains(lower, "'") {
			continue
		}
		r, _ := utf8.DecodeRuneInString(f)
		out = append(out, word{term: Stem(lower), surface: lower, capital: unicode.IsUpper(r), opener: start})
	}
	return out
}

// vague words name nothing in particular: their neighbours are other
// vague words ("everyone" is near "something"), never a paraphrase. They
// neither probe nor answer.
var vague = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`everyone everybody everything someone somebody something anyone anybody
anything nobody nothing thing things stuff kind sort way ways lot lots bit part whatever whoever
somewhere anywhere everywhere nowhere really actually maybe perhaps probably certainly right left
today tomorrow yesterday time times day days week weeks year years ago now then again still even
back around away hard easy good bad great fine little big small new old first last next other
another same different`) {
		m[Stem(w)] = true
	}
	return m
}()

// SoftTerms returns the history terms whose vectors are near a word of the
// question (or a pair of adjacent words: "in charge" is near "boss"),
// weighted by similarity; the index's BM25 weighs them by rarity. Words the
// question capitalizes mid-sentence (names) bring nothing, nor do terms the
// question holds itself.
func (s *Semantic) SoftTerms(question string, o SoftOptions) []Term {
	if s == nil || len(s.terms) == 0 {
		return nil
	}
	words := contentWords(question)
	own := map[string]bool{}
	for _, w := range words {
		own[w.term] = true
	}
	dim := s.vec.Dim()
	var probes [][]float32
	var prev []float32
	for i, w := range words {
		if (w.capital && i > 0) || vague[w.term] {
			prev = nil
			continue
		}
		id, ok := s.vec.Lookup(w.surface)
		if !ok {
			prev = nil
			continue
		}
		v := make([]float32, dim)
		s.vec.Unit(id, v)
		probes = append(probes, v)
		if prev != nil {
			pair := make([]float32, dim)
			for j := range pair {
				pair[j] = prev[j] + v[j]
			}
			if qvec.Normalize(pair) {
				probes = append(probes, pair)
			}
		}
		prev = v
	}
	best := map[string]float64{}
	var order []string
	add := func(t string, w float64) {
		if old, ok := best[t]; !ok {
			order = append(order, t)
			best[t] = w
		} else if w > old {
			best[t] = w
		}
	}
	var scratch []probeCand
	for _, q := range probes {
		scratch = s.probe(q, o, own, scratch, add)
	}
	out := make([]Term, len(order))
	for i, t := range order {
		out[i] = Term{Text: t, Weight: best[t]}
	}
	return out
}

// probeCand is a history term near a probe vector.
type probeCand struct {
	p   int32
	sim float64
}

// probe calls add with the history terms nearest the unit vector q (at
// most o.PerWord, each at least o.Threshold, none in skip or vague), each
// with its weight by similarity. cands is scratch space, returned for reuse.
func (s *Semantic) probe(q []float32, o SoftOptions, skip map[string]bool, cands []probeCand, add func(term string, w float64)) []probeCand {
	clusters := s.vec.NearestClusters(q, o.Probe, make([]int, 0, o.Probe))
	cands = cands[:0]
	for _, c := range clusters {
		for _, p := range s.buckets[c] {
			t := &s.terms[p]
			// The similarity first: most terms fail it, and it costs less
			// than looking their text up.
			row, scale := s.termRow(int(p))
			if sim := float64(glove.CosineRow(row, scale, q)); sim >= o.Threshold && !skip[t.text] && !vague[t.text] {
				cands = append(cands, probeCand{p, sim})
			}
		}
	}
	slices.SortFunc(cands, func(a, b probeCand) int {
		if a.sim != b.sim {
			if a.sim > b.sim {
				return -1
			}
			return 1
		}
		return int(a.p - b.p)
	})
	for _, c := range cands[:min(len(cands), o.PerWord)] {
		add(s.terms[c.p].text, max(o.MinWeight, o.Weight*(c.sim-o.Threshold)/(1-o.Threshold)))
	}
	return cands
}

// Near returns the history terms whose vectors are near those of terms,
// themselves history terms (the nouns a thesaurus found a question to
// describe: "manager" brings "boss"), each weighted by its similarity
// times the weight of the term it is near. Terms of skip, and terms
// without a vector or never seen in lower case (names), bring nothing.
func (s *Semantic) Near(terms []Term, o SoftOptions, skip map[string]bool) []Term {
	if s == nil || len(terms) == 0 {
		return nil
	}
	own := make(map[string]bool, len(skip)+len(terms))
	for t := range skip {
		own[t] = true
	}
	for _, t := range terms {
		own[t.Text] = true
	}
	best := map[string]float64{}
	var order []string
	q := make([]float32, s.vec.Dim())
	var scratch []probeCand
	for _, t := range terms {
		p, ok := s.termPos[t.Text]
		if !ok {
			continue
		}
		st := s.terms[p]
		if !st.has || !st.lower || vague[st.text] {
			continue
		}
		s.vec.Unit(st.id, q)
		scratch = s.probe(q, o, own, scratch, func(n string, w float64) {
			w *= t.Weight
			if old, ok := best[n]; !ok {
				order = append(order, n)
				best[n] = w
			} else if w > old {
				best[n] = w
			}
		})
	}
	out := make([]Term, len(order))
	for i, t := range order {
		out[i] = Term{Text: t, Weight: best[t]}
	}
	return out
}

// Similar returns the cosine similarity between the question's SIF vector
// and each of the most similar blocks in [0, limit) that skip does not
// reject: at most top of them, each at least floor.
func (s *Semantic) Similar(question string, limit, top int, floor float64, skip func(b int) bool) map[int]float64 {
	if s == nil || len(s.blockScale) == 0 {
		return nil
	}
	dim := s.vec.Dim()
	q := make([]float32, dim)
	if !s.sumInto(q, contentWords(question)) || !qvec.Normalize(q) {
		return nil
	}
	type hit struct {
		b   int
		sim float32
	}
	hits := make([]hit, 0, top+1)
	n := min(limit, len(s.blockScale))
	for b := 0; b < n; b++ {
		sc := s.blockScale[b]
		if sc == 0 {
			continue
		}
		row := s.blockVecs[b*dim : (b+1)*dim]
		var d0, d1 float32
		for i := 0; i+1 < dim; i += 2 {
			d0 += q[i] * float32(row[i])
			d1 += q[i+1] * float32(row[i+1])
		}
		if dim%2 == 1 {
			d0 += q[dim-1] * float32(row[dim-1])
		}
		sim := (d0 + d1) * sc
		if float64(sim) < floor || (len(hits) == top && sim <= hits[top-1].sim) || (skip != nil && skip(b)) {
			continue
		}
		i := len(hits)
		if i < top {
			hits = append(hits, hit{})
		} else {
			i = top - 1
		}
		for i > 0 && hits[i-1].sim < sim {
			hits[i] = hits[i-1]
			i--
		}
		hits[i] = hit{b, sim}
	}
	out := make(map[int]float64, len(hits))
	for _, h := range hits {
		out[h.b] = float64(h.sim)
	}
	return out
}

// Rank weighs terms, history terms that a thesaurus proposed for a word
// of a question (its definition, its kin), by their GloVe similarity to
// that word: each term's weight is multiplied by its cosine to it, divided
// by full (and at most 1); a term below floor, or without a vector, is
// dropped. The thesaurus says what may be related, the vectors how close.
// Without a vector for word, terms are returned as they are.
func (s *Semantic) Rank(word string, terms []Term, floor, full float64) []Term {
	if s == nil || len(terms) == 0 {
		return terms
	}
	id, ok := s.vec.Lookup(strings.ToLower(word))
	if !ok {
		return terms
	}
	out := make([]Term, 0, len(terms))
	for _, t := range terms {
		p, ok := s.termPos[t.Text]
		if !ok || !s.terms[p].has {
			continue
		}
		sim := float64(s.vec.Cosine(s.terms[p].id, id))
		if sim < floor {
			continue
		}
		out = append(out, Term{Text: t.Text, Weight: t.Weight * min(1, sim/full)})
	}
	return out
}

// Words calls f, for each history term from position from on (in order of
// first occurrence: terms are never dropped) that occurred in lower case
// (no name), with the term and its vector's word ("" without a vector);
// it returns how many terms the channel holds, where the next call may
// start. It lets a caller link the history's words as they come (the
// engine's word links: a word WordNet lacks, to the nouns it has).
func (s *Semantic) Words(from int, f func(term, word string)) int {
	if s == nil {
		return 0
	}
	for p := max(from, 0); p < len(s.terms); p++ {
		t := &s.terms[p]
		switch {
		case !t.lower:
		case t.has:
			f(t.text, s.vec.Word(t.id))
		default:
			f(t.text, "")
		}
	}
	return len(s.terms)
}

// Vectors returns the channel's GloVe vectors.
func (s *Semantic) Vectors() *glove.Vectors {
	if s == nil {
		return nil
	}
	return s.vec
}
