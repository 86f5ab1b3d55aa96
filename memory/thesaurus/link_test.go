package thesaurus

import (
	"path/filepath"
	"testing"

	"github.com/megacontext/megacontext/memory/glove"
)

// TestLinkWord: a word WordNet lacks is linked to the nouns it stands for
// (a compound's head, else the nearest specific nouns by GloVe); a word
// WordNet knows, a chat word and a word whose first part is a stopword
// are linked to nothing (no compound).
func TestLinkWord(t *testing.T) {
	th := open(t)
	v, err := glove.Open(filepath.Join("..", "..", ".glove"))
	if err != nil {
		t.Skipf("skipping: GloVe missing (make glove): %v", err)
	}
	defer v.Close()
	for _, c := range []struct {
		word string
		want string // the first linked noun's term, "" for none
	}{
		{"lawnmower", "mower"},
		{"smartwatch", "watch"},
		{"hairdryer", "dryer"},
		{"childminder", "minder"},
		{"physio", "physiotherapist"},
		{"mandoline", "slicer"},
		{"carer", "caregiver"},
		{"mower", ""},   // WordNet's own
		{"running", ""}, // an inflection of WordNet's own
		{"yeah", ""},    // a chat word: frequent in GloVe's corpus
		{"kinda", ""},
		{"x7", ""},     // not a word
		{"Physio", ""}, // names are not linked
	} {
		got := th.LinkWord(c.word, v)
		first := ""
		if len(got) > 0 {
			first = got[0].Text
		}
		if c.want == "" && len(got) > 0 || c.want != "" && first != c.want {
			t.Errorf("LinkWord(%q) = %v, want first %q", c.word, got, c.want)
		}
	}
	// "any" is a stopword: "anyways" is no kind of way.
	for _, x := range th.LinkWord("anyways", v) {
		if x.Text == "way" || x.Text == "ways" {
			t.Errorf("LinkWord(anyways) = %v: a compound of a stopword", x)
		}
	}
	// Without vectors, compounds still link.
	if got := th.LinkWord("smartwatch", nil); len(got) != 1 || got[0].Text != "watch" || got[0].Weight != 1 {
		t.Errorf("LinkWord(smartwatch, nil) = %v", got)
	}
	if got := th.LinkWord("physio", nil); got != nil {
		t.Errorf("LinkWord(physio, nil) = %v, want nil", got)
	}
}
