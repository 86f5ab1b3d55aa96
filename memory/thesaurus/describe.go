package thesaurus

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"unicode"

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
// "baptism") and keeps those the history uses, of the kind the question
// asks for (askedKinds).

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
	// again maps a question word said a second time ("my father's father")
	// to its normalized form: only descriptions that say it twice match it.
	again := map[int]string{}
	said := map[string]bool{}
	for _, tk := range tokenize(question) {
		if !content(tk.word) || t.isGeneric(tk.word) {
			continue
		}
		q := nq
		nq++
		if n := t.norm(tk.word); said[n] {
			again[q] = n
			continue
		} else {
			said[n] = true
		}
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
				i := bagSyn(p)
				if s := rw * fieldWeight[bagField(p)]; s > cur[i] {
					cur[i] = s
				}
			}
		}
		for i, s := range cur {
			totals[i] += s
		}
	}
	for _, w := range again {
		ps := t.bag[w]
		if len(ps) == 0 || len(ps) > maxPostings {
			continue
		}
		rw := math.Log(nSyn / float64(len(ps)))
		for _, p := range ps {
			if bagTwice(p) {
				totals[bagSyn(p)] += rw
			}
		}
	}
	// A synset's hyponyms inherit a share of its score. Only nouns of the
	// kind the question asks for answer it (kindOK).
	kinds := t.askedKinds(question)
	kindOK := func(i int) bool { return kinds == nil || kinds[t.syn[noun][i].lex] }
	best := map[int]float64{}
	for i, total := range totals {
		if total > best[i] && kindOK(i) {
			best[i] = total
		}
		if total*describeHyponym >= describeMinScore {
			for _, h := range t.hypo[i] {
				if s := total * describeHyponym; s > best[int(h)] && kindOK(int(h)) {
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

// What a description describes. "Who trims my hair?" asks for a person
// ("barber"), never for the hair or the trimming tool that WordNet
// describes in the same words; "the gadget that throws films onto the
// wall" asks for an artifact, "my sister's little boy" for a person. The
// kind is a WordNet lexicographer file: the question's interrogative
// pronoun says it, else the head nouns of its noun phrases do.

// personPronouns are the interrogative pronouns that ask for a person
// (closed-class English words).
var personPronouns = map[string]bool{"who": true, "whom": true, "whose": true}

// determiners open the noun phrase whose head says what a description
// describes (closed-class English words). "of" opens one too: "the jar of
// bubbling dough" may ask for the jar or for the dough.
var determiners = map[string]bool{"the": true, "a": true, "an": true, "my": true, "our": true,
	"your": true, "his": true, "her": true, "their": true, "this": true, "that": true, "of": true}

// askedKinds returns the lexicographer files of the nouns a question asks
// for: noun.person alone for "who", else those of the head nouns of its
// noun phrases (headKinds: a determiner, then words up to the last noun of
// the first run of nouns that are no possessives: "my sister's little
// boy" is a boy, "my young tomato plants" are plants). It returns nil (any
// kind) when neither says, or a head is as vague as "thing".
func (t *Thesaurus) askedKinds(question string) map[uint8]bool {
	words := strings.Fields(strings.ToLower(question))
	clean := func(w string) string {
		return strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' && r != '’' })
	}
	for _, w := range words {
		if personPronouns[clean(w)] {
			return map[uint8]bool{lexPerson: true}
		}
	}
	var kinds map[uint8]bool
	for i, w := range words {
		if !determiners[clean(w)] {
			continue
		}
		lex, ok := t.headKinds(words[i+1:min(len(words), i+5)], clean)
		if !ok {
			continue
		}
		if lex == nil {
			return nil // a head as vague as "thing": any kind
		}
		if kinds == nil {
			kinds = map[uint8]bool{}
		}
		for _, l := range lex {
			kinds[l] = true
		}
	}
	return kinds
}

// headKinds returns the lexicographer files of the head noun among the
// words after a determiner (nil for a generic head such as "thing"), and
// whether there is one. The head is the last of the first run of nouns (a
// compound names its kind last: "tomato plants"); its kinds are its first
// sense's, and its second sense's when the tagged corpus uses that at
// least half as often ("plant": a factory 63 times, a flora 37; a sense
// among WordNet's top nouns, as the flora is, allows any kind).
func (t *Thesaurus) headKinds(words []string, clean func(string) string) ([]uint8, bool) {
	var head string
	for _, raw := range words {
		w := clean(raw)
		if strings.HasSuffix(w, "'s") || strings.HasSuffix(w, "’s") || strings.HasSuffix(w, "s'") {
			if head != "" {
				break
			}
			continue // a possessive: the head follows
		}
		b := t.base(w, noun)
		ab := t.base(w, adj)
		if b == "" || !content(w) {
			if ab != "" && head == "" {
				continue // "little", "new": the head follows
			}
			break
		}
		if ab != "" {
			na, aa := t.tags[b+"/n"], t.tags[ab+"/a"]
			if int(aa[0])+int(aa[1]) > int(na[0])+int(na[1]) {
				if head != "" {
					break
				}
				continue // mostly an adjective
			}
		}
		if head != "" && !t.mostlyNoun(w, b) {
			break // "the machine cuts": a verb ends the compound
		}
		head = b
		if len(t.index[noun][b]) == 0 {
			break
		}
	}
	if head == "" {
		return nil, false
	}
	refs := t.index[noun][head]
	if len(refs) == 0 {
		return nil, false
	}
	first := t.syn[noun][refs[0].idx()].lex
	if first == lexTops || generic[head] {
		return nil, true
	}
	out := []uint8{first}
	if tg := t.tags[head+"/n"]; len(refs) > 1 && 2*int(tg[1]) >= int(tg[0]) && tg[1] > 0 {
		l := t.syn[noun][refs[1].idx()].lex
		if l == lexTops {
			return nil, true // as vague as the first sense's "thing"
		}
		out = append(out, l)
	}
	return out, true
}

// isGeneric reports whether w, or a base form of it ("looks": "look"),
// carries little topic of its own (generic).
func (t *Thesaurus) isGeneric(w string) bool {
	if generic[w] {
		return true
	}
	for _, b := range t.bases(w) {
		if b != "" && generic[b] {
			return true
		}
	}
	return false
}

// The dictionary the other way. A person names a thing one way when they
// ask about it and described it another way when they first brought it up
// ("the puppy" for "our new beagle", "my father-in-law" for "my wife's
// dad"): the question's nouns are defined by WordNet in words the history
// may hold. Define returns those words.

// Definition parameters, tuned with `megacontext eval` on the dev seeds and
// the memory package's own described-request tests (see README).
const (
	// defineWeight weighs a word of a question noun's first sense's gloss
	// against a question word; later senses weigh defineDecay times less
	// each.
	defineWeight = 0.3
	defineDecay  = 0.6
	// defineSenses is the most senses of a noun whose glosses count, and
	// defineMaxSenses the most senses a noun may have at all (a word with
	// more is too vague to define; "back", the body's, has 10: only its
	// first defineSenses count).
	defineSenses    = 3
	defineMaxSenses = 12
	// defineKin weighs a kin of a question noun (a hyponym of its
	// hypernym, down to defineKinDepth levels) against a question word.
	defineKin      = 0.5
	defineKinDepth = 3
	// defineKinMax bounds the synsets one hypernym's tree is walked for.
	defineKinMax = 500
)

// Define returns, for the question's nouns, the words of their WordNet
// glosses (the first defineSenses senses of each, weighted by sense rank)
// and their kin (see kin) that has reports the history holds. Nouns the
// question holds itself, generic words and words that are mostly verbs or
// adjectives bring nothing. rank, when not nil, reweighs each noun's kin
// (by their similarity to the noun: lens.Semantic.Rank).
func (t *Thesaurus) Define(question string, has func(term string) bool, rank func(noun string, terms []lens.Term) []lens.Term) []lens.Term {
	if t == nil || has == nil {
		return nil
	}
	own := map[string]bool{}
	for _, term := range lens.Terms(question) {
		own[term] = true
	}
	var lists [][]lens.Term
	for _, tk := range tokenize(question) {
		if !content(tk.word) || t.isGeneric(tk.word) {
			continue
		}
		b := t.base(tk.word, noun)
		if b == "" || generic[b] {
			continue
		}
		// The kin first, ranked apart: a dog has hundreds of kinds, and
		// only rank says which are near a puppy.
		var kin []lens.Term
		kinSeen := map[string]bool{}
		refs := t.index[noun][b]
		if len(refs) == 0 || len(refs) > defineMaxSenses || !t.mostlyNoun(tk.word, b) {
			continue
		}
		// Its kin: the other kinds of what it is a kind of ("beagle" and
		// "puppy" are both dogs), first sense only.
		first := &t.syn[noun][refs[0].idx()]
		for _, h := range first.hyper {
			hs := &t.syn[noun][h.idx()]
			if hs.lex == lexTops || hs.nHypo > maxHypo {
				continue
			}
			t.kin(h.idx(), defineKinDepth, func(i int) {
				for _, l := range t.syn[noun][i].words {
					if strings.ContainsAny(l, "_-") {
						continue
					}
					w := t.lemmaTerm(l)
					if w == "" || own[w] || kinSeen[w] || !has(w) {
						continue
					}
					kinSeen[w] = true
					kin = append(kin, lens.Term{Text: w, Weight: defineKin})
				}
			})
		}
		if rank != nil {
			kin = rank(tk.word, kin)
		}
		lists = append(lists, kin)
		// Then the definitions, which need no rank: a gloss is what the
		// noun is, in few words.
		weight := map[string]float64{}
		var order []string
		sw := defineWeight
		for _, r := range refs[:min(len(refs), defineSenses)] {
			for _, id := range t.gloss[r.idx()] {
				w := t.glossWord[id]
				if len(w) < 3 || own[w] || generic[w] || !has(w) {
					continue
				}
				if old, ok := weight[w]; !ok {
					order = append(order, w)
					weight[w] = sw
				} else if sw > old {
					weight[w] = sw
				}
			}
			sw *= defineDecay
		}
		terms := make([]lens.Term, len(order))
		for i, w := range order {
			terms[i] = lens.Term{Text: w, Weight: weight[w]}
		}
		lists = append(lists, terms)
	}
	return lens.Merge(lists...)
}

// mostlyNoun reports whether w (noun base form b) is used as a noun at
// least as often as a verb or an adjective in WordNet's tagged corpus.
func (t *Thesaurus) mostlyNoun(w, b string) bool {
	nt := t.tags[b+"/n"]
	n := int(nt[0]) + int(nt[1])
	for _, p := range []int{verb, adj} {
		if ob := t.base(w, p); ob != "" {
			ot := t.tags[ob+"/"+string(posChar[p])]
			if int(ot[0])+int(ot[1]) > n {
				return false
			}
		}
	}
	return true
}

// kin calls f with the hyponyms of noun synset i down to depth levels
// (at most defineKinMax of them, breadth first).
func (t *Thesaurus) kin(i, depth int, f func(int)) {
	level := []int32{int32(i)}
	n := 0
	for d := 0; d < depth && len(level) > 0; d++ {
		var next []int32
		for _, j := range level {
			for _, h := range t.hypo[j] {
				if n++; n > defineKinMax {
					return
				}
				f(int(h))
				next = append(next, h)
			}
		}
		level = next
	}
}
