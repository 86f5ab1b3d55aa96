package integration

import (
	"math/rand/v2"
	"strings"
)

// talker writes varied, deterministic user messages: a few sentences on
// everyday topics, 40 to 80 words each. It never mentions lockers, so a
// planted locker fact is the only place those words occur.
type talker struct {
	r *rand.Rand
}

func newTalker(seed uint64) *talker {
	return &talker{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

var (
	subjects = []string{
		"my sister", "our neighbour", "the new intern", "my old professor", "the landlord",
		"my cousin Ravi", "the bakery owner", "our dog Pepper", "the cycling club", "my manager",
		"the piano teacher", "a friend from Lisbon", "the plumber", "my grandmother", "the book club",
	}
	verbs = []string{
		"suggested", "complained about", "asked me about", "keeps talking about", "finally fixed",
		"forgot", "recommended", "was excited about", "wrote a long email about", "postponed",
		"argued with me about", "laughed at", "brought up", "tried to explain", "promised to look into",
	}
	objects = []string{
		"the sourdough starter", "a weekend trip to the mountains", "the leaking kitchen tap",
		"the quarterly budget spreadsheet", "a vegetarian lasagna recipe", "the broken bicycle chain",
		"our shared photo album", "the tomato seedlings on the balcony", "a jazz concert downtown",
		"the Rust compiler errors", "the wedding playlist", "a birdwatching app", "the tax return forms",
		"a secondhand telescope", "the train timetable to Porto", "the noisy washing machine",
		"a chess opening called the Sicilian", "the gym membership fees", "the garden fence",
		"a podcast about volcanoes", "the zip code on the parcel form", "the cheese shop on Elm Street",
	}
	connectors = []string{
		"Honestly,", "Anyway,", "Later that evening,", "To be fair,", "On Tuesday,", "Meanwhile,",
		"After lunch,", "Funny enough,", "Last month,", "This morning,",
	}
	thoughts = []string{
		"I am not sure it was worth the effort", "it reminded me of the summer we spent in Crete",
		"I should probably write this down somewhere", "nobody expected it to take three hours",
		"the weather made everything more complicated", "we ended up ordering pizza instead",
		"I still have mixed feelings about it", "it cost a lot less than I feared",
		"the instructions were surprisingly clear", "I think we will try again next week",
		"my phone battery died halfway through", "the whole street could hear it",
		"it turned out to be a misunderstanding", "I learned more than I planned to",
	}
)

func (k *talker) pick(xs []string) string { return xs[k.r.IntN(len(xs))] }

// sentence is one sentence of 10 to 25 words.
func (k *talker) sentence() string {
	switch k.r.IntN(3) {
	case 0:
		return k.pick(connectors) + " " + k.pick(subjects) + " " + k.pick(verbs) + " " + k.pick(objects) + ", and " + k.pick(thoughts) + "."
	case 1:
		s := k.pick(subjects)
		return strings.ToUpper(s[:1]) + s[1:] + " " + k.pick(verbs) + " " + k.pick(objects) + " while " + k.pick(subjects) + " " + k.pick(verbs) + " " + k.pick(objects) + "."
	default:
		return k.pick(connectors) + " " + k.pick(thoughts) + ", because " + k.pick(subjects) + " " + k.pick(verbs) + " " + k.pick(objects) + "."
	}
}

// message returns a message of 40 to 80 words.
func (k *talker) message() string {
	target := 40 + k.r.IntN(41)
	var words []string
	for len(words) < target {
		words = append(words, strings.Fields(k.sentence())...)
	}
	if len(words) > 80 {
		words = words[:80]
	}
	return strings.Join(words, " ")
}

// paste returns about n bytes of messages in one text, as a user pasting
// notes would send.
func (t *talker) paste(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(t.message())
		sb.WriteString("\n")
	}
	return sb.String()
}
