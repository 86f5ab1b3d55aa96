package memory

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestQuestionDays(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		q    string
		want []string
	}{
		{"Which book did I finish reading on Thursday, December 12, 2024?", []string{"2024-12-12"}},
		{"what happened on 2024-02-29", []string{"2024-02-29"}},
		{"on the 3rd of March 2023?", []string{"2023-03-03"}},
		{"lunch on Jan 5?", []string{"2025-01-05"}},
		{"and on December 24?", []string{"2024-12-24"}}, // latest not after now
		{"what did I do yesterday", []string{"2025-03-09"}},
		{"no date here, 12 apples in May", nil},
		{"version 2024-13-45", nil},
	}
	for _, c := range cases {
		var got []string
		for _, d := range questionDays(c.q, now, nil) {
			got = append(got, d.Format("2006-01-02"))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("questionDays(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

func FuzzQuestionDays(f *testing.F) {
	f.Add("on December 12, 2024 and 2023-01-02 and 3rd of May")
	f.Fuzz(func(t *testing.T, q string) {
		for _, d := range questionDays(q, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), nil) {
			if d.Hour() != 0 || d.Location() != time.UTC {
				t.Fatalf("day %v is not a UTC midnight", d)
			}
		}
	})
}

func TestDayNamedInQuestionWins(t *testing.T) {
	e := openEngine(t, "")
	k := Key{Tenant: "t", Context: "days"}
	start := time.Date(2024, 12, 1, 9, 0, 0, 0, time.UTC)
	books := []string{"The Velvet Archive", "The Lighthouse Ledger", "Paper Moons", "The Quiet Engine", "Salt and Iron"}
	for day := 0; day < 20; day++ {
		msgs := []Message{msg("user", "Let us talk about the river garden and the mountain village for a while, then the market.")}
		if day%4 == 0 {
			msgs = append(msgs, msg("user", "Today I finished reading "+books[day/4]+"."))
		}
		msgs = append(msgs, msg("assistant", strings.Repeat("The harbor lantern story continues with the castle teacher. ", 6)))
		if _, err := e.Import(Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(day)}, msgs, start.AddDate(0, 0, day)); err != nil {
			t.Fatal(err)
		}
	}
	// Day 8 is December 9: The Paper Moons.
	w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Which book did I finish reading on Monday, December 9, 2024?")}, Budget: 700, PerMessage: 4, TailPercent: 40, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.Memory, "Paper Moons") {
		t.Fatalf("the named day's statement is missing:\n%s", w.Memory)
	}
}

// A date without a year is the latest such day that the history holds
// something on, on the weekday the question names when one is.
func TestQuestionDaysWithoutYear(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	held := map[string]bool{"2024-02-09": true, "2023-02-09": true, "2021-02-09": true}
	has := func(d time.Time) bool { return held[d.Format("2006-01-02")] }
	for _, c := range []struct{ q, want string }{
		{"Remind me what I was doing on February 9.", "2024-02-09"},           // the latest held, not 2026
		{"Remind me what I was doing on Friday, February 9.", "2024-02-09"},   // a Friday in 2024
		{"Remind me what I was doing on Thursday, February 9.", "2023-02-09"}, // a Thursday in 2023
		{"What was I up to on Tue 9 Feb?", "2021-02-09"},                      // a Tuesday in 2021
		{"What was I up to on Monday, February 9?", "2024-02-09"},             // no such Monday held: the latest
		{"What was I up to on March 3?", "2026-03-03"},                        // nothing held: the latest not after now
	} {
		got := questionDays(c.q, now, has)
		if len(got) != 1 || got[0].Format("2006-01-02") != c.want {
			t.Errorf("questionDays(%q) = %v, want %s", c.q, got, c.want)
		}
	}
}
