package chatgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

var (
	proseOnce sync.Once
	prose     *Prose
	proseErr  error
)

// testProse loads the prose `make prose` installs; it skips the test when
// it is absent, and fails in CI, which installs it.
func testProse(t *testing.T) *Prose {
	t.Helper()
	proseOnce.Do(func() { prose, proseErr = LoadProse(filepath.Join("..", "..", "..", DefaultProseDir)) })
	if proseErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("prose missing in CI (run `make prose`): %v", proseErr)
		}
		t.Skipf("prose not installed (run `make prose`): %v", proseErr)
	}
	return prose
}

// generated is one generated case with what its questions were built from.
type generated struct {
	c    dataset.Case
	meta map[string]*built
}

var (
	genMu    sync.Mutex
	genCache = map[[2]int64]generated{}
)

// testCases generates (once per test binary) a case of each seed at a
// 32k size, the smallest default size, and at the minimum size, where
// planted statements are densest.
func testCases(t *testing.T) []generated {
	t.Helper()
	p := testProse(t)
	genMu.Lock()
	defer genMu.Unlock()
	var out []generated
	for _, seed := range []int64{1, 2, 3, 101} {
		for _, size := range []int64{MinSize, 32768} {
			key := [2]int64{seed, size}
			g, ok := genCache[key]
			if !ok {
				cases, metas, err := generate(Options{Seed: seed, Sizes: []int{int(size)}, Prose: p})
				if err != nil {
					t.Fatalf("seed %d size %d: %v", seed, size, err)
				}
				g = generated{cases[0], metas[0]}
				genCache[key] = g
			}
			out = append(out, g)
		}
	}
	return out
}

func TestEvidenceOccursExactlyOnceAndAnswersOccur(t *testing.T) {
	for _, g := range testCases(t) {
		if err := g.c.Validate(); err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, q := range g.c.Questions {
			count[q.Type]++
			for _, e := range q.Evidence {
				if n := g.c.CountInHistory(e); n != 1 {
					t.Errorf("%s %s: evidence %q occurs %d times", g.c.ID, q.ID, e, n)
				}
			}
			for _, a := range q.AnswerParts() {
				if g.c.CountInHistory(a) == 0 {
					t.Errorf("%s %s: answer %q not in the history", g.c.ID, q.ID, a)
				}
			}
		}
		for _, typ := range Types() {
			if count[typ] != DefaultQuestionsPerType {
				t.Errorf("%s: %d %s questions, want %d", g.c.ID, count[typ], typ, DefaultQuestionsPerType)
			}
		}
	}
}

// TestParaphraseSharesNoWordNorSynonym: a paraphrase question shares no
// index term (lens.Terms: stopwords dropped, stemmed) with its evidence, and
// no content word of either is a direct WordNet synonym of a word of the
// other.
func TestParaphraseSharesNoWordNorSynonym(t *testing.T) {
	cases := testCases(t)
	for _, g := range cases {
		for _, q := range g.c.Questions {
			if q.Type != dataset.TypeParaphrase {
				continue
			}
			ev := strings.Join(q.Evidence, " ")
			if s := shared(termSet(q.Question), termSet(ev)); len(s) > 0 {
				t.Errorf("%s %s: %q and %q share %v", g.c.ID, q.ID, q.Question, ev, s)
			}
		}
	}
	w := loadWordNet(t)
	for _, g := range cases {
		for _, q := range g.c.Questions {
			if q.Type != dataset.TypeParaphrase {
				continue
			}
			ev := strings.Join(q.Evidence, " ")
			qt, et := termSet(q.Question), termSet(ev)
			for term, why := range w.synonymTerms(ev) {
				if qt[term] {
					t.Errorf("%s %s: question %q holds %q, a WordNet synonym from the evidence (%s)", g.c.ID, q.ID, q.Question, term, why)
				}
			}
			for term, why := range w.synonymTerms(q.Question) {
				if et[term] {
					t.Errorf("%s %s: evidence %q holds %q, a WordNet synonym from the question (%s)", g.c.ID, q.ID, ev, term, why)
				}
			}
		}
	}
}

// TestParaphraseTablesShareNothing checks every role, relation and thing
// of the tables with every wording, not only the ones a seed drew.
func TestParaphraseTablesShareNothing(t *testing.T) {
	w := loadWordNet(t)
	type pair struct{ named, described string }
	var pairs []pair
	for _, r := range roles {
		pairs = append(pairs, pair{"my " + r.word, r.desc})
	}
	for _, r := range relations {
		pairs = append(pairs, pair{"my " + r.word, r.desc + " called"})
	}
	for _, th := range things {
		pairs = append(pairs, pair{"bought a " + th.word + ", the one, very pleased so far. " + th.brands, "which make did we pick for the " + th.desc})
	}
	for _, p := range pairs {
		if s := shared(termSet(p.named), termSet(p.described)); len(s) > 0 {
			t.Errorf("%q and %q share %v", p.named, p.described, s)
		}
		dt := termSet(p.described)
		for term, why := range w.synonymTerms(p.named) {
			if dt[term] {
				t.Errorf("%q describes with %q, a WordNet synonym (%s)", p.described, term, why)
			}
		}
	}
}

// TestKnowledgeUpdatesSupersede: the slot's statements are in strictly
// later sessions, the evidence is the last change and the statement it
// replaced, the answer is the newest value and no older statement holds
// it, and the question shares no word with any change.
func TestKnowledgeUpdatesSupersede(t *testing.T) {
	for _, g := range testCases(t) {
		for _, q := range g.c.Questions {
			if q.Type != dataset.TypeKnowledgeUpdate {
				continue
			}
			b := g.meta[q.ID]
			ch := b.chain
			if len(ch) < 3 || len(ch) > 4 {
				t.Errorf("%s %s: %d statements, want 3 or 4 (two or three changes)", g.c.ID, q.ID, len(ch))
				continue
			}
			for i := 1; i < len(ch); i++ {
				if !g.c.Sessions[ch[i].session].Time.After(g.c.Sessions[ch[i-1].session].Time) {
					t.Errorf("%s %s: change %d is not later than the statement before it", g.c.ID, q.ID, i)
				}
			}
			last, prev := ch[len(ch)-1], ch[len(ch)-2]
			if !slices.Equal(q.Evidence, []string{prev.text, last.text}) {
				t.Errorf("%s %s: evidence %q, want the last two statements", g.c.ID, q.ID, q.Evidence)
			}
			if !strings.Contains(last.text, q.Answer) {
				t.Errorf("%s %s: answer %q not in the newest statement %q", g.c.ID, q.ID, q.Answer, last.text)
			}
			for _, p := range ch[:len(ch)-1] {
				if strings.Contains(p.text, q.Answer) {
					t.Errorf("%s %s: older statement %q holds the current value", g.c.ID, q.ID, p.text)
				}
			}
			verbs := map[string]bool{}
			for _, p := range ch[1:] {
				if s := shared(termSet(q.Question), termSet(p.text)); len(s) > 0 {
					t.Errorf("%s %s: question %q shares %v with the change %q", g.c.ID, q.ID, q.Question, s, p.text)
				}
				verbs[strings.Replace(p.text, valueIn(p.text, g.c, q), "", 1)] = true
			}
			if len(verbs) != len(ch)-1 {
				t.Errorf("%s %s: changes are not all worded differently", g.c.ID, q.ID)
			}
		}
	}
}

// valueIn is a crude stand-in for the slot value of a change: the longest
// word run starting with a capital or "a " (good enough to compare the
// wordings around it).
func valueIn(text string, _ dataset.Case, _ dataset.Question) string {
	best := ""
	for _, w := range strings.Fields(text) {
		if len(w) > len(best) && w[0] >= 'A' && w[0] <= 'Z' {
			best = w
		}
	}
	return best
}

// TestMultiHopLaterHopsShareNothing: hops after the first share no index
// term with the question, and each hop names what the one before ended with.
func TestMultiHopLaterHopsShareNothing(t *testing.T) {
	for _, g := range testCases(t) {
		for _, q := range g.c.Questions {
			want := map[string]int{dataset.TypeMultiHop: 2, TypeMultiHop3: 3}[q.Type]
			if want == 0 {
				continue
			}
			hops := g.meta[q.ID].hops
			if len(hops) != want || len(q.Evidence) != want {
				t.Errorf("%s %s: %d hops, want %d", g.c.ID, q.ID, len(hops), want)
				continue
			}
			qt := termSet(q.Question)
			for i, h := range hops {
				if i > 0 {
					if s := shared(qt, termSet(h.text)); len(s) > 0 {
						t.Errorf("%s %s: hop %d %q shares %v with the question %q", g.c.ID, q.ID, i+1, h.text, s, q.Question)
					}
					if len(shared(termSet(hops[i-1].text), termSet(h.text))) == 0 {
						t.Errorf("%s %s: hop %d %q does not follow from %q", g.c.ID, q.ID, i+1, h.text, hops[i-1].text)
					}
				}
			}
			if !strings.Contains(hops[want-1].text, q.Answer) {
				t.Errorf("%s %s: the last hop does not hold the answer", g.c.ID, q.ID)
			}
		}
	}
}

// TestTemporalAnswersShareNothing: the answer of a day question shares no
// term with the question; a dated question names the evidence's day, the
// only session that day; a day-after question's two sessions are one day
// apart.
func TestTemporalAnswersShareNothing(t *testing.T) {
	day := func(tm time.Time) string { return tm.Format("2006-01-02") }
	for _, g := range testCases(t) {
		seen := map[string]int{}
		for _, s := range g.c.Sessions {
			seen[day(s.Time)]++
		}
		for d, n := range seen {
			if n > 1 {
				t.Errorf("%s: %d sessions on %s", g.c.ID, n, d)
			}
		}
		for _, q := range g.c.Questions {
			if q.Type != dataset.TypeTemporal && q.Type != TypeTemporalRelative {
				continue
			}
			if s := shared(termSet(q.Question), termSet(q.Answer)); len(s) > 0 {
				t.Errorf("%s %s: answer %q shares %v with the question %q", g.c.ID, q.ID, q.Answer, s, q.Question)
			}
			b := g.meta[q.ID]
			if q.Type == dataset.TypeTemporal {
				when := g.c.Sessions[b.evidence[0].session].Time
				if !strings.Contains(q.Question, when.Format("2006")) && !strings.Contains(q.Question, when.Format("Monday")) {
					t.Errorf("%s %s: %q names neither the weekday nor the year of %s", g.c.ID, q.ID, q.Question, when)
				}
				if !strings.Contains(q.Question, when.Format("January")) && !strings.Contains(q.Question, when.Format("Jan")) {
					t.Errorf("%s %s: %q does not name the month of %s", g.c.ID, q.ID, q.Question, when)
				}
				continue
			}
			a, e := g.c.Sessions[b.evidence[0].session].Time, g.c.Sessions[b.evidence[1].session].Time
			if day(a.AddDate(0, 0, 1)) != day(e) {
				t.Errorf("%s %s: anchor on %s, answer on %s, want the day after", g.c.ID, q.ID, day(a), day(e))
			}
		}
	}
}

// TestPaddedQuestionsCarryRecurringSmallTalk: a padded question holds at
// least two pleasantries, each said in the history, at least three times
// from the 32k size on.
func TestPaddedQuestionsCarryRecurringSmallTalk(t *testing.T) {
	for _, g := range testCases(t) {
		for _, q := range g.c.Questions {
			if q.Type != TypePadded {
				continue
			}
			n := 0
			for _, p := range pleasantries {
				if strings.Contains(q.Question, p) {
					n++
					want := 1
					if g.c.HistoryTokens() > 30000 {
						want = 3
					}
					if c := g.c.CountInHistory(p); c < want {
						t.Errorf("%s %s: %q said only %d times in the history", g.c.ID, q.ID, p, c)
					}
				}
			}
			if n < 2 {
				t.Errorf("%s %s: %q holds %d pleasantries, want at least 2", g.c.ID, q.ID, q.Question, n)
			}
		}
	}
}

func TestMultiEvidenceInDistinctSessionsInTimeOrder(t *testing.T) {
	for _, g := range testCases(t) {
		for _, q := range g.c.Questions {
			if q.Type != dataset.TypeMultiEvidence {
				continue
			}
			ev := g.meta[q.ID].evidence
			parts := q.AnswerParts()
			if len(ev) < 3 || len(parts) != len(q.Evidence) {
				t.Errorf("%s %s: %d evidence, %d answer parts", g.c.ID, q.ID, len(ev), len(parts))
			}
			for i, e := range q.Evidence {
				if !strings.Contains(e, parts[i]) {
					t.Errorf("%s %s: part %q not in evidence %q", g.c.ID, q.ID, parts[i], e)
				}
			}
			sess := map[int]bool{}
			for _, e := range ev {
				if sess[e.session] {
					t.Errorf("%s %s: two items in one session", g.c.ID, q.ID)
				}
				sess[e.session] = true
			}
		}
	}
}

func TestSizesNearTarget(t *testing.T) {
	p := testProse(t)
	for _, size := range []int{MinSize, 16384, 32768, 131072} {
		cases, err := Generate(Options{Seed: 7, Sizes: []int{size}, Prose: p})
		if err != nil {
			t.Fatal(err)
		}
		if got := cases[0].HistoryTokens(); got < size*9/10 || got > size*11/10 {
			t.Errorf("size %d: %d tokens (bytes/4), want within 10%%", size, got)
		}
	}
}

func TestDeterministicBySeed(t *testing.T) {
	p := testProse(t)
	gen := func(seed int64) []byte {
		cases, err := Generate(Options{Seed: seed, Sizes: []int{MinSize, 16384}, Prose: p})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := dataset.Write(&b, cases); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b, c := gen(5), gen(5), gen(6)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different datasets")
	}
	if bytes.Equal(a, c) {
		t.Fatal("different seeds gave the same dataset")
	}
}

func TestOptionsRejected(t *testing.T) {
	p := &Prose{}
	for _, o := range []Options{
		{Sizes: nil, Prose: p},
		{Sizes: []int{MinSize - 1}, Prose: p},
		{Sizes: []int{MinSize}, QuestionsPerType: MaxQuestionsPerType + 1, Prose: p},
		{Sizes: []int{MinSize}, QuestionsPerType: -1, Prose: p},
	} {
		if _, err := Generate(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestSplitsAreDisjoint(t *testing.T) {
	for _, s := range DevSeeds {
		if slices.Contains(HeldOutSeeds, s) {
			t.Fatalf("seed %d is in both splits", s)
		}
	}
}

// TestSplitsDrawDisjointEntries: dev and held-out cases name different
// roles, relations, things, events and suggestion topics.
func TestSplitsDrawDisjointEntries(t *testing.T) {
	var words []string
	for _, r := range roles {
		words = append(words, r.word)
	}
	for _, r := range relations {
		words = append(words, r.word)
	}
	for _, th := range things {
		words = append(words, th.word)
	}
	for _, a := range anchors {
		words = append(words, a.named)
	}
	for _, s := range saidTopics {
		words = append(words, s.request)
	}
	seen := map[bool]map[string]bool{false: {}, true: {}}
	for _, g := range testCases(t) {
		var seed int64
		if _, err := fmt.Sscanf(g.c.ID, "chat-%d-", &seed); err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, q := range g.c.Questions {
			all.WriteString(q.Question + " " + strings.Join(q.Evidence, " ") + " ")
		}
		for _, w := range words {
			if strings.Contains(all.String(), w) {
				seen[IsHeldOut(seed)][w] = true
			}
		}
	}
	if len(seen[true]) == 0 || len(seen[false]) == 0 {
		t.Fatalf("dev used %d entries, held-out %d", len(seen[false]), len(seen[true]))
	}
	for w := range seen[true] {
		if seen[false][w] {
			t.Errorf("%q is used by both splits", w)
		}
	}
}
