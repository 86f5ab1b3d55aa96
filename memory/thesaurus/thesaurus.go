// Package thesaurus bridges the lexical gap between a question and the text
// that answers it ("couch" vs "sofa", "heart specialist" vs "cardiologist")
// with WordNet 3.1, read offline from its database files (`make wordnet`).
//
// Open loads the noun, verb and adjective synsets into compact in-memory
// maps: each synset's lemmas, its hypernyms and part holonyms, and an
// inverted index from the words that describe a noun synset (its lemmas and
// gloss, its hypernyms' lemmas, the glosses of nouns derived from it) to the
// synset. Expand turns a question into extra weighted lens terms.
package thesaurus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/megacontext/megacontext/memory/gist"
	"github.com/megacontext/megacontext/memory/lens"
)

// EnvDir names the environment variable that points Open at a WordNet dict
// folder when no folder is given.
const EnvDir = "MEGACONTEXT_WORDNET_DIR"

// DefaultDir is where `make wordnet` unpacks the database.
const DefaultDir = ".wordnet"

// Parts of speech loaded, in index order.
const (
	noun = iota
	verb
	adj
	numPOS
)

var posName = [numPOS]string{"noun", "verb", "adj"}
var posChar = [numPOS]byte{'n', 'v', 'a'}

// A synset reference packs the part of speech into the top two bits.
type ref uint32

func mkRef(pos int, i int) ref { return ref(uint32(pos)<<30 | uint32(i)) }
func (r ref) pos() int         { return int(r >> 30) }
func (r ref) idx() int         { return int(r & (1<<30 - 1)) }

type synset struct {
	words []string // lemmas, lower case, '_' between words
	hyper []ref    // hypernyms and instance hypernyms (@, @i)
	holo  []ref    // part holonyms (#p), nouns only
	nHypo uint16   // number of hyponyms (~, ~i): how general the synset is
	lex   uint8    // lexicographer file number
	inst  bool     // an instance (a named person, place...): @i
}

// Bag fields: where a word occurs in the description of a noun synset.
const (
	fieldOwn   = iota // the synset's own lemmas and gloss
	fieldHyper        // a hypernym's lemmas
	fieldDeriv        // a derivationally related noun's lemmas and gloss
)

var fieldWeight = [3]float64{1.0, 0.9, 0.7}

// Thesaurus is an in-memory WordNet. It is read-only after Open and safe
// for concurrent use.
type Thesaurus struct {
	syn   [numPOS][]synset
	index [numPOS]map[string][]ref // lemma -> synsets, most frequent sense first
	tags  map[string][2]uint16     // lemma+"/"+pos -> tag counts of senses 1 and 2
	exc   [numPOS]map[string]string
	bag   map[string][]uint32 // normalized word -> noun synset postings (bagSyn, bagField, bagTwice)
	hypo  [][]int32           // noun synset -> its hyponyms (not instances)

	derivs [][]int // load time only: derivationally related nouns (+)

	// gloss holds each noun synset's gloss words (normalized, as indexes
	// into glossWord), for Define.
	gloss     [][]int32
	glossWord []string

	// terms caches lemmaTerm: lemma -> its lens term ("" for none); safe
	// for concurrent use, as the rest is read-only after Open.
	terms sync.Map
	// nv holds the noun lemmas by GloVe cluster for LinkWord, per set of
	// vectors, built on first use.
	nv nounVecCache
}

// Open loads the WordNet database in dir: dir itself when not empty, else
// $MEGACONTEXT_WORDNET_DIR, else ./.wordnet.
func Open(dir string) (*Thesaurus, error) {
	if dir == "" {
		dir = os.Getenv(EnvDir)
	}
	if dir == "" {
		dir = DefaultDir
	}
	if _, err := os.Stat(filepath.Join(dir, "data.noun")); err != nil {
		return nil, fmt.Errorf("thesaurus: no WordNet database in %s (run `make wordnet`, or set %s): %w", dir, EnvDir, err)
	}
	t := &Thesaurus{tags: map[string][2]uint16{}}
	for p := range t.exc {
		t.exc[p] = map[string]string{}
	}
	loadIrregular(t.exc)

	var (
		wg     sync.WaitGroup
		errs   [numPOS + 1]error
		glosss [numPOS][][]string
	)
	for p := 0; p < numPOS; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			glosss[p], errs[p] = t.loadPOS(dir, p)
		}(p)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[numPOS] = t.loadSense(dir)
	}()
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	// Optional exception lists of a full WordNet distribution (the npm
	// package lacks them; the built-in irregular forms stand in).
	for p := 0; p < numPOS; p++ {
		if err := t.loadExc(filepath.Join(dir, posName[p]+".exc"), p); err != nil {
			return nil, err
		}
	}
	t.buildBag(glosss[noun])
	return t, nil
}

// loadPOS parses data.<pos> and index.<pos>. It returns each synset's gloss
// words (normalized), kept only to build the noun bag.
func (t *Thesaurus) loadPOS(dir string, p int) ([][]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "data."+posName[p]))
	if err != nil {
		return nil, fmt.Errorf("thesaurus: %w", err)
	}
	lines := bytes.Count(data, []byte{'\n'})
	intern := make(map[string]string, 2*lines)
	in := func(b []byte) string {
		for _, c := range b {
			if 'A' <= c && c <= 'Z' {
				b = bytes.ToLower(b)
				break
			}
		}
		if s, ok := intern[string(b)]; ok {
			return s
		}
		s := string(b)
		intern[s] = s
		return s
	}
	type rawPtr struct {
		sym    string
		offset uint32
	}
	offsets := make(map[uint32]int, lines)
	memo := map[string]string{}
	var (
		syns   = make([]synset, 0, lines)
		ptrs   = make([][]rawPtr, 0, lines)
		glosss [][]string
	)
	if p == noun {
		glosss = make([][]string, 0, lines)
	}
	var f [][]byte
	var bad error
	eachLine(data, func(line []byte) {
		if bad != nil || len(line) == 0 || line[0] == ' ' {
			return // license header
		}
		head, gloss, _ := bytes.Cut(line, []byte(" | "))
		f = fields(head, f)
		if len(f) < 6 {
			return
		}
		off, err1 := strconv.ParseUint(string(f[0]), 10, 32)
		lex, err2 := strconv.ParseUint(string(f[1]), 10, 8)
		wcnt, err3 := strconv.ParseUint(string(f[3]), 16, 16)
		if err1 != nil || err2 != nil || err3 != nil || len(f) < 4+2*int(wcnt)+1 {
			bad = fmt.Errorf("thesaurus: bad line in data.%s: %.60q", posName[p], line)
			return
		}
		s := synset{lex: uint8(lex)}
		i := 4
		for w := 0; w < int(wcnt); w++ {
			word := f[i]
			if k := bytes.IndexByte(word, '('); k > 0 { // adjective marker: big(a)
				word = word[:k]
			}
			s.words = append(s.words, in(word))
			i += 2
		}
		pcnt, err := strconv.Atoi(string(f[i]))
		if err != nil || len(f) < i+1+4*pcnt {
			bad = fmt.Errorf("thesaurus: bad pointers in data.%s: %.60q", posName[p], line)
			return
		}
		i++
		var ps []rawPtr
		for k := 0; k < pcnt; k++ {
			sym, tgt, tpos := string(f[i]), f[i+1], f[i+2][0]
			i += 4
			samePOS := tpos == posChar[p] || (p == adj && tpos == 's')
			if !samePOS {
				continue
			}
			switch sym {
			case "~", "~i":
				s.nHypo++
			case "@", "@i", "#p", "+":
				o, _ := strconv.ParseUint(string(tgt), 10, 32)
				ps = append(ps, rawPtr{sym, uint32(o)})
			}
		}
		offsets[uint32(off)] = len(syns)
		syns = append(syns, s)
		ptrs = append(ptrs, ps)
		if p == noun {
			glosss = append(glosss, t.glossWords(gloss, memo))
		}
	})
	if bad != nil {
		return nil, bad
	}
	var derivs [][]int
	if p == noun {
		derivs = make([][]int, len(syns))
	}
	for i, ps := range ptrs {
		for _, rp := range ps {
			j, ok := offsets[rp.offset]
			if !ok {
				continue
			}
			switch rp.sym {
			case "@", "@i":
				syns[i].hyper = append(syns[i].hyper, mkRef(p, j))
				syns[i].inst = syns[i].inst || rp.sym == "@i"
			case "#p":
				syns[i].holo = append(syns[i].holo, mkRef(p, j))
			case "+":
				if j != i {
					derivs[i] = append(derivs[i], j)
				}
			}
		}
	}
	if p == noun {
		t.derivs = derivs
		// Hyponyms (not instances), for ExpandIn's inheritance.
		t.hypo = make([][]int32, len(syns))
		for i := range syns {
			if syns[i].inst {
				continue
			}
			for _, h := range syns[i].hyper {
				t.hypo[h.idx()] = append(t.hypo[h.idx()], int32(i))
			}
		}
	}

	idx, err := os.ReadFile(filepath.Join(dir, "index."+posName[p]))
	if err != nil {
		return nil, fmt.Errorf("thesaurus: %w", err)
	}
	m := make(map[string][]ref, bytes.Count(idx, []byte{'\n'}))
	eachLine(idx, func(line []byte) {
		if bad != nil || len(line) == 0 || line[0] == ' ' {
			return
		}
		f = fields(line, f)
		if len(f) < 6 {
			return
		}
		n, err1 := strconv.Atoi(string(f[2]))
		pc, err2 := strconv.Atoi(string(f[3]))
		if err1 != nil || err2 != nil || len(f) < 4+pc+2+n {
			bad = fmt.Errorf("thesaurus: bad line in index.%s: %.60q", posName[p], line)
			return
		}
		refs := make([]ref, 0, n)
		for _, o := range f[4+pc+2 : 4+pc+2+n] {
			off, _ := strconv.ParseUint(string(o), 10, 32)
			if j, ok := offsets[uint32(off)]; ok {
				refs = append(refs, mkRef(p, j))
			}
		}
		m[in(f[0])] = refs
	})
	if bad != nil {
		return nil, bad
	}
	t.syn[p] = syns
	t.index[p] = m
	return glosss, nil
}

// loadSense reads the tag counts of each lemma's first two senses from
// index.sense: how often each sense occurred in the tagged corpus, used to
// pick the parts of speech and senses worth expanding.
func (t *Thesaurus) loadSense(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "index.sense"))
	if err != nil {
		return nil // optional: without it every part of speech counts
	}
	var f [][]byte
	eachLine(data, func(line []byte) {
		f = fields(line, f)
		if len(f) != 4 || (f[3][0] == '0' && len(f[3]) == 1) {
			return
		}
		sn := string(f[2])
		if sn != "1" && sn != "2" {
			return
		}
		key, rest, ok := bytes.Cut(f[0], []byte{'%'})
		if !ok || len(rest) == 0 {
			return
		}
		var p int
		switch rest[0] {
		case '1':
			p = noun
		case '2':
			p = verb
		case '3', '5':
			p = adj
		default:
			return
		}
		n, _ := strconv.Atoi(string(f[3]))
		if n > 65535 {
			n = 65535
		}
		k := string(key) + "/" + string(posChar[p])
		c := t.tags[k]
		if sn == "1" {
			c[0] += uint16(n)
		} else {
			c[1] += uint16(n)
		}
		t.tags[k] = c
	})
	return nil
}

// loadExc reads a WordNet exception list (inflected form, base forms), if
// the file exists.
func (t *Thesaurus) loadExc(path string, p int) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("thesaurus: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if _, ok := t.exc[p][f[0]]; !ok {
				t.exc[p][f[0]] = f[1]
			}
		}
	}
	return nil
}

// glossWords returns the normalized content words of a gloss, without its
// quoted examples. memo caches norm by word.
func (t *Thesaurus) glossWords(g []byte, memo map[string]string) []string {
	if k := bytes.IndexByte(g, '"'); k >= 0 {
		g = g[:k]
	}
	var out []string
	for _, w := range bytes.FieldsFunc(g, func(r rune) bool { return !unicode.IsLetter(r) }) {
		if len(w) < 2 {
			continue
		}
		n, ok := memo[string(w)]
		if !ok {
			n = t.norm(strings.ToLower(string(w)))
			memo[string(w)] = n
		}
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// norm maps a lower-case word to the form the bag is keyed by: irregular
// inflections undone (feet -> foot), then lens.Stem. Stopwords map to "".
func (t *Thesaurus) norm(w string) string {
	if gist.IsStopword(w) {
		return ""
	}
	if b, ok := t.exc[noun][w]; ok {
		w = b
	} else if b, ok := t.exc[verb][w]; ok {
		w = b
	}
	return lens.Stem(w)
}

// buildBag indexes each noun synset that has a one-word lemma by the words
// that describe it: its own lemmas and gloss, its hypernyms' lemmas, and
// the lemmas and glosses of the nouns derived from it (cardiologist +
// cardiology, "the branch of medicine dealing with the heart").
func (t *Thesaurus) buildBag(gloss [][]string) {
	syns := t.syn[noun]
	ids := map[string]int32{}
	var names []string
	id := func(w string) int32 {
		if i, ok := ids[w]; ok {
			return i
		}
		i := int32(len(names))
		ids[w] = i
		names = append(names, w)
		return i
	}
	glossIDs := make([][]int32, len(gloss))
	for i, g := range gloss {
		glossIDs[i] = make([]int32, len(g))
		for k, w := range g {
			glossIDs[i][k] = id(w)
		}
	}
	lemmaIDs := make([][]int32, len(syns))
	lemmas := func(j int) []int32 {
		if lemmaIDs[j] == nil {
			out := []int32{}
			for _, l := range syns[j].words {
				for _, w := range splitLemma(l) {
					if n := t.norm(w); len(n) > 1 {
						out = append(out, id(n))
					}
				}
			}
			lemmaIDs[j] = out
		}
		return lemmaIDs[j]
	}
	var (
		post    [][]uint32
		field   []int8
		own     []uint8 // occurrences in the synset's gloss, up to 2
		stamp   []int32
		touched []int32
	)
	mark := func(w int32, f int, i int) {
		for int(w) >= len(stamp) {
			stamp = append(stamp, -1)
			field = append(field, 0)
			own = append(own, 0)
		}
		if stamp[w] != int32(i) {
			stamp[w] = int32(i)
			field[w] = int8(f)
			own[w] = 0
			touched = append(touched, w)
		} else if int8(f) < field[w] {
			field[w] = int8(f)
		}
	}
	for i := range syns {
		s := &syns[i]
		if s.inst || !hasSingle(s.words) {
			continue // names are not answers; nor are phrases (no term)
		}
		touched = touched[:0]
		for _, w := range lemmas(i) {
			mark(w, fieldOwn, i)
		}
		for _, w := range glossIDs[i] {
			mark(w, fieldOwn, i)
			own[w] = min(2, own[w]+1)
		}
		for _, h := range s.hyper {
			for _, w := range lemmas(h.idx()) {
				mark(w, fieldHyper, i)
			}
		}
		for _, j := range t.derivs[i] {
			for _, w := range lemmas(j) {
				mark(w, fieldDeriv, i)
			}
			for _, w := range glossIDs[j] {
				mark(w, fieldDeriv, i)
			}
		}
		for _, w := range touched {
			for int(w) >= len(post) {
				post = append(post, nil)
			}
			ps := uint32(i)<<2 | uint32(field[w])
			if own[w] >= 2 {
				ps |= bagTwiceBit
			}
			post[w] = append(post[w], ps)
		}
	}
	t.gloss, t.glossWord = glossIDs, names
	t.bag = make(map[string][]uint32, len(post))
	for w, ps := range post {
		if len(ps) > 0 {
			t.bag[names[w]] = slices.Clip(ps)
		}
	}
	t.derivs = nil
}

// A bag posting packs a noun synset's index, the field of its description
// the word occurs in, and whether it occurs at least twice in the synset's
// gloss ("grandfather: the father of your father or
// mother" answers "my father's father" better than "dad: an informal term
// for a father").
const bagTwiceBit = 1 << 31

// bagSyn returns a bag posting's noun synset index.
func bagSyn(p uint32) int { return int(p &^ bagTwiceBit >> 2) }

// bagField returns a bag posting's field (fieldOwn, fieldHyper, fieldDeriv).
func bagField(p uint32) int { return int(p & 3) }

// bagTwice reports whether a bag posting's word occurs at least twice in
// its synset's gloss.
func bagTwice(p uint32) bool { return p&bagTwiceBit != 0 }

// splitLemma splits a lemma into its words.
func splitLemma(l string) []string {
	return strings.FieldsFunc(l, func(r rune) bool { return r == '_' || r == '-' })
}

// eachLine calls f with each line of data, without its newline.
func eachLine(data []byte, f func(line []byte)) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			f(data)
			return
		}
		f(data[:i])
		data = data[i+1:]
	}
}

// fields splits line at spaces into buf, reusing its storage.
func fields(line []byte, buf [][]byte) [][]byte {
	buf = buf[:0]
	for {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		if len(line) == 0 {
			return buf
		}
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return append(buf, line)
		}
		buf = append(buf, line[:i])
		line = line[i+1:]
	}
}

func hasSingle(words []string) bool {
	for _, w := range words {
		if !strings.ContainsAny(w, "_-") {
			return true
		}
	}
	return false
}
