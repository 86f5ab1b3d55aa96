package memory

import "testing"

// A second set of described requests and roles, written fresh on
// 2026-12-02 by hand (not from the eval generators, and after the first
// set's engine changes): requests asked for in other words than the
// user's (the young cat for the kitten, the sibling's marriage for the
// brother's wedding), and people and things named by what they do.

// freshMisses are the fresh questions the engine does not recall yet, and
// why.
var freshMisses = map[string]string{
	"Who handles our tax returns?":       "the accountant's gloss (someone who maintains and audits business accounts) says nothing of taxes",
	"Who minds the kids when we go out?": "no question word reaches the babysitter's gloss (a person engaged to care for children when the parents are not home)",
}

var freshCases = []saidCase{
	{"We adopted a ginger kitten from the shelter and she still has no name.", "Marmalade suits a ginger girl.",
		"What did you propose we call the young cat we took in?", "Marmalade"},
	{"My grandfather turns ninety in May, what could we bake for the party?", "A lemon drizzle cake, light and easy to share.",
		"Which dessert did you come up with for grandpa's birthday?", "lemon drizzle"},
	{"The tomato seedlings on my sill keep flopping over, what am I doing wrong?", "They are stretching for light: put them under a grow lamp for twelve hours a day.",
		"What did you say would fix my young tomato plants?", "grow lamp"},
	{"I have to give a toast at my brother's wedding and I freeze up in front of crowds.", "Open with the canoe story, people relax once they laugh.",
		"How did you advise me to start the speech at my sibling's marriage?", "canoe story"},
	{"Our spare room is freezing in winter, what should I buy to warm it?", "An oil-filled radiator is safe to leave on overnight.",
		"Which heater did you recommend for the guest bedroom?", "oil-filled radiator"},
	{"I am learning the fiddle and my fingertips hurt, how long should I practise each day?", "Twenty minutes twice a day until calluses form.",
		"How long did you tell me to play the violin daily?", "Twenty minutes"},
	{"My mum wants something cosy to read over Christmas, any ideas?", "Give her The Thursday Murder Club by Richard Osman.",
		"Which book did you suggest for my mother for the holidays?", "Thursday Murder Club"},
	{"We are driving to the coast with two toddlers, how do we keep them calm in the car?", "Pack a bag of stickers and audiobooks, and stop every hour.",
		"What did you recommend to keep the little ones happy on our trip to the seaside?", "stickers and audiobooks"},
	{"We got three hens for the garden, help me name them?", "Henrietta, Omelette and Mrs Cluck.",
		"What names did you come up with for our flock of laying birds?", "Mrs Cluck"},
	{"The kids want a name for their new goldfish.", "Bubbles is a classic, or Captain Fin if they like pirates.",
		"What did you suggest calling the bowl of little orange fish?", "Captain Fin"},
	{"Our lawnmower is a Honda, still going after eight years.", "",
		"What make is the machine that cuts our grass?", "Honda"},
	{"The accountant who does our books is Priya Raman.", "",
		"Who handles our tax returns?", "Priya Raman"},
	{"My landlady, Mrs Petrova, lives downstairs.", "",
		"Who do we rent our flat from?", "Petrova"},
	{"Our babysitter is called Maya Lindqvist.", "",
		"Who minds the kids when we go out?", "Maya Lindqvist"},
	{"The dentist I go to now is Dr Felix Brandt.", "",
		"Who looks after my teeth?", "Felix Brandt"},
	{"My physio, Tomasz Nowak, gave me new stretches.", "",
		"Who is treating my injured knee?", "Tomasz Nowak"},
	{"We keep our bikes in the shed, and the lock is a Kryptonite.", "",
		"What make is the thing that secures our bicycles?", "Kryptonite"},
	{"My new kettle is a Russell Hobbs, it boils in a minute.", "",
		"Which brand is the thing I heat water for tea in?", "Russell Hobbs"},
}

// TestFreshDescribedRequestsAndRoles counts the fresh set's recall: 12 of
// its first 16 when they were written; the hens and the goldfish, added
// with the heads of "of" phrases (thesaurus.askedKinds), were recalled
// before it too: 14 of 18; 16 since the word links (links.go: the
// lawnmower is a mower, the physio a physiotherapist).
func TestFreshDescribedRequestsAndRoles(t *testing.T) {
	recallDescribed(t, freshCases, freshMisses, saidDistractors)
}
