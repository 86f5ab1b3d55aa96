package thesaurus

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/megacontext/megacontext/memory/lens"
)

// wordnetDir returns the database folder, skipping the test when it is
// absent, except under CI, which installs it with `make wordnet`.
func wordnetDir(tb testing.TB) string {
	tb.Helper()
	d := os.Getenv(EnvDir)
	if d == "" {
		d = filepath.Join("..", "..", DefaultDir)
	}
	if _, err := os.Stat(filepath.Join(d, "data.noun")); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("WordNet database missing in %s under CI (`make wordnet` installs it): %v", d, err)
		}
		tb.Skipf("WordNet database missing in %s: run `make wordnet` (or set %s)", d, EnvDir)
	}
	return d
}

var (
	shared     *Thesaurus
	sharedErr  error
	sharedOnce sync.Once
)

func open(tb testing.TB) *Thesaurus {
	tb.Helper()
	d := wordnetDir(tb)
	sharedOnce.Do(func() { shared, sharedErr = Open(d) })
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

func terms(ts []lens.Term) map[string]float64 {
	m := map[string]float64{}
	for _, t := range ts {
		m[t.Text] = t.Weight
	}
	return m
}

// stem is the lens form of a single word.
func stem(w string) string { return lens.Terms(w)[0] }

func TestExpandPairs(t *testing.T) {
	th := open(t)
	for _, tc := range []struct {
		query, want string
	}{
		{"couch", "sofa"},
		{"bought", "purchase"},
		{"pram", "stroller"},
		{"fridge", "refrigerator"},
		{"bike", "bicycle"},
		{"TV", "television"},
		{"rucksack", "backpack"},
		{"mobile phone", "cellphone"}, // "mobile" alone: WordNet 3.1 has no phone sense
		{"carpet", "rug"},
		{"jacket", "coat"}, // hypernym; "coat" does not reach "jacket" (a hyponym)
		{"heart specialist", "cardiologist"},
		{"skin doctor", "dermatologist"},
		{"eye doctor", "ophthalmologist"},
		{"foot doctor", "podiatrist"},
		{"feet doctor", "podiatrist"}, // irregular plural
		{"brain specialist", "neurologist"},
		{"hormone doctor", "endocrinologist"},
		{"stomach specialist", "gastroenterologist"},
		{"joint specialist", "rheumatologist"},
		{"kidney specialist", "nephrologist"}, // not in WordNet: the agent of nephrology
		{"sneakers", "shoe"},
		{"Which shade is the couch I bought recently?", "sofa"},
		{"Which shade is the couch I bought recently?", "purchased"},
		{"What did the heart specialist advise me to have less of?", "cardiologist"},
		{"Who is my new foot doctor?", "podiatrist"},
	} {
		got := terms(th.Expand(tc.query))
		if _, ok := got[stem(tc.want)]; !ok {
			t.Errorf("Expand(%q) lacks %q: %v (related %v)", tc.query, tc.want, th.Expand(tc.query), th.Related(tc.query))
		}
	}
}

func TestRelated(t *testing.T) {
	th := open(t)
	for _, tc := range []struct{ word, want string }{
		{"couch", "sofa"},
		{"heart specialist", "cardiologist"},
		{"fridge", "electric refrigerator"},
		{"mobile phone", "cellular telephone"},
		{"kidney specialist", "nephrologist"},
	} {
		if got := th.Related(tc.word); !slices.Contains(got, tc.want) {
			t.Errorf("Related(%q) = %v, lacks %q", tc.word, got, tc.want)
		}
	}
}

func TestExpandBounded(t *testing.T) {
	th := open(t)
	for _, q := range []string{
		"I have to take the thing and go",
		"Can you tell me what I said about it last time?",
		"ok thanks, what do you think?",
		"",
		"12345 2024-06-01",
	} {
		if got := th.Expand(q); len(got) != 0 {
			t.Errorf("Expand(%q) = %v, want nothing", q, got)
		}
	}
	long := `Can you remind me what time we agreed to meet for dinner with my parents next
Friday at the restaurant downtown, and whether my sister said she would bring the book she
recommended for my trip to Japan, and how many hours I spent working on the project last month?`
	got := th.Expand(long + " " + strings.Repeat(long+" ", 20))
	if len(got) == 0 || len(got) > MaxTerms {
		t.Fatalf("Expand(long) gave %d terms, want 1..%d: %v", len(got), MaxTerms, got)
	}
	own := map[string]bool{}
	for _, w := range lens.Terms(long) {
		own[w] = true
	}
	for _, term := range got {
		if own[term.Text] {
			t.Errorf("Expand repeats the question's own term %q", term.Text)
		}
		if term.Weight <= 0 || term.Weight > WeightPhrase {
			t.Errorf("term %v: weight out of (0, %v]", term, WeightPhrase)
		}
	}
	m := terms(got)
	// Senses a careless expansion would add: "time" -> "clock time",
	// "take" -> "occupy", "thing" -> "object", "rede" stemmed to "red".
	for _, junk := range []string{"clock", "occupi", "object", "red", "entiti", "ton", "abstract"} {
		if _, ok := m[junk]; ok {
			t.Errorf("Expand(long) includes junk %q: %v", junk, got)
		}
	}
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "make wordnet") {
		t.Fatalf("Open(empty dir) error = %v, want a hint to run make wordnet", err)
	}
	t.Setenv(EnvDir, t.TempDir())
	if _, err := Open(""); err == nil || !strings.Contains(err.Error(), os.Getenv(EnvDir)) {
		t.Fatalf("Open(\"\") with %s set: error = %v, want it to name that folder", EnvDir, err)
	}
}

func TestNilThesaurus(t *testing.T) {
	var th *Thesaurus
	if th.Expand("couch") != nil || th.Related("couch") != nil {
		t.Fatal("a nil Thesaurus expands nothing")
	}
}

func BenchmarkOpen(b *testing.B) {
	d := wordnetDir(b)
	var th *Thesaurus
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		var err error
		if th, err = Open(d); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMB")
	runtime.KeepAlive(th)
}

func BenchmarkExpand(b *testing.B) {
	th := open(b)
	qs := []string{
		"Which shade is the couch I bought recently?",
		"What did the heart specialist advise me to have less of?",
		"How many hours did I spend working on the project last month, and what did my manager say about it?",
		"What was the name of the book my sister recommended for my trip to Japan?",
	}
	i := 0
	for b.Loop() {
		th.Expand(qs[i%len(qs)])
		i++
	}
}

// A derived agent noun replaces the weaker matches through the modifier's
// relatives ("kidney" is part of the urinary system: urologist), and is
// derived only from fields whose own description names the modifier.
func TestFieldAgentsOnlyFromOwnField(t *testing.T) {
	th := open(t)
	if got := th.Related("kidney specialist"); slices.Contains(got, "urologist") {
		t.Errorf("Related(kidney specialist) = %v: a relatives-only match survived the field's agent", got)
	}
	if got := th.fieldAgents("heart"); len(got) != 0 {
		t.Errorf("fieldAgents(heart) = %v: WordNet has cardiologist, nothing to derive", got)
	}
}
