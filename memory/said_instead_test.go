package memory

import "testing"

// A set of suggestions asked back after the user did something else,
// written by hand on 2026-12-02 (not from the eval generators): the
// assistant's reply holds the answer, and some days later the user says
// what they did instead, in the question's own words. The newer statement
// is nearer the question than the request was; what was suggested is in
// the reply.

// insteadMisses are the questions the engine does not recall yet, and why.
var insteadMisses = map[string]string{
	"How did you suggest I reward my staff?":                     "the request says \"team\" and \"thank\" (GloVe cosines 0.51 and 0.47 to the question's words), the later statement says \"staff\"",
	"How did you advise me to begin my first presentation?":      "the request says \"workshop\" and \"spoken to a room\" (cosine 0.55 to \"presentation\"): looser soft matching (0.5) recalled it but lost the fussy eater",
	"Where did you recommend for our hiking trip with the lads?": "the request says \"walking weekend\" and \"mates\" (cosines 0.59 and 0.30); lifting the replies to the requests nearest by sentence vector recalled it but lost two others",
}

var insteadCases = []saidCase{
	{"My sister turns forty next week and she has got really into pottery, what could I get her?", "A throwing class at a local studio would be a treat for her.",
		"What present did you come up with for my sibling?", "throwing class"},
	{"We are driving up to Inverness and want somewhere pretty to stop halfway.", "Pitlochry makes a lovely break, the dam has a salmon ladder.",
		"Where did you recommend we break the journey north?", "Pitlochry"},
	{"The office social needs a quick game everyone can join.", "Just One works for any group, it takes two minutes to explain.",
		"Which game did you suggest for the work party?", "Just One"},
	{"I want to take up jogging but my knees are dodgy, which shoes should I look at?", "Look at the Brooks Ghost, it has plenty of cushioning.",
		"What trainers did you recommend for my bad knees?", "Brooks Ghost"},
	{"Our baby girl is due in June and we are stuck on a middle name.", "Juniper would be sweet for a June baby.",
		"What middle name did you propose for our daughter?", "Juniper"},
	{"I want to learn Spanish while I cycle to work, what can I listen to?", "Coffee Break Spanish is the classic, with short episodes.",
		"Which show did you recommend for picking up Spanish on my commute?", "Coffee Break Spanish"},
	{"My wok keeps going rusty, how do I stop it?", "Dry it over the flame after washing and wipe on a thin coat of oil.",
		"What did you tell me to do about my rusty pan?", "thin coat of oil"},
	{"What should I name my sourdough starter? Everyone names theirs.", "Clint Yeastwood is the obvious winner.",
		"What did you suggest calling my bread culture?", "Clint Yeastwood"},
	{"We have a free Sunday in Bruges, what should we not miss?", "Start early at the Markt before the crowds arrive. Climb the Belfry if your legs allow, the view is worth every step. For lunch, the Vlaamsche Pot does a proper Flemish stew. In the afternoon take a canal boat from the Rozenhoedkaai.",
		"Where did you suggest we have lunch in Bruges?", "Vlaamsche Pot"},
	{"My dad keeps losing his glasses around the house, any trick?", "Get him a neck cord, a simple beaded one looks smart.",
		"What did you advise for my father's missing spectacles?", "neck cord"},
	{"My in-laws and their four kids are staying the whole weekend, what can we all do on Sunday if it rains?", "Take everyone to the climbing wall at the leisure centre, it tires them all out.",
		"What activity did you suggest for when the whole family was visiting?", "climbing wall"},
	{"I have to bring something to the school bake sale tomorrow and I cannot bake at all.", "Buy plain cupcakes and decorate them with sprinkles: nobody will know.",
		"What did you propose when I had nothing to bring to the fundraiser?", "decorate them with sprinkles"},
	{"Our flight lands at six in the morning and check-in is not until three, what do we do in Lisbon?", "Leave the bags at the hotel and have breakfast at the Time Out Market.",
		"What did you recommend for our first morning after the early arrival?", "Time Out Market"},
	{"My team hit its target this quarter and I want to thank them without spending much.", "Write handwritten cards naming one thing each person did well.",
		"How did you suggest I reward my staff?", "handwritten cards"},
	{"The boss wants me to run a workshop on Friday and I have never spoken to a room before.", "Open with a question to the audience, it takes the pressure off you.",
		"How did you advise me to begin my first presentation?", "question to the audience"},
	{"Our car broke down far from home and the garage needs two days, where can we sleep tonight near Ghent?", "The Pand Hotel has rooms tonight and is ten minutes away.",
		"Which hotel did you recommend when we were stranded?", "Pand Hotel"},
	{"My son refuses anything green on his plate, how do I get veg into him?", "Blend spinach into a tomato pasta sauce, he will not spot it.",
		"What trick did you suggest for my fussy eater?", "Blend spinach"},
	{"Me and three mates want a walking weekend somewhere wild but reachable by train.", "Try the Cairngorms from Aviemore, the station is right in the village.",
		"Where did you recommend for our hiking trip with the lads?", "Cairngorms"},
}

// insteadStatements are what the user did instead, by question.
var insteadStatements = map[string]string{
	"What present did you come up with for my sibling?":                     "In the end I just got my sister a silk scarf.",
	"Where did you recommend we break the journey north?":                   "We stopped in Perth on the way north instead.",
	"Which game did you suggest for the work party?":                        "At the work party we played charades in the end.",
	"What trainers did you recommend for my bad knees?":                     "I ended up buying Asics trainers for my knees.",
	"What middle name did you propose for our daughter?":                    "We gave our daughter the middle name Rose after all.",
	"Which show did you recommend for picking up Spanish on my commute?":    "On my commute I have been doing Duolingo for Spanish instead.",
	"What did you tell me to do about my rusty pan?":                        "I gave up and bought a non-stick pan.",
	"What did you suggest calling my bread culture?":                        "My partner named the starter Doughbi in the end.",
	"Where did you suggest we have lunch in Bruges?":                        "We grabbed waffles for lunch in Bruges instead.",
	"What did you advise for my father's missing spectacles?":               "My dad bought a second pair of glasses in the end.",
	"What activity did you suggest for when the whole family was visiting?": "When the family visited we went bowling instead.",
	"What did you propose when I had nothing to bring to the fundraiser?":   "For the fundraiser I brought a bag of apples in the end.",
	"How did you suggest I reward my staff?":                                "I took my staff out for pizza instead.",
	"Which hotel did you recommend when we were stranded?":                  "When we were stranded we slept in the car in the end.",
	"What trick did you suggest for my fussy eater?":                        "My fussy eater now gets carrot sticks with dip instead.",
	"Where did you recommend for our hiking trip with the lads?":            "For the hiking trip the lads chose the Lake District instead.",
}

// TestSuggestedThenDoneOtherwise counts the set's recall: 15 of 18 when it
// was written (after the word links); every miss names the request in
// other words than the question's.
func TestSuggestedThenDoneOtherwise(t *testing.T) {
	recallInstead(t, insteadCases, insteadMisses, saidDistractors, insteadStatements)
}
