package thesaurus

import (
	"maps"
	"slices"
	"testing"

	"github.com/megacontext/megacontext/memory/lens"
)

// inHistory returns a has function for ExpandIn that holds the stems of
// words.
func inHistory(words ...string) func(string) bool {
	set := map[string]bool{}
	for _, w := range words {
		set[stem(w)] = true
	}
	return func(t string) bool { return set[t] }
}

// lexArtifact and lexAnimal are WordNet's noun.artifact and noun.animal
// lexicographer files.
const (
	lexArtifact = 6
	lexAnimal   = 5
)

func TestAskedKinds(t *testing.T) {
	th := open(t)
	for _, tc := range []struct {
		q    string
		want []uint8 // nil: any kind
	}{
		{"Who shares my apartment?", []uint8{lexPerson}},
		{"Remind me: whom did we hire for the party?", []uint8{lexPerson}},
		{"What is my sister's little boy called again?", []uint8{lexPerson}},
		{"What's my father's father called?", []uint8{lexPerson}},
		{"What make is the gadget that controls the heating?", []uint8{lexArtifact}},
		{"What make is the thing I boil water in?", nil},
		// A compound names its kind last, and a plant is a flora as often
		// as a factory: any kind.
		{"What did you say would fix my young tomato plants?", nil},
		// "of" opens a noun phrase too: the flock or the birds.
		{"What names did you come up with for our flock of laying birds?", []uint8{lexAnimal}},
		{"what was that again", nil},
	} {
		got := th.askedKinds(tc.q)
		keys := slices.Sorted(maps.Keys(got))
		if tc.want == nil {
			if got != nil {
				t.Errorf("askedKinds(%q) = %v, want any kind", tc.q, keys)
			}
			continue
		}
		if !slices.Contains(keys, tc.want[0]) || (tc.want[0] == lexPerson && len(keys) != 1) {
			t.Errorf("askedKinds(%q) = %v, want %v", tc.q, keys, tc.want)
		}
	}
}

// A "who" question asks for a person: the flats and tenements whose
// description holds "apartment" answer it not.
func TestExpandInOnlyNounsOfTheAskedKind(t *testing.T) {
	th := open(t)
	got := terms(th.ExpandIn("Who shares my apartment?", inHistory("roommate", "flat", "tenement", "penthouse", "studio", "suite", "room")))
	if _, ok := got[stem("roommate")]; !ok {
		t.Errorf("roommate missing: %v", got)
	}
	for _, w := range []string{"flat", "tenement", "penthouse", "studio"} {
		if _, ok := got[stem(w)]; ok {
			t.Errorf("%s (no person) answers a who question: %v", w, got)
		}
	}
	// A vague head ("thing") leaves any kind.
	got = terms(th.ExpandIn("What make is the thing I boil water in?", inHistory("kettle")))
	if _, ok := got[stem("kettle")]; !ok {
		t.Errorf("kettle missing: %v", got)
	}
}

// "My father's father" is described by a gloss that says "father" twice
// ("grandfather: the father of your father or mother"), better than by one
// that says it once ("dad: an informal term for a father").
func TestExpandInWordSaidTwice(t *testing.T) {
	th := open(t)
	got := terms(th.ExpandIn("What's my father's father called?", inHistory("dad", "papa", "parent", "sire", "forefather", "granddad", "aunt")))
	g := got[stem("granddad")]
	for term, w := range got {
		if term != stem("granddad") && w >= g {
			t.Errorf("%s weighs %.2f, granddad %.2f: %v", term, w, g, got)
		}
	}
}

// A generic verb in its inflected form ("looks") describes nothing: the
// watchers and witnesses whose description holds "look" answer no
// question about who looks after my feet.
func TestExpandInGenericInflected(t *testing.T) {
	th := open(t)
	got := terms(th.ExpandIn("Remind me: who looks after my feet?", inHistory("podiatrist", "watcher", "spectator", "witness")))
	if _, ok := got[stem("podiatrist")]; !ok {
		t.Errorf("podiatrist missing: %v", got)
	}
	for _, w := range []string{"watcher", "spectator", "witness"} {
		if _, ok := got[stem(w)]; ok {
			t.Errorf("%s answers for the generic verb look: %v", w, got)
		}
	}
}

// Define goes the other way: a question's noun brings the words of its
// gloss ("puppy: a young dog") and its kin ("beagle", another kind of dog)
// that the history holds; the words of the question's frame bring nothing.
func TestDefine(t *testing.T) {
	th := open(t)
	got := terms(th.Define("What name did you propose for the puppy?", inHistory("dog", "beagle", "young", "sloop", "title", "nickname"), nil))
	for _, w := range []string{"dog", "beagle"} {
		if _, ok := got[stem(w)]; !ok {
			t.Errorf("%s missing: %v", w, got)
		}
	}
	for _, w := range []string{"sloop", "title", "nickname"} {
		if _, ok := got[stem(w)]; ok {
			t.Errorf("%s defines nothing the question names: %v", w, got)
		}
	}
	got = terms(th.Define("What did you suggest I call my new sailboat?", inHistory("sloop", "ketch", "beagle"), nil))
	if _, ok := got[stem("sloop")]; !ok {
		t.Errorf("sloop missing: %v", got)
	}
	// rank reweighs the kin: here it drops them all.
	got = terms(th.Define("What did you suggest I call my new sailboat?", inHistory("sloop", "ketch", "mast"), func(string, []lens.Term) []lens.Term { return nil }))
	if _, ok := got[stem("sloop")]; ok {
		t.Errorf("sloop kept though rank dropped it: %v", got)
	}
	if _, ok := got[stem("mast")]; !ok {
		t.Errorf("mast (of the gloss) missing: %v", got)
	}
}

// A description's head may be the complement of "of": the hens of "our
// flock of laying birds" are animals, the flock a group.
func TestExpandInOfComplement(t *testing.T) {
	th := open(t)
	got := terms(th.ExpandIn("What names did you come up with for our flock of laying birds?", inHistory("hen", "flock", "garden", "name")))
	if _, ok := got[stem("hen")]; !ok {
		t.Errorf("hen missing: %v", got)
	}
}
