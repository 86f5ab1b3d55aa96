package gen

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/tools/eval/dataset"
)

// loadCorpus loads the GOROOT corpus once per top-level test.
func loadCorpus(t *testing.T) *Corpus {
	t.Helper()
	start := time.Now()
	c, err := DefaultCorpus()
	if err != nil {
		t.Fatalf("DefaultCorpus: %v", err)
	}
	n, b := c.Size()
	t.Logf("corpus %s: %d topics, %d sentences, %d bytes, loaded in %v", c.Source, len(c.Topics), n, b, time.Since(start).Round(time.Millisecond))
	if b < 1<<20 {
		t.Fatalf("corpus has only %d bytes of prose", b)
	}
	return c
}

func encode(t *testing.T, cases []dataset.Case) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := dataset.Write(&b, cases); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestGenerate generates cases of several sizes from the real corpus and
// checks every property the generator promises.
func TestGenerate(t *testing.T) {
	corpus := loadCorpus(t)
	sizes := []int{8 << 10, 32 << 10, 128 << 10, 512 << 10}
	var cases []dataset.Case
	for i, size := range sizes {
		start := time.Now()
		cs, err := Generate(Options{Seed: 42 + int64(i), Sizes: []int{size}, Corpus: corpus})
		if err != nil {
			t.Fatalf("Generate size %s: %v", FormatSize(size), err)
		}
		c := cs[0]
		t.Logf("%s case: %d tokens (bytes/4), %d sessions, %d messages, %d questions, generated in %v",
			FormatSize(size), c.HistoryTokens(), len(c.Sessions), countMessages(&c), len(c.Questions), time.Since(start).Round(time.Millisecond))
		cases = append(cases, c)
	}

	t.Run("Determinism", func(t *testing.T) {
		opts := Options{Seed: 7, Sizes: []int{8 << 10, 32 << 10}, QuestionsPerType: 2, Corpus: corpus}
		a, err := Generate(opts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Generate(opts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encode(t, a), encode(t, b)) {
			t.Fatal("same options gave different output")
		}
		opts.Seed = 8
		c, err := Generate(opts)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(encode(t, a), encode(t, c)) {
			t.Fatal("different seeds gave the same output")
		}
		// A case does not depend on the other cases generated with it.
		opts.Seed = 7
		opts.Sizes = []int{8 << 10}
		d, err := Generate(opts)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(encode(t, a[:1]), encode(t, d)) {
			t.Fatal("first case changed when the second was dropped")
		}
	})

	t.Run("Sizes", func(t *testing.T) {
		for i, c := range cases {
			got, want := c.HistoryTokens(), sizes[i]
			if diff := float64(got-want) / float64(want); diff < -0.1 || diff > 0.1 {
				t.Errorf("case %s: %d tokens, want %d ±10%%", c.ID, got, want)
			}
		}
	})

	t.Run("Valid", func(t *testing.T) {
		for _, c := range cases {
			if err := c.Validate(); err != nil {
				t.Error(err)
			}
		}
		back, err := dataset.Read(bytes.NewReader(encode(t, cases)))
		if err != nil || len(back) != len(cases) {
			t.Fatalf("reading generated cases back: %d, %v", len(back), err)
		}
	})

	t.Run("EvidenceExactlyOnce", func(t *testing.T) {
		for _, c := range cases {
			for _, q := range c.Questions {
				for _, e := range q.Evidence {
					if n := c.CountInHistory(e); n != 1 {
						t.Errorf("case %s %s: evidence %q occurs %d times", c.ID, q.ID, e, n)
					}
				}
				for _, p := range q.AnswerParts() {
					if c.CountInHistory(p) == 0 {
						t.Errorf("case %s %s: answer part %q absent", c.ID, q.ID, p)
					}
				}
			}
		}
	})

	t.Run("EveryType", func(t *testing.T) {
		for _, c := range cases {
			count := map[string]int{}
			for _, q := range c.Questions {
				count[q.Type]++
			}
			for _, typ := range dataset.Types() {
				if count[typ] != DefaultQuestionsPerType {
					t.Errorf("case %s: %d %s questions, want %d", c.ID, count[typ], typ, DefaultQuestionsPerType)
				}
			}
			if len(c.Questions) != len(dataset.Types())*DefaultQuestionsPerType {
				t.Errorf("case %s: %d questions", c.ID, len(c.Questions))
			}
		}
	})

	t.Run("Sessions", func(t *testing.T) {
		for _, c := range cases {
			if len(c.Sessions) < minSessions {
				t.Errorf("case %s: %d sessions", c.ID, len(c.Sessions))
			}
			for i, s := range c.Sessions {
				if i > 0 && !dayOf(s.Time).After(dayOf(c.Sessions[i-1].Time)) {
					t.Errorf("case %s: session %s not on a later day than the one before", c.ID, s.ID)
				}
				for k, m := range s.Messages {
					want := dataset.RoleUser
					if k%2 == 1 {
						want = dataset.RoleAssistant
					}
					if m.Role != want || m.Content == "" {
						t.Errorf("case %s session %s message %d: role %q, %d bytes", c.ID, s.ID, k, m.Role, len(m.Content))
					}
				}
			}
		}
	})

	t.Run("Spread", func(t *testing.T) {
		for _, c := range cases[1:] {
			var thirds [3]int
			total := 0
			for _, q := range c.Questions {
				for _, e := range q.Evidence {
					pos := evidencePosition(&c, e)
					thirds[min(int(pos*3), 2)]++
					total++
				}
			}
			for i, n := range thirds {
				if n*100 < total*15 {
					t.Errorf("case %s: only %d of %d evidence strings in third %d of the history", c.ID, n, total, i+1)
				}
			}
			t.Logf("case %s: evidence per third of the history %v", c.ID, thirds)
		}
	})

	t.Run("TypeShapes", func(t *testing.T) {
		for _, c := range cases {
			for _, q := range c.Questions {
				checkShape(t, &c, q)
			}
		}
	})
}

// checkShape checks what makes a question of its type.
func checkShape(t *testing.T, c *dataset.Case, q dataset.Question) {
	t.Helper()
	where := fmt.Sprintf("case %s %s (%q)", c.ID, q.ID, q.Question)
	name := regexp.MustCompile(personNamePattern).FindString(q.Question)
	switch q.Type {
	case dataset.TypeParaphrase:
		if name == "" {
			t.Errorf("%s: no person named", where)
		}
		if shared := sharedWords(strings.ReplaceAll(q.Question, name, ""), q.Evidence[0]); len(shared) > 0 {
			t.Errorf("%s: shares %q with the evidence beyond the name", where, shared)
		}
	case dataset.TypeLexicalGap:
		if shared := sharedWords(q.Question, q.Evidence[0]); len(shared) > 0 {
			t.Errorf("%s: shares %q with the evidence", where, shared)
		}
	case dataset.TypeMultiHop:
		if len(q.Evidence) != 2 {
			t.Fatalf("%s: %d evidence strings", where, len(q.Evidence))
		}
		if shared := sharedWords(q.Question, q.Evidence[1]); len(shared) > 0 {
			t.Errorf("%s: second hop shares %q with the question", where, shared)
		}
	case dataset.TypeMultiEvidence:
		if n := len(q.Evidence); n < 2 || n > 3 || len(q.AnswerParts()) != n {
			t.Errorf("%s: %d evidence strings, answer %q", where, n, q.Answer)
		}
	case dataset.TypeAssistantSaid:
		if role := roleOf(c, q.Evidence[0]); role != dataset.RoleAssistant {
			t.Errorf("%s: evidence in a %s message", where, role)
		}
	case dataset.TypeKnowledgeUpdate:
		// The person's older value is stated earlier than the evidence.
		first := strings.Index(flatHistory(c), name)
		if name == "" || first < 0 || first >= strings.Index(flatHistory(c), q.Evidence[0]) {
			t.Errorf("%s: no earlier statement about %q", where, name)
		}
	case dataset.TypeExactQuote:
		if nearMisses(c, q.Answer) == 0 {
			t.Errorf("%s: no near-miss of code %s in the history", where, q.Answer)
		}
	case dataset.TypeTemporal:
		// The date names the evidence's session, and other sessions hold
		// statements of the same shape.
		var sess *dataset.Session
		for i := range c.Sessions {
			for _, m := range c.Sessions[i].Messages {
				if strings.Contains(m.Content, q.Evidence[0]) {
					sess = &c.Sessions[i]
				}
			}
		}
		if sess == nil || !strings.Contains(q.Question, sess.Time.Format(dateLayout)) {
			t.Errorf("%s: date does not name the evidence's session", where)
		}
		prefix := strings.TrimSuffix(q.Evidence[0], q.Answer+".")
		if n := strings.Count(flatHistory(c), prefix); n < 1+distractors {
			t.Errorf("%s: %q occurs %d times, want distractors", where, prefix, n)
		}
	}
}

// personNamePattern matches a "First Last" name in a question.
const personNamePattern = `[A-Z][a-z]+ [A-Z][a-z]+`

// stopwordList holds the words ignored when comparing wording.
const stopwordList = `a an the i me my we our us you your is are was were be been do does did done
	what which who whom where when how why to of in on at for from with and or has have had it its this that
	now there these those can will would should about as by up into over after before also just any some
	not no so than then too very s out`

// contentWords returns the lower-cased words of s that are not stopwords.
func contentWords(s string) map[string]bool {
	stop := map[string]bool{}
	for _, w := range strings.Fields(stopwordList) {
		stop[w] = true
	}
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127)
	}) {
		if !stop[w] {
			out[w] = true
		}
	}
	return out
}

// sharedWords returns the content words a and b have in common.
func sharedWords(a, b string) []string {
	wb := contentWords(b)
	var out []string
	for w := range contentWords(a) {
		if wb[w] {
			out = append(out, w)
		}
	}
	return out
}

func countMessages(c *dataset.Case) int {
	n := 0
	for _, s := range c.Sessions {
		n += len(s.Messages)
	}
	return n
}

func dayOf(t time.Time) time.Time { return t.Truncate(24 * time.Hour) }

// flatHistory joins all messages.
func flatHistory(c *dataset.Case) string {
	var b strings.Builder
	for _, s := range c.Sessions {
		for _, m := range s.Messages {
			b.WriteString(m.Content)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// evidencePosition returns where e starts, as a fraction of the history.
func evidencePosition(c *dataset.Case, e string) float64 {
	h := flatHistory(c)
	return float64(strings.Index(h, e)) / float64(len(h))
}

// roleOf returns the role of the message holding s.
func roleOf(c *dataset.Case, s string) string {
	for _, sess := range c.Sessions {
		for _, m := range sess.Messages {
			if strings.Contains(m.Content, s) {
				return m.Role
			}
		}
	}
	return ""
}

// nearMisses counts words of the history that differ from code in one or
// two positions.
func nearMisses(c *dataset.Case, code string) int {
	n := 0
	for _, w := range strings.Fields(flatHistory(c)) {
		w = strings.TrimSuffix(w, ".")
		if len(w) != len(code) || w == code {
			continue
		}
		diff := 0
		for i := range len(w) {
			if w[i] != code[i] {
				diff++
			}
		}
		if diff <= 2 {
			n++
		}
	}
	return n
}

func TestGenerateErrors(t *testing.T) {
	tiny := &Corpus{Source: "test", Topics: []Topic{{Name: "t", Sentences: []string{
		"The quick brown fox jumps over the lazy dog near the river bank.",
		"A second sentence keeps the filler from repeating itself at once.",
	}}}}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no sizes", Options{Corpus: tiny}, "no sizes"},
		{"too small", Options{Sizes: []int{512}, Corpus: tiny}, "below the minimum"},
		{"too many questions", Options{Sizes: []int{8192}, QuestionsPerType: MaxQuestionsPerType + 1, Corpus: tiny}, "out of range"},
		{"negative questions", Options{Sizes: []int{8192}, QuestionsPerType: -1, Corpus: tiny}, "out of range"},
		{"facts do not fit", Options{Sizes: []int{2048}, QuestionsPerType: 4, Corpus: tiny}, "too small"},
		{"empty corpus", Options{Sizes: []int{8192}, Corpus: &Corpus{Source: "empty"}}, "no sentences"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Generate(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Generate = %v, want error containing %q", err, tt.want)
			}
		})
	}
	// The largest question count fits the value tables, even with a corpus
	// that has to repeat itself.
	cases, err := Generate(Options{Seed: 3, Sizes: []int{64 << 10}, QuestionsPerType: MaxQuestionsPerType, Corpus: tiny})
	if err != nil {
		t.Fatalf("Generate with MaxQuestionsPerType: %v", err)
	}
	if got := len(cases[0].Questions); got != MaxQuestionsPerType*len(dataset.Types()) {
		t.Fatalf("%d questions", got)
	}
}

func TestDocSentences(t *testing.T) {
	text := "Package foo does things for you and for others.\n\n" +
		"Reader wraps an [io.Reader] and counts every byte that passes through it. Call f(x) to see.\n\n" +
		"\tcode := block() // not prose at all, skipped entirely\n\n" +
		"Deprecated: use something else entirely, since this no longer works.\n\n" +
		"It accepts many inputs, e.g. strings and numbers, and returns errors when needed. Short one.\n"
	got := docSentences(text)
	want := []string{
		"Package foo does things for you and for others.",
		"Reader wraps an io.Reader and counts every byte that passes through it.",
		"It accepts many inputs, e.g. strings and numbers, and returns errors when needed.",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("docSentences:\n got %q\nwant %q", got, want)
	}
}
