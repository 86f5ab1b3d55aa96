package chatgen

import (
	"math/rand/v2"
	"strings"
)

// greetings open a user message.
var greetings = []string{
	"hey", "hi", "hi again", "morning!", "evening", "hello hello", "hey there", "ok so", "right,", "yo",
}

// pleasantries are the small talk users sprinkle over their messages. They
// recur all over a history, and the padded questions carry them too.
var pleasantries = []string{
	"hope you're doing well",
	"quick one",
	"sorry, me again",
	"random question",
	"ugh, what a week",
	"long day today",
	"coffee hasn't kicked in yet",
	"I'm so tired today",
	"the weather is awful again",
	"finally Friday",
	"can't believe it's Monday already",
	"sorry if I asked this before",
	"my brain is fried",
	"bear with me",
	"this might be a silly question",
	"I keep forgetting things lately",
	"thanks again for yesterday",
	"you're a lifesaver",
	"anyway",
	"no rush on this",
	"just thinking out loud here",
	"the kids are finally asleep",
	"on my lunch break",
	"typing this on my phone, sorry for typos",
}

// thanks close a user message now and then.
var thanks = []string{
	"thanks!", "thank you so much", "cheers", "ty", "thanks, you're the best", "appreciate it", "thx", "lovely, thanks",
}

// chatter is what users say about their day between requests: it mentions
// the same people, rooms, cars and jobs as the planted facts, so the
// planted facts never stand out by vocabulary alone. Placeholders: {sister}
// {brother} {partner} {kid} {friend} {pet} are names.
var chatter = []string{
	"{sister} is coming over for dinner on Sunday and I haven't planned anything.",
	"The car is making that rattling noise again.",
	"Work was chaos today, two people off sick.",
	"Took {pet} to the park and he rolled in something disgusting.",
	"I really need to book a haircut, I look like a hedge.",
	"We're thinking about repainting the kitchen, maybe a dark green.",
	"{kid} lost another shoe at school, how is that even possible.",
	"My manager moved our team meeting to 8am, which is cruel.",
	"{partner} and I finally watched that documentary about octopuses.",
	"The neighbours are having building work done and the drilling starts at seven.",
	"{friend} sent me a voice note that was eleven minutes long.",
	"I've been trying to go to the gym three times a week but it's more like once.",
	"Our street flooded a bit after the storm last night.",
	"{brother} wants to borrow the car again next weekend.",
	"I burnt the rice. Again.",
	"{kid} has a school trip to the aquarium next week and is beyond excited.",
	"The rent went up, not thrilled about that.",
	"I found a great little bakery near the office.",
	"My back has been aching since I moved the sofa.",
	"{sister} keeps sending me flat listings like I'm about to move.",
	"We had takeaway three nights in a row, no regrets.",
	"The doctor's surgery never picks up the phone before ten.",
	"{partner} is away for work until Thursday so it's just me and the kids.",
	"I started a new podcast about shipwrecks, it's weirdly relaxing.",
	"Parking at the hospital cost me nine pounds, outrageous.",
	"{friend} is getting married in the spring and I'm already stressing about the speech.",
	"{pet} ate half a sock, the vet says he'll be fine.",
	"My phone screen cracked when I dropped it on the stairs.",
	"I'm trying to drink less coffee. It is not going well.",
	"The train was cancelled so I worked from home.",
	"{kid} wants a birthday party at the trampoline park.",
	"I signed up for a pottery class on Wednesdays.",
	"Our washing machine is leaking and of course it's out of warranty.",
	"{brother} just got a puppy and sends me forty photos a day.",
	"My mum called to ask how to attach a photo to an email, again.",
	"I've been sleeping badly, the heat is unbearable.",
	"We're trying to save for a holiday next summer.",
	"I finally cleared my inbox and felt like a hero for about five minutes.",
	"{friend} and I went for a long walk along the canal.",
	"Spent way too much at the supermarket, prices are mad.",
}

// replies are the assistant's short answers to chatter.
var replies = []string{
	"Oh no, that sounds stressful.",
	"Ha, that made me smile.",
	"That sounds like a lot, be kind to yourself.",
	"Fingers crossed it sorts itself out soon.",
	"Good for you!",
	"Ugh, that's annoying. Anything I can help with?",
	"Sounds like a busy week.",
	"Noted! Let me know if you want help planning anything.",
	"That's lovely to hear.",
	"Oof. Hope the rest of the day is calmer.",
	"Got it.",
	"Happy to help whenever you need.",
}

// storyAsks request a bedtime story; {kid} is a child's name.
var storyAsks = []string{
	"can you tell {kid} a bedtime story? something with animals please",
	"{kid} wants a story before bed, an old-fashioned one",
	"story time again, {kid} asked for the one with the bear if you still have it, or anything similar",
	"could you read {kid} something short tonight, we're both exhausted",
	"{kid} says your stories are better than mine lol. one more?",
}

// storyMores ask to go on with the story.
var storyMores = []string{
	"{kid} wants to know what happens next",
	"keep going, she's still awake",
	"more please!! (that's {kid} typing)",
	"ok and then what?",
}

// storyLeads and storyEnds frame the story's paragraphs.
var (
	storyLeads = []string{"Of course! Here's one from %s:", "Here's a bit of %s, a classic:", "Sure, settle in. This is from %s:", "Alright, tonight's story comes from %s:"}
	storyEnds  = []string{"Sweet dreams, {kid}!", "Want the next part tomorrow?", "Night night!", "That's where we'll stop for tonight."}
	storyGoOns = []string{"Here's what happens next:", "Continuing:", "Alright, the next part:", "On we go:"}
)

// novelAsks bring a passage of a novel to the assistant; %[1]s is the
// title, %[2]s the pasted passage.
var novelAsks = []string{
	"I'm reading %[1]s for book club and I don't get this bit: \"%[2]s\" what's going on here?",
	"ok this paragraph from %[1]s is confusing me: \"%[2]s\"",
	"can you help me make sense of this, it's from %[1]s: \"%[2]s\"",
	"book club is on %[1]s this month. I'm stuck on \"%[2]s\" — what does it lead to?",
}

// novelLeads and novelEnds frame the assistant's answer, which quotes what
// follows the passage.
var (
	novelLeads = []string{"It makes more sense with what comes right after it:", "Good question. The next part explains it:", "Here's how the passage continues, which should help:", "Read it together with the following paragraph:"}
	novelEnds  = []string{"Does that help?", "Happy to go through the next chapter too.", "Let me know what your book club thinks!", "It's a slow build, but it pays off."}
	novelMores = []string{"and after that?", "go on, I want to see where it goes", "ok that helps. what's next?", "can you keep quoting, I left my copy at work"}
)

// quoteAsks ask for a line about a theme for an occasion; the answer
// quotes a paragraph that mentions the theme.
var quoteAsks = []string{
	"I need a line about %s for a card, something old-fashioned",
	"can you find me a nice passage about %s? it's for a speech",
	"any good bit of a classic novel about %s? for my friend's leaving do",
}

// quoteThemes are the themes of quoteAsks, each a word the quoted
// paragraph contains.
var quoteThemes = []string{"friendship", "courage", "patience", "home", "the sea", "marriage", "happiness", "kindness", "gratitude", "memory"}

// habitCount is how many pleasantries are a case's user's habits.
const habitCount = 8

// talker writes the small talk of one case.
type talker struct {
	rng      *rand.Rand
	fill     map[string]string // placeholder -> name
	habits   []string          // the pleasantries this user says most (habitCount of them)
	turn     int               // habits are said in turn, so that each recurs
	lastChat int               // index of the chatter said last
}

// newTalker draws a user's habits.
func newTalker(rng *rand.Rand) *talker {
	t := &talker{rng: rng, fill: map[string]string{}}
	for _, i := range rng.Perm(len(pleasantries))[:habitCount] {
		t.habits = append(t.habits, pleasantries[i])
	}
	return t
}

// pleasantry returns a pleasantry: three times out of four the next of the
// user's habits in turn, else any.
func (t *talker) pleasantry() string {
	if t.rng.IntN(4) > 0 {
		t.turn++
		return t.habits[t.turn%len(t.habits)]
	}
	return pick(t.rng, pleasantries)
}

// pick returns a random element of a table.
func pick[T any](rng *rand.Rand, table []T) T { return table[rng.IntN(len(table))] }

// fillIn replaces the placeholders of a template with the case's names.
func (t *talker) fillIn(s string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	for k, v := range t.fill {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// opening returns what a user message starts with: a greeting and maybe a
// pleasantry or two (empty about a third of the time).
func (t *talker) opening() string {
	if t.rng.IntN(3) == 0 {
		return ""
	}
	var parts []string
	for range t.rng.IntN(3) {
		parts = append(parts, t.pleasantry())
	}
	return greet(pick(t.rng, greetings), parts, ".")
}

// greet writes a greeting followed by pleasantries, ending with end.
func greet(greeting string, pleasantries []string, end string) string {
	g := sentenceCase(greeting)
	if len(pleasantries) == 0 {
		return g
	}
	sep := ", "
	if strings.HasSuffix(g, "!") || strings.HasSuffix(g, ",") {
		sep = " "
	}
	return g + sep + strings.Join(pleasantries, ", ") + end
}

// closing returns what a user message may end with.
func (t *talker) closing() string {
	if t.rng.IntN(3) == 0 {
		return pick(t.rng, thanks)
	}
	return ""
}

// chatter returns one sentence about the user's day, never the one said
// just before.
func (t *talker) chatter() string {
	i := t.rng.IntN(len(chatter) - 1)
	if i >= t.lastChat {
		i++
	}
	t.lastChat = i
	return t.fillIn(chatter[i])
}

// reply returns the assistant's short answer to chatter.
func (t *talker) reply() string { return pick(t.rng, replies) }

// sentenceCase upper-cases the first letter.
func sentenceCase(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// join joins non-empty parts with spaces.
func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
