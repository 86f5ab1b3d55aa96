package memory

import "testing"

// A third set of described things, written by hand on 2026-12-02 for the
// word links (links.go): the history names each thing in a word WordNet
// lacks (a compound such as "hairdryer", a clipped or newer word such as
// "carer"), and the question describes it. None of these words is in the
// eval generators' tables.

// linkedMisses are the questions the engine does not recall yet, and why.
var linkedMisses = map[string]string{
	"Which brand is the machine that blows the snow away?":           "the blower's gloss (a device that produces a current of air) says nothing of snow",
	"Who stays in our place when we travel?":                         "no question word reaches the sitter's glosses (a person who sits; a caretaker who stays with the children)",
	"Which brand is the tool that slices potatoes into thin rounds?": "the slicer the mandoline is linked to ranks below eight nouns of the prose (iron, pick, plate, blade) that the description fits as well",
}

var linkedCases = []saidCase{
	{"The hairdryer I use is a Dyson, loud but quick.", "",
		"What make is the appliance that dries my hair?", "Dyson"},
	{"The childminder we found is Greta Holm, the kids adore her.", "",
		"Who looks after our children while we are at work?", "Greta Holm"},
	{"Our snowblower is a Toro, it clears the whole drive in minutes.", "",
		"Which brand is the machine that blows the snow away?", "Toro"},
	{"My carer, Ines Duarte, comes in every morning now.", "",
		"Who attends to my needs each day?", "Ines Duarte"},
	{"Our housesitter while we are away is Jonas Berg.", "",
		"Who stays in our place when we travel?", "Jonas Berg"},
	{"The mandoline we got for the kitchen is a Kyocera, razor sharp.", "",
		"Which brand is the tool that slices potatoes into thin rounds?", "Kyocera"},
	{"The smartwatch I wear is a Garmin, the battery lasts a week.", "",
		"Which make is the timepiece on my wrist?", "Garmin"},
}

// TestLinkedDescribedThings counts the linked set's recall: 2 of 7 before
// the word links (the childminder and the carer, by GloVe's soft terms),
// 4 with them.
func TestLinkedDescribedThings(t *testing.T) {
	recallDescribed(t, linkedCases, linkedMisses, saidDistractors)
}
