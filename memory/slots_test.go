package memory

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// Knowledge updates (issue 9, item 4): the newest statement of a slot and
// the one it replaced reach the window, although they share no word with
// the question, among statements of other slots and lists told once, a
// friend's news of the same kind, small talk that marks time ("finally
// the weekend") and passages the user pasted in doubled quotation marks
// whose words come near the question's.
func TestSlotNewestAndReplaced(t *testing.T) {
	e := openGloveEngine(t)
	k := Key{Tenant: "t", Context: "slots"}
	r := rand.New(rand.NewPCG(11, 12))
	at := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	const (
		first  = "Opened an account with Corvid Mutual, their app is decent."
		second = "Closed everything at Corvid Mutual and went over to Pellinor Trust this week."
		newest = "We're with Ardwick Credit Union now, the fees were getting silly."
	)
	told := map[int]string{
		6:  first,
		21: "My brother keeps his money with Ostrava Savings, he swears by them.",
		29: second,
		37: "Ordered a walnut desk for the study, arriving Friday.",
		44: "Priya got a cat called Biscuit, it hates everyone.",
		52: newest,
		58: "Our plumber is Teodor Vance, write that down somewhere.",
		63: "The dentist moved my appointment to the ninth.",
		66: "Paid the Hollin & Marsh invoice for the roof, ouch.",
		67: "Spent a fortune at Quarto Books on the way home.",
		68: "Lent my sister forty quid for the train to Dunmore.",
	}
	passage := `can you explain this bit: ""The old banker counted the coins twice, for money, he said, was a thing that ran away from men who trusted it; and the clerk, who had been paid in promises all winter, said nothing and wrote the sum in the ledger."" — is he bitter?`
	small := []string{"Finally the weekend, what a week.", "Long day today, the trains were a mess.", "Made pancakes for everyone this morning."}
	for s := range 70 {
		text := small[r.IntN(len(small))] + " " + filler(r, 10) + "."
		switch x, ok := told[s]; {
		case ok:
			text = x
		case s%5 == 4:
			text = passage
		}
		msgs := []Message{msg("user", text), msg("assistant", "Noted. "+filler(r, 24)+".")}
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, at.Add(time.Duration(s)*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	q := "Who looks after my money at the moment?"
	w, err := e.Prepare(Request{Key: Key{Tenant: k.Tenant, Context: k.Context, Thread: "q"}, Messages: []Message{msg("user", q)}, Budget: 520, PerMessage: 4, TailPercent: 20, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{newest, second} {
		if !strings.Contains(w.Memory, s) {
			t.Errorf("%q: %q is not in the window:\n%s", q, s, w.Memory)
		}
	}
}

func TestQuotedSpan(t *testing.T) {
	cases := []struct {
		text, block string
		want        bool
	}{
		{`explain this: ""He went, "never," said he, "to the sea."" — why?`, "to the sea", true},
		{`explain this: ""He went, "never," said he, "to the sea."" — why?`, "why?", false},
		{`explain this: ""He went, "never," said he, "to the sea."" — why?`, "explain", false},
		{`I told her "no" and moved on`, "moved on", false},
		{`“Call me Ishmael. Some years ago” is how it opens`, "Some years", true},
		{`no quotes at all here`, "quotes", false},
	}
	for _, c := range cases {
		i := strings.Index(c.text, c.block)
		if got := quotedSpan(c.text, i); got != c.want {
			t.Errorf("quotedSpan(%q, at %q) = %v, want %v", c.text, c.block, got, c.want)
		}
	}
}

func TestChangeMarkers(t *testing.T) {
	cases := []struct {
		s    string
		want bool
	}{
		{"We're with Ardwick Credit Union now.", true},
		{"Went over to Pellinor Trust this week.", true},
		{"No longer at the old place.", true},
		{"Our plumber is Teodor Vance.", false},
		{"My brother keeps his money with Ostrava Savings.", false},
		// Words that only contain a marker are content.
		{"The snowboard is in the shed.", false},
		{"Newton's cradle on the desk.", false},
	}
	for _, c := range cases {
		if got := changeRE.MatchString(c.s); got != c.want {
			t.Errorf("changeRE.MatchString(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
