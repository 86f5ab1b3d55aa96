package chatgen

import (
	"fmt"
	"strings"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// A frame plants one question's evidence and distractors and records the
// question. Each type has several frames; a case rotates through them from
// a random offset, and each frame varies its wording.
type frame func(b *builder, typ string)

// framesByType lists the frames of each question type.
var framesByType = map[string][]frame{
	dataset.TypeSingleFact:      factFrames(false),
	TypePadded:                  factFrames(true),
	dataset.TypeParaphrase:      {roleFrame, relationFrame, thingFrame},
	dataset.TypeKnowledgeUpdate: slotFrames(),
	dataset.TypeExactQuote:      {codeFrame},
	dataset.TypeAssistantSaid:   {saidFrame},
	dataset.TypeMultiEvidence:   listFrames(),
	dataset.TypeMultiHop:        hop2Frames(),
	TypeMultiHop3:               hop3Frames(),
	dataset.TypeTemporal:        {dateFrame},
	TypeTemporalRelative:        {dayAfterFrame},
}

// fact is a single fact about the user or their family: how it is said,
// how it is asked, and same-shaped statements about others.
type fact struct {
	value  func(b *builder) string
	says   []string // evidence wordings, %s the value
	asks   []string // question wordings
	others []string // distractors, %s another value
}

// facts are the single facts.
var facts = []fact{
	{func(b *builder) string { return b.number(100, 399) },
		[]string{"My locker at the pool is number %s.", "Got locker %s at the pool this time, writing it here so I don't forget."},
		[]string{"What's my locker number at the pool?", "which locker do I use at the pool?"},
		[]string{"My locker at work is number %s.", "{kid}'s locker at school is number %s."}},
	{func(b *builder) string {
		return b.unique(func() string {
			return pick(b.rng, []string{"O negative", "A positive", "B negative", "AB positive", "O positive", "A negative", "B positive"})
		})
	},
		[]string{"Found my donor card, my blood type is %s.", "The nurse at the blood drive said my blood type is %s."},
		[]string{"What's my blood type?", "which blood type am I?"},
		[]string{"{partner}'s blood type is %s.", "{sister} found out her blood type is %s."}},
	{func(b *builder) string {
		return b.unique(func() string { return fmt.Sprintf("%d:%02d", 8+b.rng.IntN(2), 5*b.rng.IntN(12)) })
	},
		[]string{"The kids' school starts at %s in the morning.", "School run alert: the kids' school starts at %s now."},
		[]string{"What time does the kids' school start?", "when does school start for the kids?"},
		[]string{"{partner}'s shift starts at %s.", "The swimming lesson starts at %s on Saturdays."}},
	{func(b *builder) string {
		return b.unique(func() string {
			n := 2 + 2*b.rng.IntN(10)
			return fmt.Sprintf("row %c, seats %d and %d", 'C'+rune(b.rng.IntN(15)), n, n+1)
		})
	},
		[]string{"Our seats for the Florence and the Machine gig are %s.", "Booked the Florence and the Machine gig, we're in %s."},
		[]string{"Where are our seats for the Florence and the Machine gig?", "which seats did we get for Florence and the Machine?"},
		[]string{"{friend}'s seats for the ballet are %s.", "Our seats for the comedy night are %s."}},
	{func(b *builder) string {
		return b.unique(func() string { return fmt.Sprintf("%d", 9+b.rng.IntN(5)) + pick(b.rng, []string{"", " and a half"}) })
	},
		[]string{"{kid} is a size %s shoe now, again.", "Measured {kid}'s feet today, size %s shoe."},
		[]string{"What shoe size is {kid}?", "what size shoe does {kid} take?"},
		[]string{"{sister}'s boy is a size %s shoe.", "The school shoes in the sale only went up to size %s."}},
	{func(b *builder) string {
		return b.unique(func() string {
			return pick(b.rng, []string{"June", "September", "April", "October", "March"}) + " " + ordinal(1+b.rng.IntN(28))
		})
	},
		[]string{"Our wedding anniversary is on %s, don't let me forget.", "Reminder: our wedding anniversary is %s."},
		[]string{"When is our wedding anniversary?", "what's the date of our wedding anniversary?"},
		[]string{"{sister}'s wedding anniversary is %s.", "My parents' wedding anniversary is %s."}},
}

// factFrames returns one frame per fact; padded ones wrap the question in
// recurring small talk.
func factFrames(padded bool) []frame {
	var out []frame
	for _, f := range facts {
		out = append(out, func(b *builder, typ string) {
			v := f.value(b)
			e := b.say(b.session(0, 1), pick(b.rng, f.says), v)
			q := pick(b.rng, f.asks)
			if padded {
				q = pad(b, q)
			}
			b.ask(typ, sentenceCase(q), v, e)
			for _, o := range f.others {
				b.say(b.session(0, 1), o, f.value(b))
			}
		})
	}
	return out
}

// pad wraps a question in two or three pleasantries that recur in the
// history, the way people open a chat message.
func pad(b *builder, q string) string {
	perm := b.rng.Perm(len(b.talk.habits))
	var parts []string
	for _, i := range perm[:2+b.rng.IntN(2)] {
		parts = append(parts, b.talk.habits[i])
	}
	return greet(pick(b.rng, greetings), parts, "...") + " " + q + " " + pick(b.rng, thanks)
}

// roleFrame: "my podiatrist is X", asked as "who looks after my feet?";
// distractors name two other roles.
func roleFrame(b *builder, typ string) {
	says := []string{"My %s is %s.", "Finally found a %s I trust: %s.", "Our %s is %s now."}
	r := drawSplit(b, "roles", roles)
	who := b.fullName()
	e := b.say(b.session(0, 1), pick(b.rng, says), r.word, who)
	b.ask(typ, sentenceCase(fmt.Sprintf(pick(b.rng, []string{"%s?", "remind me: %s?"}), r.desc)), who, e)
	for range 2 {
		o := drawSplit(b, "roles", roles)
		b.say(b.session(0, 1), pick(b.rng, says), o.word, b.fullName())
	}
}

// relationFrame: "my nephew Otis", asked as "my sister's little boy".
func relationFrame(b *builder, typ string) {
	says := []string{"%[2]s, my %[1]s, is obsessed with dinosaurs at the moment.", "My %[1]s %[2]s stayed over and ate all the cereal.", "Posted a parcel to my %[1]s %[2]s."}
	r := drawSplit(b, "relations", relations)
	who := b.name()
	e := b.say(b.session(0, 1), pick(b.rng, says), r.word, who)
	b.ask(typ, sentenceCase(fmt.Sprintf(pick(b.rng, []string{"what's %s called?", "what is %s called again?"}), r.desc)), who, e)
	o := drawSplit(b, "relations", relations)
	b.say(b.session(0, 1), pick(b.rng, says), o.word, b.name())
}

// thingFrame: "we bought a dehumidifier, the Meaco one", asked as "the
// machine that pulls moisture out of the air".
func thingFrame(b *builder, typ string) {
	says := []string{"Finally bought a %s, the %s one.", "Our new %s is a %s, very pleased so far."}
	t := drawSplit(b, "things", things)
	brands := strings.Split(t.brands, "|")
	brand := brands[b.rng.IntN(len(brands))]
	e := b.say(b.session(0, 1), pick(b.rng, says), t.word, brand)
	b.ask(typ, sentenceCase(fmt.Sprintf(pick(b.rng, []string{"what make is the %s?", "which make did we pick for the %s?"}), t.desc)), brand, e)
	o := drawSplit(b, "things", things)
	ob := strings.Split(o.brands, "|")
	b.say(b.session(0, 1), pick(b.rng, says), o.word, ob[b.rng.IntN(len(ob))])
}

// slot is something about the user that changes over time.
type slot struct {
	value   func(b *builder) string
	first   []string // how the first value is said
	updates []string // how a change is said, each a different verb
	asks    []string // how the current value is asked, in other words
	others  []string // the same slot of someone else, or a value never taken
	later   []string // an older value mentioned in passing after the change
}

// slots are the knowledge-update slots.
var slots = []slot{
	{func(b *builder) string { return draw(b, "places", places) },
		[]string{"We're renting a little place in %s for now.", "We live in %s, near the big roundabout."},
		[]string{"We finally moved to %s, boxes everywhere!", "I'm based in %s now, the move went smoothly.", "Signed the lease and we're in %s as of this weekend.", "New address: we're out in %s now."},
		[]string{"Which neighbourhood is home for us these days?", "What area should I give when someone asks where we reside currently?"},
		[]string{"{sister} just moved to %s.", "We looked at a house in %s but it was way over budget."},
		[]string{"Drove through %s today, I don't miss the traffic there.", "Still getting post forwarded from %s."}},
	{func(b *builder) string { return draw(b, "employers", employers) },
		[]string{"I work at %s, in the accounts team.", "I've been at %s for three years now."},
		[]string{"Switched jobs, I'm at %s now.", "Handed in my notice, starting at %s on Monday!", "Big news: %s offered me the role and I took it.", "First week at %s done, new badge and everything."},
		[]string{"Who is my employer currently?", "Which company pays my salary these days?"},
		[]string{"{partner} works at %s.", "{friend} had an interview at %s but didn't get it."},
		[]string{"Bumped into my old boss from %s at the supermarket.", "Got a leaving card from everyone at %s, so sweet."}},
	{func(b *builder) string { return draw(b, "cars", cars) },
		[]string{"I drive %s, it's ancient but reliable.", "Our car is %s, nothing fancy."},
		[]string{"Traded in the old car, we've got %s now.", "Picked up %s from the dealer today!", "Said goodbye to the old one, I'm driving %s now."},
		[]string{"What vehicle do we own at the moment?", "Which model is sitting in our driveway currently?"},
		[]string{"{brother} bought %s.", "Test drove %s but it felt cramped."},
		[]string{"Saw %s like our old one in the car park and got weirdly nostalgic.", "The buyer of %s messaged to say it's running fine."}},
	{func(b *builder) string { return draw(b, "gyms", gyms) },
		[]string{"I train at %s, it's cheap at least.", "My gym is %s."},
		[]string{"Cancelled my old membership and joined %s.", "I've switched to %s, much better showers.", "Moved my membership over to %s this month."},
		[]string{"Where do I work out these days?", "Which place do I exercise at currently?"},
		[]string{"{friend} goes to %s and loves it.", "Did a free trial at %s, not for me."},
		[]string{"Walked past %s and felt no regret whatsoever.", "Still getting emails from %s, unsubscribing now."}},
	{func(b *builder) string { return b.fullName() },
		[]string{"My manager is %s, strict but fair.", "I report to %s, who is lovely."},
		[]string{"We got reorganised and my boss is %s now.", "%s took over the team this week, so I answer to her.", "New line manager starting today: %s."},
		[]string{"Who is in charge of me at the office currently?", "Who's my supervisor these days?"},
		[]string{"{partner}'s manager is %s.", "{friend} says her new boss %s is a nightmare."},
		[]string{"Had coffee with %s, who I used to report to.", "Saw %s at the Christmas party, she's doing well in her new role."}},
}

// slotFrames returns one frame per slot: a first value, then two or three
// changes in later sessions, spread over the timeline; the question asks
// the current value, the evidence is the last change and the statement it
// replaced.
func slotFrames() []frame {
	var out []frame
	for _, sl := range slots {
		out = append(out, func(b *builder, typ string) {
			changes := 2 + b.rng.IntN(2)
			vals := []string{sl.value(b)}
			chain := []*plant{b.say(b.session(0, 0.25), pick(b.rng, sl.first), vals[0])}
			verbs := b.rng.Perm(len(sl.updates))
			for i := range changes {
				lo := 0.3 + 0.65*float64(i)/float64(changes)
				hi := 0.3 + 0.65*float64(i+1)/float64(changes)
				v := sl.value(b)
				vals = append(vals, v)
				chain = append(chain, b.say(b.session(lo, hi), sl.updates[verbs[i%len(verbs)]], v))
			}
			last := chain[len(chain)-1]
			q := b.ask(typ, pick(b.rng, sl.asks), vals[len(vals)-1], chain[len(chain)-2], last)
			q.chain = chain
			for _, o := range sl.others {
				b.say(b.session(0, 1), o, sl.value(b))
			}
			// An old value mentioned after the newest change.
			if last.session+1 < b.sessions-1 {
				s := last.session + 1 + b.rng.IntN(b.sessions-1-last.session-1)
				b.say(s, pick(b.rng, sl.later), vals[b.rng.IntN(len(vals)-1)])
			}
		})
	}
	return out
}

// codeFrame: an opaque code noted for later; distractors are a near-miss
// code and a fresh one for other things.
func codeFrame(b *builder, typ string) {
	says := []string{"{What} is %s, writing it here so I don't lose it.", "For future me: {what} is %s.", "Note to self, {what}: %s."}
	note := func(what, code string) string {
		s := pick(b.rng, says)
		s = strings.ReplaceAll(strings.ReplaceAll(s, "{What}", sentenceCase(what)), "{what}", what)
		return strings.ReplaceAll(s, "%s", code)
	}
	c := draw(b, "codes", codes)
	code := b.code(c.pattern)
	e := b.say(b.session(0, 1), "%s", note(c.what, code))
	b.ask(typ, sentenceCase(fmt.Sprintf(pick(b.rng, []string{"what's %s again?", "can you dig up %s for me?"}), c.what)), code, e)
	o := draw(b, "codes", codes)
	near := b.nearMiss(code)
	if len(near) != len(o.pattern) {
		near = b.code(o.pattern)
	}
	b.say(b.session(0, 1), "%s", note(o.what, near))
}

// saidFrame: the user asks for a suggestion and the assistant answers; a
// later user statement says what they did instead.
func saidFrame(b *builder, typ string) {
	t := drawSplit(b, "said", saidTopics)
	perm := b.rng.Perm(len(t.values))
	v, other := t.values[perm[0]], t.values[perm[1]]
	s := b.session(0, 0.8)
	e := b.answer(s, t.request, fmt.Sprintf(t.answer, v))
	b.ask(typ, sentenceCase(t.question), v, e)
	b.say(b.session(float64(s+1)/float64(b.sessions-1), 1), t.instead, other)
}

// list is a multi-evidence question: items said in different sessions.
type list struct {
	table  []string
	name   string   // table name for drawing without replacement
	says   []string // each item's wording, %s the item
	asks   []string
	others []string // same-shaped statements that are not on the list
}

// lists are the multi-evidence questions.
var lists = []list{
	{cityTrips, "cities",
		[]string{"Back from %s, the conference was fine but the hotel was grim.", "Flying to %s on Tuesday for the client visit.", "Spent three nights in %s for work, ate far too much.", "The work trip to %s was a blur of meetings."},
		[]string{"Which cities have I travelled to for my job?", "list every place work has sent me"},
		[]string{"{partner} is off to %s with her sister for a long weekend.", "I'd love to visit %s someday."}},
	{flatItems, "flat",
		[]string{"Got %s for the living room.", "Ordered %s for the new flat, arriving Thursday.", "Picked up %s at the charity shop for a tenner.", "Treated myself to %s for the flat."},
		[]string{"What have I bought for the new flat so far?", "can you list everything I've got for the new flat?"},
		[]string{"{sister} bought %s for her place.", "Almost bought %s but put it back."}},
	{allergens, "allergens",
		[]string{"{kid} is allergic to %s, we found out the hard way.", "Reminder to self: {partner} can't have %s, bad reaction.", "My dad reacts badly to %s, he swells right up.", "Turns out I'm allergic to %s, great."},
		[]string{"Which allergies do we have in the family?", "what is everyone in my family allergic to?"},
		[]string{"{friend} is allergic to %s, so none of that at the dinner party.", "The menu said the dessert contains %s."}},
	{giftItems, "gifts",
		[]string{"Bought %s for {partner}'s birthday.", "Also got {partner} %s, it's hidden in the loft.", "Another one for {partner}'s birthday pile: %s.", "Grabbed %s for {partner}, birthday sorted."},
		[]string{"What presents have I already got for {partner}'s birthday?", "remind me what I've bought {partner} for the birthday"},
		[]string{"Got %s for {sister}'s birthday.", "{partner} mentioned wanting %s but I think that's too much."}},
}

// listFrames returns one frame per list: three or four items in distinct
// sessions, two distractors.
func listFrames() []frame {
	var out []frame
	for _, l := range lists {
		out = append(out, func(b *builder, typ string) {
			n := 3 + b.rng.IntN(2)
			sess := b.distinct(n)
			ways := b.rng.Perm(len(l.says))
			var ev []*plant
			var parts []string
			for i := range n {
				v := draw(b, l.name, l.table)
				ev = append(ev, b.say(sess[i], l.says[ways[i%len(ways)]], v))
				parts = append(parts, v)
			}
			q := b.ask(typ, sentenceCase(pick(b.rng, l.asks)), strings.Join(parts, dataset.AnswerSeparator), ev...)
			q.parts = parts
			for _, o := range l.others {
				b.say(b.session(0, 1), o, draw(b, l.name, l.table))
			}
		})
	}
	return out
}

// chain is a multi-hop question: the first hop names someone the question
// describes, each later hop starts from the name the previous one ended
// with; later hops share no word with the question.
type chain struct {
	hops   []string // wordings, %[1]s the name from the previous hop, %[2]s the next name or the answer
	ask    string
	answer func(b *builder) string
}

// hop2Chains and hop3Chains are the multi-hop questions.
var (
	hop2Chains = []chain{
		{[]string{"My brother's wife %[2]s is lovely but terrifying at board games.", "%[1]s has been at %[2]s for six years."},
			"Where does my brother's wife work?", func(b *builder) string { return draw(b, "venues", venues) }},
		{[]string{"{kid}'s best friend is %[2]s from down the road.", "%[1]s started %[2]s in September and loves it."},
			"What has {kid}'s best friend taken up lately?", func(b *builder) string { return draw(b, "pastimes", pastimes) }},
		{[]string{"%[2]s runs the corner shop on our street.", "%[1]s walks a huge Newfoundland named %[2]s every morning."},
			"What's the dog of the man who runs our corner shop called?", func(b *builder) string { return draw(b, "pets", pets) }},
	}
	hop3Chains = []chain{
		{[]string{"My running partner is %[2]s, she's much faster than me.", "%[1]s's kid %[2]s turned twelve last week.", "%[1]s has been practising %[2]s every evening."},
			"What instrument does my running partner's youngest play?", func(b *builder) string {
				return draw(b, "instruments", []string{"the cello", "the trumpet", "the drums", "the violin", "the clarinet", "the ukulele", "the oboe"})
			}},
		{[]string{"Book club is at %[2]s's house this month, she's hosting.", "%[1]s's husband %[2]s made the most amazing curry.", "%[1]s grew up in %[2]s."},
			"Where is the partner of this month's book club host from?", func(b *builder) string { return draw(b, "cities", cityTrips) }},
		{[]string{"Our neighbour %[2]s brought round a lasagne.", "%[1]s's eldest girl %[2]s is back from uni.", "%[1]s just qualified as %[2]s."},
			"What does our neighbour's daughter do for a living?", func(b *builder) string {
				return draw(b, "jobs", []string{"a midwife", "a structural engineer", "a pharmacist", "a solicitor", "a paramedic", "an architect"})
			}},
	}
)

// hop2Frames and hop3Frames return one frame per chain.
func hop2Frames() []frame { return chainFrames(hop2Chains) }
func hop3Frames() []frame { return chainFrames(hop3Chains) }

// chainFrames plants each chain's hops in distinct sessions in random
// order; distractors are lone later hops about other people.
func chainFrames(chains []chain) []frame {
	var out []frame
	for _, ch := range chains {
		out = append(out, func(b *builder, typ string) {
			sess := b.distinct(len(ch.hops))
			b.rng.Shuffle(len(sess), func(i, j int) { sess[i], sess[j] = sess[j], sess[i] })
			var hops []*plant
			prev := ""
			for i, h := range ch.hops {
				next := ""
				if i == len(ch.hops)-1 {
					next = ch.answer(b)
				} else {
					next = b.name()
				}
				hops = append(hops, b.say(sess[i], h, prev, next))
				prev = next
			}
			q := b.ask(typ, ch.ask, prev, hops...)
			q.hops = hops
			// Later hops of other people: the same wording, other names.
			for _, h := range ch.hops[1:] {
				next := b.name()
				if h == ch.hops[len(ch.hops)-1] {
					next = ch.answer(b)
				}
				b.say(b.session(0, 1), h, b.name(), next)
			}
		})
	}
	return out
}

// activityWays say what the user did that day; %s is the activity.
var activityWays = []string{
	"Spent the whole afternoon %s, my arms are dead.", "Took the day off and ended up %s.",
	"Been %s since breakfast, send help.", "Finally got round to %s today.",
}

// dayAsks ask what the user did on a date; no word of an activity.
var dayAsks = []string{"What did I get up to on %s?", "what was I busy with on %s?", "Remind me what I was doing on %s."}

// freeSession returns a session in [lo, hi) of the timeline that holds no
// dated activity yet and is not wanted by a relative question.
func (b *builder) freeSession(lo, hi float64) int {
	for range 200 {
		s := b.session(lo, hi)
		if !b.dated[s] && !b.dayAfter[s] && !b.dayAfter[s+1] {
			return s
		}
	}
	b.fail("no free session for a dated activity")
	return 0
}

// activity plants an activity statement in a session and marks it dated.
func (b *builder) activity(s int) (*plant, string) {
	a := draw(b, "activities", activities)
	b.dated[s] = true
	return b.say(s, pick(b.rng, activityWays), a), a
}

// dateFrame: what the user did on a named day; two other days hold other
// activities.
func dateFrame(b *builder, typ string) {
	e, a := b.activity(b.freeSession(0, 1))
	q := b.ask(typ, pick(b.rng, dayAsks), a, e)
	q.q.Question = sentenceCase(fmt.Sprintf(q.q.Question, datePlaceholder))
	q.date = e
	for range 2 {
		b.activity(b.freeSession(0, 1))
	}
}

// dayAfterFrame: what the user did the day after a one-off event; the day
// of the event and a later day hold other activities.
func dayAfterFrame(b *builder, typ string) {
	an := drawSplit(b, "anchors", anchors)
	s, ok := 0, false
	for range 200 {
		s = b.session(0.05, 0.9)
		if s+1 < b.sessions-1 && !b.dated[s] && !b.dated[s+1] && !b.dayAfter[s] && !b.dayAfter[s+1] && !b.dayAfter[s+2] {
			ok = true
			break
		}
	}
	if !ok {
		b.fail("no free pair of sessions for a day-after question")
		return
	}
	b.dayAfter[s+1] = true
	anchor := b.say(s, "%s", an.said)
	e, a := b.activity(s + 1)
	b.activity(s)
	asks := []string{"What was I up to the day after %s?", "what did I tell you I was doing the day after %s?", "What did I spend the day after %s on?"}
	b.ask(typ, sentenceCase(fmt.Sprintf(pick(b.rng, asks), an.named)), a, anchor, e)
}
