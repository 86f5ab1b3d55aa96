package thesaurus

import (
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/lens"
)

// Weights of the extra terms, relative to the question's own terms (1).
const (
	WeightPhrase   = 0.6 // lemmas of a multiword lemma in the question
	WeightSynonym  = 0.5 // lemmas of a word's first sense
	WeightSense2   = 0.4 // lemmas of a word's second sense
	WeightGloss    = 0.5 // a noun whose description names both words of a phrase
	WeightHypernym = 0.3 // lemmas of a noun's hypernym
	MaxTerms       = 24  // at most this many extra terms per question
)

const (
	maxSenses   = 20 // words with more senses than this are too vague to expand
	maxHypo     = 60 // hypernyms with more hyponyms than this are too general
	maxPostings = 3000
	lexTops     = 3  // noun.Tops: entity, object, ...
	lexField    = 9  // noun.cognition: fields of study, among others
	lexPerson   = 18 // noun.person
)

// generic words carry little topic of their own: they are not expanded.
var generic = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`ask asked answer call called come day days did do does done
ever find found first gave give go going good great happen happened hear heard help idea kind know
knew last later least let lot lots look looked love mention mentioned mind need needed never next
number part people person place put really recall recommend recommended remember remind reminded
right said say saw see seem start started still stuff suggest suggested talk talked tell thing
things think thought time times told took try tried want wanted week weekend weeks went work year
years ago today yesterday tomorrow recent recently old big small little lately earlier before
name called say bit`) {
		m[w] = true
	}
	return m
}()

// cands collects related lemmas with weights, keeping the highest weight.
type cands struct {
	w     map[string]float64 // term -> weight
	order []string
	lw    map[string]float64 // lemma (spaces) -> weight, for Related
	lord  []string
	skip  map[string]bool // terms of the question itself
}

func newCands(skip map[string]bool) *cands {
	return &cands{w: map[string]float64{}, lw: map[string]float64{}, skip: skip}
}

func (c *cands) addTerm(term string, w float64) {
	if c.skip[term] {
		return
	}
	if old, ok := c.w[term]; !ok {
		c.order = append(c.order, term)
		c.w[term] = w
	} else if w > old {
		c.w[term] = w
	}
}

func (c *cands) addLemma(lemma string, w float64) {
	lemma = strings.NewReplacer("_", " ", "-", " ").Replace(lemma)
	if old, ok := c.lw[lemma]; !ok {
		c.lord = append(c.lord, lemma)
		c.lw[lemma] = w
	} else if w > old {
		c.lw[lemma] = w
	}
}

// addWord adds a one-word lemma and its terms.
func (c *cands) addWord(l string, w float64) {
	c.addLemma(l, w)
	for _, term := range lens.Terms(l) {
		// Stemming a rare word can land on a common one (rede -> red,
		// tone -> ton): keep short stems exact.
		if len(term) > 3 || term == l {
			c.addTerm(term, w)
		}
	}
}

// addSynset adds the lemmas of s other than the words in self. One-word
// lemmas become terms; multiword lemmas add their head word (the last) only
// when the synset has no other one-word lemma, so that "fridge" still
// reaches "refrigerator" (electric_refrigerator) without "idiot box" adding
// "box" to "TV".
func (c *cands) addSynset(s *synset, isNoun bool, w float64, self map[string]bool) {
	single := 0
	for _, l := range s.words {
		if !self[l] && !strings.ContainsAny(l, "_-") {
			single++
		}
	}
	for _, l := range s.words {
		if self[l] {
			continue
		}
		if !strings.ContainsAny(l, "_-") {
			c.addWord(l, w)
			continue
		}
		c.addLemma(l, w)
		if single == 0 && isNoun {
			parts := lens.Terms(strings.NewReplacer("_", " ", "-", " ").Replace(l))
			if len(parts) > 0 {
				c.addTerm(parts[len(parts)-1], w*0.8)
			}
		}
	}
}

type token struct {
	word string
	brk  bool // punctuation (not just space) before it
}

func tokenize(text string) []token {
	var out []token
	brk := false
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			w := strings.ToLower(string(cur))
			w = strings.TrimSuffix(strings.TrimSuffix(w, "'s"), "’s")
			w = strings.Trim(w, "'’")
			if w != "" {
				out = append(out, token{word: w, brk: brk})
			}
			cur = cur[:0]
			brk = false
		}
	}
	for _, r := range text {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || ((r == '\'' || r == '’') && len(cur) > 0):
			cur = append(cur, r)
		case unicode.IsSpace(r) || r == '-':
			flush()
		default:
			flush()
			brk = true
		}
	}
	flush()
	return out
}

func content(w string) bool {
	if len(w) < 2 || gist.IsStopword(w) {
		return false
	}
	for _, r := range w {
		if unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// Expand returns extra weighted terms for a question: synonyms of its words,
// the lemmas of the multiword lemmas it contains ("heart specialist"), the
// nouns whose WordNet description names both words of a two-word phrase
// ("skin doctor" -> "dermatologist"), and one-level noun hypernyms. Terms
// are lens terms (lower-cased, stemmed), never ones the question already
// has, ordered by descending weight, at most MaxTerms of them.
func (t *Thesaurus) Expand(query string) []lens.Term {
	if t == nil {
		return nil
	}
	c := t.collect(query)
	out := make([]lens.Term, 0, len(c.order))
	for _, term := range c.order {
		out = append(out, lens.Term{Text: term, Weight: c.w[term]})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Weight > out[j].Weight })
	if len(out) > MaxTerms {
		out = out[:MaxTerms]
	}
	return out
}

// Related returns the lemmas (words joined by spaces) that Expand draws its
// terms from for word, which may be a phrase, best first.
func (t *Thesaurus) Related(word string) []string {
	if t == nil {
		return nil
	}
	c := t.collect(word)
	out := append([]string(nil), c.lord...)
	sort.SliceStable(out, func(i, j int) bool { return c.lw[out[i]] > c.lw[out[j]] })
	return out
}

func (t *Thesaurus) collect(query string) *cands {
	skip := map[string]bool{}
	for _, term := range lens.Terms(query) {
		skip[term] = true
	}
	c := newCands(skip)
	toks := tokenize(query)
	done := make([]bool, len(toks))
	for i := 0; i+1 < len(toks); i++ {
		a, b := toks[i], toks[i+1]
		if b.brk || !content(a.word) || !content(b.word) {
			continue
		}
		if t.phrase(c, a.word, b.word) {
			done[i], done[i+1] = true, true
		}
	}
	for i, tk := range toks {
		if done[i] || !content(tk.word) || generic[tk.word] {
			continue
		}
		t.word(c, tk.word)
	}
	return c
}

// bases returns, per part of speech, the base form of w found in WordNet
// ("" if none): irregular forms first, then w itself, then WordNet's
// detachment rules.
func (t *Thesaurus) bases(w string) [numPOS]string {
	var out [numPOS]string
	for p := 0; p < numPOS; p++ {
		out[p] = t.base(w, p)
	}
	return out
}

var detach = [numPOS][][2]string{
	noun: {{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"}},
	verb: {{"s", ""}, {"ies", "y"}, {"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}},
	adj:  {{"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"}},
}

func (t *Thesaurus) base(w string, p int) string {
	if b, ok := t.exc[p][w]; ok {
		if _, ok := t.index[p][b]; ok {
			return b
		}
	}
	if _, ok := t.index[p][w]; ok {
		return w
	}
	for _, r := range detach[p] {
		if strings.HasSuffix(w, r[0]) && len(w) > len(r[0])+1 {
			b := w[:len(w)-len(r[0])] + r[1]
			if _, ok := t.index[p][b]; ok {
				return b
			}
			// stopped -> stop, shopping -> shop
			if r[1] == "" && (r[0] == "ed" || r[0] == "ing") && len(b) > 2 && b[len(b)-1] == b[len(b)-2] {
				if _, ok := t.index[p][b[:len(b)-1]]; ok {
					return b[:len(b)-1]
				}
			}
		}
	}
	return ""
}

// word adds the synonyms (first one or two senses) of the parts of speech
// that w is mostly used as, and the hypernym of its first noun sense.
func (t *Thesaurus) word(c *cands, w string) {
	bs := t.bases(w)
	var freq [numPOS]int
	total, maxFreq := 0, 0
	for p, b := range bs {
		if b == "" {
			continue
		}
		total += len(t.index[p][b])
		tc := t.tags[b+"/"+string(posChar[p])]
		freq[p] = int(tc[0]) + int(tc[1])
		maxFreq = max(maxFreq, freq[p])
	}
	if total == 0 || total > maxSenses {
		return
	}
	firstPOS := true
	for p, b := range bs {
		if b == "" || generic[b] {
			continue
		}
		if maxFreq > 0 && freq[p]*4 < maxFreq {
			continue // a rare use of the word
		}
		if maxFreq == 0 && !firstPOS {
			continue // no evidence: the first part of speech (nouns first) only
		}
		tc := t.tags[b+"/"+string(posChar[p])]
		if p == adj && tc[0] < 3 {
			continue // adjectives' senses are many and fine: only well-attested ones
		}
		firstPOS = false
		refs := t.index[p][b]
		self := map[string]bool{b: true, w: true}
		for k, r := range refs {
			if k == 1 && !(3*int(tc[1]) >= int(tc[0]) || tc[0] <= 1) {
				break // the second sense is rare
			}
			if k == 2 || (p == adj && k == 1) {
				break
			}
			s := &t.syn[p][r.idx()]
			wt := WeightSynonym
			if k == 1 {
				wt = WeightSense2
			}
			c.addSynset(s, p == noun, wt, self)
			if p == noun && k == 0 {
				for _, h := range s.hyper {
					hs := &t.syn[noun][h.idx()]
					if hs.nHypo <= maxHypo && hs.lex != lexTops {
						c.addSynset(hs, true, WeightHypernym, self)
					}
				}
			}
		}
	}
}

// phrase handles two adjacent content words a b: a noun lemma "a_b" adds
// its synsets' lemmas; otherwise nouns whose description names both words
// (or their close relatives) are added. It reports whether the phrase was
// resolved, in which case its words are not expanded on their own.
func (t *Thesaurus) phrase(c *cands, a, b string) bool {
	bb := t.base(b, noun)
	if bb == "" {
		return false
	}
	for _, sep := range []string{"_", "-", ""} {
		l := a + sep + bb
		refs, ok := t.index[noun][l]
		if !ok {
			continue
		}
		self := map[string]bool{l: true, a + "_" + b: true}
		for k, r := range refs {
			if k == 2 {
				break
			}
			wt := WeightPhrase
			if k == 1 {
				wt = WeightSense2
			}
			c.addSynset(&t.syn[noun][r.idx()], true, wt, self)
		}
		return true
	}
	if generic[a] || generic[bb] {
		return false
	}
	ab := t.base(a, noun)
	if ab == "" {
		ab = t.base(a, adj)
	}
	if ab == "" {
		return false
	}
	return t.glossMatch(c, ab, bb)
}

// glossMatch scores noun synsets whose bag holds a word of A (the modifier
// and its relatives) and a different word of B (the head and its
// relatives), and adds the lemmas of the best one or two.
func (t *Thesaurus) glossMatch(c *cands, a, b string) bool {
	A := map[string]float64{}
	B := map[string]float64{}
	put := func(m map[string]float64, lemma string, w float64) {
		for _, part := range splitLemma(lemma) {
			if n := t.norm(part); n != "" && len(n) > 1 && w > m[n] {
				m[n] = w
			}
		}
	}
	put(A, a, 1)
	if refs := t.index[noun][a]; len(refs) > 0 && len(refs) <= maxSenses {
		s := &t.syn[noun][refs[0].idx()]
		for _, l := range s.words {
			put(A, l, 0.8)
		}
		for _, h := range s.holo {
			for _, l := range t.syn[noun][h.idx()].words {
				put(A, l, 0.6)
			}
		}
	} else if refs := t.index[adj][a]; len(refs) > 0 {
		for _, l := range t.syn[adj][refs[0].idx()].words {
			put(A, l, 0.8)
		}
	}
	// The head's relatives are its one-word synonyms and hypernyms: the
	// modifiers of multiword ones ("medical man") would match anything.
	putSingle := func(m map[string]float64, s *synset, w float64) {
		for _, l := range s.words {
			if !strings.ContainsAny(l, "_-") {
				put(m, l, w)
			}
		}
	}
	put(B, b, 1)
	refs := t.index[noun][b]
	if len(refs) > maxSenses {
		return false
	}
	var lexes [2]uint8
	for k, r := range refs {
		if k == 2 {
			break
		}
		s := &t.syn[noun][r.idx()]
		lexes[k] = s.lex
		if k == 0 {
			lexes[1] = s.lex
		}
		putSingle(B, s, 0.8)
		for _, h := range s.hyper {
			if hs := &t.syn[noun][h.idx()]; hs.lex != lexTops {
				putSingle(B, hs, 0.7)
			}
		}
	}
	for w := range A {
		delete(B, w)
	}
	// Synsets of a and b themselves are not answers.
	own := map[int]bool{}
	for _, r := range t.index[noun][a] {
		own[r.idx()] = true
	}
	for _, r := range refs {
		own[r.idx()] = true
	}
	sa := map[int]float64{}
	for w, wt := range A {
		ps := t.bag[w]
		if len(ps) > maxPostings {
			continue
		}
		for _, p := range ps {
			i, s := bagSyn(p), wt*fieldWeight[bagField(p)]
			if s > sa[i] {
				sa[i] = s
			}
		}
	}
	if len(sa) == 0 {
		return false
	}
	score := map[int]float64{}
	for w, wt := range B {
		ps := t.bag[w]
		if len(ps) > maxPostings {
			continue
		}
		for _, p := range ps {
			i := bagSyn(p)
			x, ok := sa[i]
			if !ok || own[i] {
				continue
			}
			// An answer is the same kind of thing as the head: a
			// "skin doctor" is a person, not a branch of medicine.
			if l := t.syn[noun][i].lex; l != lexes[0] && l != lexes[1] {
				continue
			}
			if s := x * wt * fieldWeight[bagField(p)]; s > score[i] {
				score[i] = s
			}
		}
	}
	const minScore = 0.25
	// A person head ("kidney specialist") is also matched through a field
	// of study that the modifier itself names ("nephrology: the branch of
	// medicine concerned with the kidney"), by the field's agent noun, which
	// WordNet may lack ("nephrologist"). Such a match is closer than one
	// through the modifier's relatives only.
	var agents []string
	if lexes[0] == lexPerson {
		agents = t.fieldAgents(a)
	}
	// With an agent, only a person the modifier itself describes (the
	// top score, 1) still counts.
	var ids []int
	for i, s := range score {
		if s >= minScore && (len(agents) == 0 || s >= fieldWeight[fieldOwn]) {
			ids = append(ids, i)
		}
	}
	for _, ag := range agents[:min(len(agents), 2)] {
		c.addWord(ag, WeightGloss)
	}
	if len(ids) == 0 {
		return len(agents) > 0
	}
	sort.Slice(ids, func(x, y int) bool {
		if score[ids[x]] != score[ids[y]] {
			return score[ids[x]] > score[ids[y]]
		}
		return ids[x] < ids[y]
	})
	top := score[ids[0]]
	n := 0
	for _, i := range ids {
		if n == 2 || score[i] < top*0.9 {
			break
		}
		n++
	}
	if n == 2 && len(ids) > 2 && score[ids[2]] >= top*0.9 {
		return false // ambiguous: many equally good matches
	}
	self := map[string]bool{a: true, b: true}
	for k, i := range ids[:n] {
		wt := WeightGloss
		if k == 1 {
			wt = WeightSense2
		}
		c.addSynset(&t.syn[noun][i], true, wt, self)
	}
	return true
}

// agentSuffixes derive the agent noun of a field of study: the one who
// practises nephrology is a nephrologist.
var agentSuffixes = [][2]string{{"ology", "ologist"}, {"iatry", "iatrist"}, {"iatrics", "iatrician"}}

// fieldAgents returns the agent nouns of the fields of study whose own
// description names word itself, when WordNet lacks them (those it has are
// nouns the bag already reaches), in synset order.
func (t *Thesaurus) fieldAgents(word string) []string {
	var out []string
	for _, p := range t.bag[t.norm(word)] {
		if bagField(p) != fieldOwn {
			continue
		}
		s := &t.syn[noun][bagSyn(p)]
		if s.lex != lexField {
			continue
		}
		for _, l := range s.words {
			for _, suf := range agentSuffixes {
				if !strings.HasSuffix(l, suf[0]) || strings.ContainsAny(l, "_-") {
					continue
				}
				ag := strings.TrimSuffix(l, suf[0]) + suf[1]
				if _, ok := t.index[noun][ag]; !ok && !slices.Contains(out, ag) {
					out = append(out, ag)
				}
			}
		}
	}
	return out
}
