package chatgen

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/megacontext/megacontext/memory/lens"
)

// wordNet is a minimal reader of the WordNet database files for the
// tests: lemma -> the lemmas of every synset it belongs to (its direct
// synonyms), in every part of speech. It reads the files itself rather
// than through the engine's thesaurus, so the check does not depend on
// what the engine does with them.
type wordNet struct {
	synonyms map[string][]string
}

var (
	wnOnce sync.Once
	wn     *wordNet
	wnErr  error
)

// wordNetDir is where `make wordnet` puts the database, seen from here.
func wordNetDir() string {
	if d := os.Getenv("MEGACONTEXT_WORDNET_DIR"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", ".wordnet")
}

// loadWordNet reads the database once; it skips the test when WordNet is
// not installed, and fails in CI, which installs it.
func loadWordNet(t *testing.T) *wordNet {
	t.Helper()
	wnOnce.Do(func() { wn, wnErr = readWordNet(wordNetDir()) })
	if wnErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("WordNet missing in CI (run `make wordnet`): %v", wnErr)
		}
		t.Skipf("WordNet not installed (run `make wordnet`): %v", wnErr)
	}
	return wn
}

// readWordNet builds the synonym map from data.{noun,verb,adj,adv}: each
// data line lists a synset's words, hex-counted after the third field.
func readWordNet(dir string) (*wordNet, error) {
	w := &wordNet{synonyms: map[string][]string{}}
	for _, pos := range []string{"noun", "verb", "adj", "adv"} {
		f, err := os.Open(filepath.Join(dir, "data."+pos))
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == ' ' {
				continue // licence header
			}
			fields := strings.Fields(line)
			if len(fields) < 4 {
				continue
			}
			n, err := strconv.ParseInt(fields[3], 16, 32)
			if err != nil || 4+2*int(n) > len(fields) {
				continue
			}
			var lemmas []string
			for i := range int(n) {
				l := strings.ToLower(fields[4+2*i])
				if j := strings.IndexByte(l, '('); j >= 0 { // adjective markers such as (a)
					l = l[:j]
				}
				lemmas = append(lemmas, l)
			}
			for _, l := range lemmas {
				w.synonyms[l] = append(w.synonyms[l], lemmas...)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// baseForms returns a word and the forms WordNet's morphology rules would
// try for it (without the exception lists, which the npm package lacks).
func baseForms(w string) []string {
	out := []string{w}
	rules := [][2]string{
		{"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"}, {"men", "man"}, {"ies", "y"},
		{"es", "e"}, {"es", ""}, {"ed", "e"}, {"ed", ""}, {"ing", "e"}, {"ing", ""}, {"er", ""}, {"est", ""}, {"er", "e"}, {"est", "e"},
	}
	for _, r := range rules {
		if strings.HasSuffix(w, r[0]) && len(w) > len(r[0])+1 {
			out = append(out, w[:len(w)-len(r[0])]+r[1])
		}
	}
	return out
}

// words splits text into lower-case words (letters, digits, apostrophes
// inside a word dropped with what follows them: "sister's" is "sister").
func words(text string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	}) {
		if i := strings.IndexByte(f, '\''); i >= 0 {
			f = f[:i]
		}
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// synonymTerms returns the index terms (lens.Terms) of every direct WordNet
// synonym of every content word of text, the word's own terms excluded.
func (w *wordNet) synonymTerms(text string) map[string]string {
	out := map[string]string{}
	for _, word := range words(text) {
		if len(lens.Terms(word)) == 0 {
			continue // a stopword
		}
		own := map[string]bool{}
		for _, t := range lens.Terms(word) {
			own[t] = true
		}
		for _, base := range baseForms(word) {
			for _, syn := range w.synonyms[base] {
				for _, t := range lens.Terms(strings.NewReplacer("_", " ", "-", " ").Replace(syn)) {
					if !own[t] {
						out[t] = word + "~" + syn
					}
				}
			}
		}
	}
	return out
}

// termSet returns the set of lens.Terms of text.
func termSet(text string) map[string]bool {
	out := map[string]bool{}
	for _, t := range lens.Terms(text) {
		out[t] = true
	}
	return out
}

// shared returns the terms of a that b holds too.
func shared(a, b map[string]bool) []string {
	var out []string
	for t := range a {
		if b[t] {
			out = append(out, t)
		}
	}
	return out
}
