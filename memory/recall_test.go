package memory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Recall at small budgets and for noisy questions (issue 9, item 5): each
// test reproduces a case the engine once failed.

// smallTalk is a chat generator whose sentences recur all through a
// history, as a person's small talk does.
type smallTalk struct{ r *rand.Rand }

var (
	talkWho   = []string{"my sister", "our neighbour", "the new intern", "the landlord", "my cousin Ravi", "the bakery owner", "my manager", "the plumber", "my grandmother", "the book club"}
	talkDid   = []string{"suggested", "complained about", "asked me about", "forgot", "recommended", "postponed", "laughed at", "brought up"}
	talkWhat  = []string{"the sourdough starter", "a weekend trip to the mountains", "the leaking kitchen tap", "a vegetarian lasagna recipe", "the broken bicycle chain", "a jazz concert downtown", "the tax return forms", "the train timetable to Porto", "the zip code on the parcel form", "the garden fence"}
	talkAfter = []string{"I am not sure it was worth the effort", "nobody expected it to take three hours", "we ended up ordering pizza instead", "it cost a lot less than I feared", "my phone battery died halfway through"}
)

func (k smallTalk) pick(xs []string) string { return xs[k.r.IntN(len(xs))] }

func (k smallTalk) sentence() string {
	s := k.pick(talkWho)
	return strings.ToUpper(s[:1]) + s[1:] + " " + k.pick(talkDid) + " " + k.pick(talkWhat) + ", and " + k.pick(talkAfter) + "."
}

// message is 40 to 80 words of small talk.
func (k smallTalk) message() string {
	var sb strings.Builder
	for n := 40 + k.r.IntN(41); len(strings.Fields(sb.String())) < n; {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(k.sentence())
	}
	return sb.String()
}

const lockerCode = "ZX-4471-QK"

// chatWithFact has a client talk turns turns, resending its whole history
// each time, the locker code told at turn 3; budget is each turn's budget.
func chatWithFact(t *testing.T, e *Engine, k Key, turns, budget int, seed uint64) []Message {
	t.Helper()
	talk := smallTalk{rand.New(rand.NewPCG(seed, 1))}
	var conv []Message
	for turn := 1; turn <= turns; turn++ {
		text := talk.message()
		if turn == 3 {
			text = talk.sentence() + " By the way, my locker code is " + lockerCode + ", please keep it in mind for later. " + talk.sentence()
		}
		conv = append(conv, msg("user", text))
		if _, err := e.Prepare(Request{Key: k, Messages: conv, Budget: budget, PerMessage: 5, TailPercent: 40}); err != nil {
			t.Fatal(err)
		}
		conv = append(conv, msg("assistant", "Noted. "+talk.sentence()))
	}
	return conv
}

// Details reach every span: with 150 turns of small talk and a budget of a
// few hundred tokens the outline cannot hold the oldest spans even as
// headlines, and the fact told at turn 3 must still come back.
func TestDetailsReachSpansTheOutlineDrops(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "small"}
	conv := chatWithFact(t, e, k, 150, 448, 1)
	ask := append(conv, msg("user", "What is my locker code?"))
	for _, budget := range []int{448, 600, 800, 1000} {
		w, err := e.Prepare(Request{Key: k, Messages: ask, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Memory, lockerCode) {
			t.Errorf("budget %d: the fact is not in the window (%d tokens, %d blocks omitted):\n%s", budget, w.Tokens, w.Omitted, w.Memory)
		}
	}
}

// Rare terms outweigh recurring filler: a question padded with the small
// talk of the whole history still finds the one block its rare words name.
func TestRareTermsOutweighFiller(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "filler"}
	conv := chatWithFact(t, e, k, 150, 1984, 2)
	talk := smallTalk{rand.New(rand.NewPCG(99, 1))}
	q := talk.sentence() + " " + talk.sentence() + " Quick question: what is my locker code again? " + talk.sentence()
	w, err := e.Prepare(Request{Key: k, Messages: append(conv, msg("user", q)), Budget: 1984, PerMessage: 5, TailPercent: 40})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, lockerCode) {
		t.Errorf("the fact is not in the window (%d tokens, %d expanded):\n%s", w.Tokens, w.Expanded, w.Memory)
	}
}

// Asking the same question again never loses recall, and the allocator
// spends the budget: two new chats ask what an earlier one told, and each
// window holds the fact and uses most of its budget.
func TestRepeatedQuestionKeepsRecall(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "newcomer"}
	chatWithFact(t, e, k, 20, 604, 3)
	for i := 1; i <= 2; i++ {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "What is my locker code?")}, Budget: 604, PerMessage: 5, TailPercent: 40})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Memory, lockerCode) {
			t.Errorf("new chat %d: the fact is not in the window (%d tokens, %d expanded):\n%s", i, w.Tokens, w.Expanded, w.Memory)
		}
		if w.Tokens < 604*85/100 {
			t.Errorf("new chat %d: the window uses %d of 604 tokens", i, w.Tokens)
		}
		// The reply, as the proxy stores it.
		if err := e.AppendResponse(k, w.LastSeq, w.NextSeq, msg("assistant", "Your locker code is "+lockerCode+"."), false); err != nil {
			t.Fatal(err)
		}
	}
}

// dayHistory imports one session a day for 40 days: small talk, on odd
// days saying how busy work is, and on some days what the person did.
func dayHistory(t *testing.T, e *Engine, k Key, start time.Time, did map[int]string) {
	t.Helper()
	talk := smallTalk{rand.New(rand.NewPCG(4, 1))}
	for day := 0; day < 40; day++ {
		msgs := []Message{msg("user", talk.message()), msg("assistant", "Noted. "+talk.sentence())}
		if day%2 == 1 {
			msgs[0].Text += " Work has been busy, the week was busy too."
		}
		if s, ok := did[day]; ok {
			msgs = append(msgs, msg("user", s+" "+talk.sentence()), msg("assistant", "Sounds like a full day."))
		}
		msgs = append(msgs, msg("user", talk.message()), msg("assistant", talk.message()))
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(day)}, msgs, start.AddDate(0, 0, day).Add(10*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// A question about a day brings that day's blocks, even when they share no
// word with it; and a day named relative to an event ("the day after my
// driving test") is the day after the day the event was told.
func TestDayQuestionsBringThatDay(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "days"}
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	dayHistory(t, e, k, start, map[int]string{
		12: "Spent the afternoon repainting the garden fence, arms are dead.",
		19: "Spent the morning at the allotment planting potatoes.",
		20: "Had my driving test this morning and I passed!",
		21: "Took the day off and ended up clearing out the loft.",
	})
	for q, want := range map[string]string{
		"What was I busy with on the 13th of March 2024?":                 "repainting the garden fence",
		"What did I get up to on March 13, 2024?":                         "repainting the garden fence",
		"What was I busy with the day after my driving test?":             "clearing out the loft",
		"What did I tell you I was doing the day before my driving test?": "planting potatoes",
	} {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 1024, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Memory, want) {
			t.Errorf("%q: %q is not in the window:\n%s", q, want, w.Memory)
		}
	}
}

// A date without a year is the latest such day the history holds: the
// history is of 2023, and "now" is in 2025, when nothing was said on 13
// March 2024 (it used to look there).
func TestDayWithoutYear(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "days2023"}
	dayHistory(t, e, k, time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC), map[int]string{
		12: "Spent the afternoon repainting the garden fence, arms are dead.",
	})
	for _, q := range []string{"Remind me what I was doing on Monday, March 13.", "What did I get up to on the 13th of March?"} {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 1024, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Memory, "repainting the garden fence") {
			t.Errorf("%q: the day's statement is not in the window:\n%s", q, w.Memory)
		}
	}
}

// Three hops: the question names the first block only; its name leads to
// the second, whose name leads to the third. The second hop's block, once
// shown, leads on even when an earlier round showed it, and the block a
// round followed does not lead its next round again.
func TestThreeHops(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "hops"}
	importDays(t, e, k, 5, 30, func(day int) string {
		if day%3 == 0 {
			return " PS: book club is on Moby Dick this month."
		}
		return ""
	}, map[int]string{
		5:  "PS: Book club is at Hattie's house this month, she's hosting.",
		11: "btw: Hattie's husband Sienna made the most amazing curry.",
		17: "Sienna grew up in Krakow.",
	})
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Where is the husband of this month's book club host from?")}, Budget: 2048, PerMessage: 5, TailPercent: 40, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"at Hattie's house", "husband Sienna", "grew up in Krakow"} {
		if !strings.Contains(w.Memory, want) {
			t.Errorf("%q is not in the window:\n%s", want, w.Memory)
		}
	}
}

// A hop survives at a small budget: the second round's best match may
// take the whole budget, as the question's best does (it used to get only
// a share of what the first round's weaker matches left); and when the
// outline refits to give the details room, the new fitting still follows
// the name the first hop reveals (it used to find every refocus term
// already searched by the first fitting, and showed no hop at all).
func TestHopSurvivesOutlineRefit(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "refit"}
	importDays(t, e, k, 6, 60, nil, map[int]string{
		9:  "Side note: my running partner is Connor, she's much faster than me.",
		31: "Connor has been practising the drums every evening.",
	})
	q := "My sister asked me about the garden fence again. What instrument does my running partner play?"
	for _, budget := range []int{384, 512, 768} {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"running partner is Connor", "practising the drums"} {
			if !strings.Contains(w.Memory, want) {
				t.Errorf("budget %d: %q is not in the window:\n%s", budget, want, w.Memory)
			}
		}
	}
}

// In a small window the outline yields to the question's evidence: with
// more matching statements than the window holds, the details take all
// but about an eighth of the memory (they used to stop at half the
// budget, as plain retrieval does, the outline keeping the rest).
func TestSmallWindowDetailsClaimMost(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "share"}
	importDays(t, e, k, 7, 80, func(day int) string {
		if day%2 == 0 {
			return fmt.Sprintf(" Took the kayak out on the reservoir, lap %d went well.", day)
		}
		return ""
	}, nil)
	for _, c := range []struct {
		budget int
		atMost float64 // the outline's most share of the memory
	}{{512, 0.2}, {1024, 0.2}} {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "What did I say about the kayak on the reservoir?")}, Budget: c.budget, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		outline := 0
		for _, en := range w.Entries {
			if en.Reason == "outline" {
				outline += en.Tokens
			}
		}
		t.Logf("budget %d: outline %d of the memory's %d tokens", c.budget, outline, w.MemoryTokens)
		if share := float64(outline) / float64(w.MemoryTokens); share > c.atMost {
			t.Errorf("budget %d: the outline holds %d of the memory's %d tokens (%.0f %%), want at most %.0f %%:\n%s", c.budget, outline, w.MemoryTokens, 100*share, 100*c.atMost, w.Memory)
		}
		if w.Tokens > c.budget || w.Tokens < c.budget*9/10 {
			t.Errorf("budget %d: the window uses %d tokens", c.budget, w.Tokens)
		}
	}
}

// A question about what the assistant said is answered by the reply, not
// by the request it echoes nor by what the user later did instead: at a
// budget that holds only a few blocks, the reply comes first.
func TestAssistantSaidComesFromTheReply(t *testing.T) {
	for _, budget := range []int{300, 2048} {
		e := openEngine(t, "")
		k := Key{Tenant: "t", Context: "said"}
		talk := smallTalk{rand.New(rand.NewPCG(7, 1))}
		start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
		for day := 0; day < 30; day++ {
			msgs := []Message{msg("user", talk.message()), msg("assistant", "Noted. "+talk.sentence())}
			switch day {
			case 5:
				msgs = []Message{msg("user", "What would the monthly payment be on the piano loan? "+talk.sentence()), msg("assistant", "The monthly payment on the piano loan comes to $1,416.20.")}
			case 9:
				msgs = []Message{msg("user", "What would the monthly payment be on the boat loan?"), msg("assistant", "The monthly payment on the boat loan comes to $1,379.18.")}
			case 20:
				msgs = []Message{msg("user", "In the end the piano loan came from the credit union, the monthly payment is $1,201.00 there."), msg("assistant", "Noted.")}
			}
			if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(day)}, msgs, start.AddDate(0, 0, day)); err != nil {
				t.Fatal(err)
			}
		}
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "What monthly payment did you calculate for the piano loan?")}, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Memory, "$1,416.20") {
			t.Errorf("budget %d: the assistant's answer is not in the window:\n%s", budget, w.Memory)
		}
	}
}

func TestAsksAboutYou(t *testing.T) {
	for q, want := range map[string]bool{
		"What monthly payment did you calculate for the piano loan?": true,
		"which name did you come up with for our kitten?":            true,
		"what did you propose we call our trivia team?":              true,
		"Which wine did you recommend with eggplant parmigiana?":     true,
		"What's my locker number at the pool?":                       false,
		"Can you list everything I've got for the new flat?":         false,
	} {
		if got := asksAboutYou(q); got != want {
			t.Errorf("asksAboutYou(%q) = %v, want %v", q, got, want)
		}
	}
}

// importDays imports one thread a day for days days from 2024-03-01, each a
// user message of small talk (from a generator seeded with seed) and a
// "Noted." reply: every's text, when every is not nil, is appended to each
// day's message, and said's sentence for the day, followed by one more
// sentence of small talk, to the days it names.
func importDays(t *testing.T, e *Engine, k Key, seed uint64, days int, every func(day int) string, said map[int]string) {
	t.Helper()
	talk := smallTalk{rand.New(rand.NewPCG(seed, 1))}
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	for day := range days {
		u := talk.message()
		if every != nil {
			u += every(day)
		}
		if s, ok := said[day]; ok {
			u += " " + s + " " + talk.sentence()
		}
		msgs := []Message{msg("user", u), msg("assistant", "Noted. "+talk.sentence())}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(day)}, msgs, start.AddDate(0, 0, day)); err != nil {
			t.Fatal(err)
		}
	}
}

// "The day after X" is the day after the day X was told, found by the
// words that name X alone: the rest of the question ("what did I tell you
// I was doing") matches what was said on other days (here the accounts).
// That day's statement and X's own are both in the window at a small
// budget (X's own used to rank below every block of the day after it, and
// was left out).
func TestDayAfterAnEvent(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "dayafter"}
	dayHistory(t, e, k, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), map[int]string{
		8:  "I was doing the accounts all evening, I'll tell you what I was doing it for later.",
		9:  "Been waxing the kayak since breakfast, send help.",
		14: "Our flight home landed at 2am, I'm a zombie.",
		15: "Spent the whole afternoon sanding the old dresser, my arms are dead.",
	})
	q := "What did I tell you I was doing the day after we flew home?"
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: 512, PerMessage: 5, TailPercent: 40, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sanding the old dresser", "flight home landed"} {
		if !strings.Contains(w.Memory, want) {
			t.Errorf("%q is not in the window:\n%s", want, w.Memory)
		}
	}
}

// A hop follows the name it reveals, not the other words of its sentence:
// "my running partner is Elodie, she's much faster than me" leads to
// Elodie, not to whatever else is "faster"; "Elodie's kid Bella turned
// twelve last week" has siblings about other people, which its other rare
// words (kid, twelve) match as well. At 384 tokens the second hop used to
// be crowded out by them.
func TestHopFollowsTheName(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "hopname"}
	said := map[int]string{
		4:  "Side note: my running partner is Elodie, she's much faster than me.",
		12: "Elodie's kid Bella turned twelve last week.",
		30: "Bella has been practising the clarinet every evening.",
	}
	for i, name := range []string{"Kit", "Mateus", "Reuben", "Saoirse", "Ari", "Leah", "Owen", "Jude"} {
		said[14+2*i] = name + "'s kid " + []string{"Rory", "Mina", "Jonah", "Ivy", "Hugh", "Tess", "Milo", "Cleo"}[i] + " turned twelve last week."
	}
	importDays(t, e, k, 7, 40, nil, said)
	q := "What instrument does my running partner's youngest play?"
	for budget, wants := range map[int][]string{
		384:  {"partner is Elodie", "kid Bella"},
		512:  {"partner is Elodie", "kid Bella", "the clarinet"},
		768:  {"partner is Elodie", "kid Bella", "the clarinet"},
		1024: {"partner is Elodie", "kid Bella", "the clarinet"},
	} {
		w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", q)}, Budget: budget, PerMessage: 5, TailPercent: 40, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(w.Memory, want) {
				t.Errorf("budget %d: %q is not in the window:\n%s", budget, want, w.Memory)
			}
		}
	}
}
