package policy

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

func mustCompile(tb testing.TB, rules []Rule) *Policy {
	tb.Helper()
	p, err := Compile(rules)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"unknown detector", []Rule{{Detector: "ssn"}}, `unknown detector "ssn"`},
		{"bad regex", []Rule{{Name: "x", Pattern: "a("}}, "bad pattern"},
		{"unknown action", []Rule{{Detector: "email", Action: "drop"}}, `unknown action "drop"`},
		{"duplicate names", []Rule{{Detector: "email"}, {Name: "email", Pattern: "x"}}, `duplicate rule name "email"`},
		{"neither", []Rule{{Name: "empty"}}, "neither detector nor pattern"},
		{"both", []Rule{{Name: "b", Detector: "email", Pattern: "x"}}, "both detector and pattern"},
		{"unnamed pattern", []Rule{{Pattern: "x"}}, "needs a name"},
		{"bad name", []Rule{{Name: "a]b", Pattern: "x"}}, "must not contain"},
		{"empty scope", []Rule{{Detector: "email", AllowScopes: []string{"pii", " "}}}, "empty scope"},
	}
	for _, c := range cases {
		_, err := Compile(c.rules)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Compile error = %v, want it to contain %q", c.name, err, c.want)
		}
	}
	p, err := Compile([]Rule{
		{Detector: "email", Action: "REDACT"},
		{Name: "emails-for-ops", Detector: "email", Action: "exclude", AllowScopes: []string{"ops"}},
		{Name: "ticket", Pattern: `TICKET-\d+`},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Rules(); !slices.Equal(got, []string{"email", "emails-for-ops", "ticket"}) {
		t.Errorf("Rules() = %q", got)
	}
	if _, err := Compile(DefaultRules()); err != nil {
		t.Errorf("DefaultRules: %v", err)
	}
	if _, err := Compile(nil); err != nil {
		t.Errorf("Compile(nil): %v", err)
	}
}

func TestScanAndApply(t *testing.T) {
	p := mustCompile(t, []Rule{
		{Detector: "email", AllowScopes: []string{"pii"}},
		{Detector: "api_key", Action: "exclude", AllowScopes: []string{"secrets"}},
		{Name: "ticket", Pattern: `TICKET-\d+`, AllowScopes: []string{"support"}},
	})
	text := "Mail bob@example.com about TICKET-42, key sk-Ab3dEf9hIjKlMn0pQrStUvWx."
	spans := p.Scan(text)
	want := []Span{
		{5, 20, "email"},
		{27, 36, "ticket"},
		{42, 69, "api_key"},
	}
	if !slices.Equal(spans, want) {
		t.Fatalf("Scan = %+v, want %+v", spans, want)
	}
	if tags := Tags(spans); !slices.Equal(tags, []string{"email", "ticket", "api_key"}) {
		t.Errorf("Tags = %q", tags)
	}

	cases := []struct {
		scopes   []string
		out      string
		excluded bool
		hits     []Hit
	}{
		{nil, "Mail [redacted:email] about [redacted:ticket], key [redacted:api_key].", true,
			[]Hit{{"email", "redact"}, {"ticket", "redact"}, {"api_key", "exclude"}}},
		{[]string{"pii", "support"}, "Mail bob@example.com about TICKET-42, key [redacted:api_key].", true,
			[]Hit{{"api_key", "exclude"}}},
		{[]string{"secrets"}, "Mail [redacted:email] about [redacted:ticket], key sk-Ab3dEf9hIjKlMn0pQrStUvWx.", false,
			[]Hit{{"email", "redact"}, {"ticket", "redact"}}},
		{[]string{"pii", "support", "secrets"}, text, false, nil},
	}
	for _, c := range cases {
		out, excluded, hits := p.Apply(text, spans, c.scopes)
		if out != c.out || excluded != c.excluded || !slices.Equal(hits, c.hits) {
			t.Errorf("Apply(scopes=%q) = %q, %v, %v; want %q, %v, %v", c.scopes, out, excluded, hits, c.out, c.excluded, c.hits)
		}
		out2, excluded2, hits2 := p.Filter(text, c.scopes)
		if out2 != out || excluded2 != excluded || !slices.Equal(hits2, hits) {
			t.Errorf("Filter(scopes=%q) differs from Apply", c.scopes)
		}
	}
}

func TestScanOverlapResolution(t *testing.T) {
	text := "contact alice@example.com now"
	// Pattern overlapping the e-mail's domain; the e-mail rule comes first.
	p := mustCompile(t, []Rule{
		{Detector: "email"},
		{Name: "domain", Pattern: `example\.com now`},
	})
	if got, want := p.Scan(text), []Span{{8, 29, "email"}}; !slices.Equal(got, want) {
		t.Errorf("redact/redact merge = %+v, want %+v", got, want)
	}
	// An exclude rule wins regardless of order.
	p = mustCompile(t, []Rule{
		{Detector: "email"},
		{Name: "domain", Pattern: `example\.com now`, Action: "exclude"},
	})
	if got, want := p.Scan(text), []Span{{8, 29, "domain"}}; !slices.Equal(got, want) {
		t.Errorf("exclude wins = %+v, want %+v", got, want)
	}
	// Touching spans stay apart.
	p = mustCompile(t, []Rule{{Name: "a", Pattern: "ab"}, {Name: "b", Pattern: "cd"}})
	if got, want := p.Scan("abcd"), []Span{{0, 2, "a"}, {2, 4, "b"}}; !slices.Equal(got, want) {
		t.Errorf("touching = %+v, want %+v", got, want)
	}
	// Empty regexp matches are ignored.
	p = mustCompile(t, []Rule{{Name: "empty", Pattern: "x*"}})
	if got, want := p.Scan("ab xx"), []Span{{3, 5, "empty"}}; !slices.Equal(got, want) {
		t.Errorf("empty matches = %+v, want %+v", got, want)
	}
}

func TestApplyDefensive(t *testing.T) {
	p := mustCompile(t, []Rule{{Name: "r", Pattern: "x"}})
	text := "hello"
	cases := []struct {
		spans []Span
		want  string
	}{
		{[]Span{{3, 99, "r"}}, "hel[redacted:r]"},
		{[]Span{{-5, 2, "r"}}, "[redacted:r]llo"},
		{[]Span{{3, 4, "r"}, {0, 1, "r"}}, "[redacted:r]el[redacted:r]o"},
		{[]Span{{0, 3, "r"}, {1, 4, "r"}}, "[redacted:r][redacted:r]o"},
		{[]Span{{4, 2, "r"}, {9, 12, "r"}}, "hello"},
		{[]Span{{0, 5, "gone"}}, "hello"},
	}
	for _, c := range cases {
		if got, _, _ := p.Apply(text, c.spans, nil); got != c.want {
			t.Errorf("Apply(%+v) = %q, want %q", c.spans, got, c.want)
		}
	}
	var nilPolicy *Policy
	if got := nilPolicy.Scan("a@b.com"); got != nil {
		t.Errorf("nil policy Scan = %v", got)
	}
	if got, ex, hits := nilPolicy.Apply("x", []Span{{0, 1, "r"}}, nil); got != "x" || ex || hits != nil {
		t.Errorf("nil policy Apply = %q %v %v", got, ex, hits)
	}
}

// mixedText draws text that mixes prose, sensitive values of every kind
// and numeric look-alikes.
func mixedText() *rapid.Generator[string] {
	pieces := []string{
		"the", "quick", "brown fox", " ", " ", "\n", ".", ",", "é", "日本",
		"alice@example.com", "bob.smith+x@mail.example.org",
		"+44 20 7946 0958", "(555) 234-5678", "555-234-5678", "030 12345678",
		"4111 1111 1111 1111", "378282246310005", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
		"sk-Ab3dEf9hIjKlMn0pQrStUvWx", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE",
		"Bearer abc123def456ghi789", "Xk9mQ2vL7pR4tW8zN3bJ6hF1",
		"192.168.1.10", "2001:db8::1", "2024-01-15", "v1.22.3", "12:30:45", "1234567890", "TICKET-7",
		"@", "+", "-", "0", "1", "(", ")", ":",
		"４１１１ １１１１ １１１１ １１１１", "alice\u200b@example.com", "192[.]168[.]1[.]10", "\u00ad", "\u200b", "＠", "\xff",
	}
	return rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		var b strings.Builder
		for range n {
			b.WriteString(rapid.SampledFrom(pieces).Draw(t, "piece"))
			if rapid.Bool().Draw(t, "space") {
				b.WriteByte(' ')
			}
		}
		return b.String()
	})
}

func propertyPolicy(tb testing.TB) *Policy {
	rules := DefaultRules()
	for i := range rules {
		rules[i].AllowScopes = []string{"scope-" + rules[i].Name}
		if rules[i].Detector == DetectorAPIKey {
			rules[i].Action = ActionExclude
		}
	}
	rules = append(rules, Rule{Name: "ticket", Pattern: `TICKET-\d+`, AllowScopes: []string{"support"}})
	return mustCompile(tb, rules)
}

func allScopes(p *Policy) []string {
	var s []string
	for _, r := range p.rules {
		s = append(s, r.allow...)
	}
	return s
}

// checkSpans fails unless spans are in bounds, sorted, non-overlapping,
// non-empty, on UTF-8 boundaries and tagged with known rules.
func checkSpans(tb interface{ Fatalf(string, ...any) }, p *Policy, text string, spans []Span) {
	for k, s := range spans {
		if s.Start < 0 || s.End > len(text) || s.Start >= s.End {
			tb.Fatalf("span %+v out of bounds of %d bytes", s, len(text))
		}
		if k > 0 && s.Start < spans[k-1].End {
			tb.Fatalf("spans overlap or are unsorted: %+v", spans)
		}
		if _, ok := p.byName[s.Rule]; !ok {
			tb.Fatalf("span %+v has unknown rule", s)
		}
		if utf8.ValidString(text) && (!utf8Boundary(text, s.Start) || !utf8Boundary(text, s.End)) {
			tb.Fatalf("span %+v splits a UTF-8 sequence", s)
		}
	}
}

func utf8Boundary(s string, i int) bool { return i == len(s) || s[i]&0xC0 != 0x80 }

func TestPropertySpans(t *testing.T) {
	p := propertyPolicy(t)
	rapid.Check(t, func(t *rapid.T) {
		text := mixedText().Draw(t, "text")
		checkSpans(t, p, text, p.Scan(text))
	})
}

func TestPropertyClearedCallerGetsInput(t *testing.T) {
	p := propertyPolicy(t)
	all := allScopes(p)
	rapid.Check(t, func(t *rapid.T) {
		text := mixedText().Draw(t, "text")
		out, excluded, hits := p.Filter(text, all)
		if out != text || excluded || hits != nil {
			t.Fatalf("Filter with all scopes changed %q to %q (excluded=%v, hits=%v)", text, out, excluded, hits)
		}
	})
}

func TestPropertyRedactionHidesMatches(t *testing.T) {
	p := propertyPolicy(t)
	rapid.Check(t, func(t *rapid.T) {
		text := mixedText().Draw(t, "text")
		spans := p.Scan(text)
		out, _, hits := p.Apply(text, spans, nil)
		if len(hits) != len(spans) {
			t.Fatalf("%d hits for %d spans", len(hits), len(spans))
		}
		for _, s := range spans {
			secret := text[s.Start:s.End]
			if n, free := strings.Count(out, secret), unmatchedCount(text, secret, spans); n > free {
				t.Fatalf("redacted output %q holds %q %d times; the input held it %d times outside spans", out, secret, n, free)
			}
		}
	})
}

// unmatchedCount counts the occurrences of sub in text that overlap no span.
func unmatchedCount(text, sub string, spans []Span) int {
	n := 0
	for i := 0; i+len(sub) <= len(text); i++ {
		if text[i:i+len(sub)] != sub {
			continue
		}
		free := true
		for _, s := range spans {
			if i < s.End && s.Start < i+len(sub) {
				free = false
			}
		}
		if free {
			n++
		}
	}
	return n
}

func TestPropertyPartialScopes(t *testing.T) {
	p := propertyPolicy(t)
	all := allScopes(p)
	rapid.Check(t, func(t *rapid.T) {
		text := mixedText().Draw(t, "text")
		scopes := rapid.SliceOfDistinct(rapid.SampledFrom(all), rapid.ID[string]).Draw(t, "scopes")
		spans := p.Scan(text)
		out, excluded, hits := p.Apply(text, spans, scopes)
		filtered := 0
		wantExcluded := false
		for _, s := range spans {
			r := p.rules[p.byName[s.Rule]]
			if !r.cleared(scopes) {
				filtered++
				wantExcluded = wantExcluded || r.action == ActionExclude
			}
		}
		if len(hits) != filtered || excluded != wantExcluded {
			t.Fatalf("hits=%d excluded=%v, want %d %v", len(hits), excluded, filtered, wantExcluded)
		}
		if filtered == 0 && out != text {
			t.Fatalf("no filtered span but output changed")
		}
	})
}

// benchProse builds about size bytes of mixed prose with a sprinkling of
// sensitive values and numeric look-alikes, deterministically.
func benchProse(size int) string {
	words := strings.Fields(`the memory of a conversation is kept forever in a tree of gists and
	the proxy rewrites each request so that the model sees what matters version 1.22.3 was
	released on 2024-01-15 at 12:30:45 and costs 1234567 dollars see section 4.2.1.10 of the
	RFC TestScanThroughput RoundToEvenScaledFloat64x2 https://example.com/docs/index.html`)
	secrets := []string{"alice@example.com", "+44 20 7946 0958", "4111 1111 1111 1111",
		"DE89 3704 0044 0532 0130 00", "sk-Ab3dEf9hIjKlMn0pQrStUvWx", "192.168.1.10", "(555) 234-5678"}
	r := rand.New(rand.NewPCG(1, 1))
	var b strings.Builder
	for b.Len() < size {
		if r.IntN(100) == 0 {
			b.WriteString(secrets[r.IntN(len(secrets))])
		} else {
			b.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func BenchmarkScan(b *testing.B) {
	p := mustCompile(b, DefaultRules())
	text := benchProse(100 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		p.Scan(text)
	}
}

// BenchmarkScanUnicode scans prose where one word in ten is not ASCII
// (accents, typographic dashes and quotes, CJK) and one in a hundred a
// secret, a third of them obfuscated: every paragraph then takes the
// normalized view.
func BenchmarkScanUnicode(b *testing.B) {
	p := mustCompile(b, DefaultRules())
	text := benchUnicodeProse(100 << 10)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		p.Scan(text)
	}
}

// benchUnicodeProse is benchProse with non-ASCII words and obfuscated
// secrets mixed in.
func benchUnicodeProse(size int) string {
	words := strings.Fields(benchProse(4 << 10))
	extra := []string{"café", "naïve", "—", "«déjà»", "“quoted”", "東京", "データ。", "Straße", "…", "¼"}
	secrets := []string{"４１１１ １１１１ １１１１ １１１１", "alice\u200b@example.com", "DE89\u00ad3704\u00ad0044\u00ad0532\u00ad0130\u00ad00",
		"192[.]168[.]1[.]10", "+44\u00a020\u00a07946\u00a00958"}
	r := rand.New(rand.NewPCG(2, 2))
	var sb strings.Builder
	for sb.Len() < size {
		switch n := r.IntN(100); {
		case n < 10:
			sb.WriteString(extra[r.IntN(len(extra))])
		case n == 10:
			sb.WriteString(secrets[r.IntN(len(secrets))])
		default:
			sb.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(12) == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	return sb.String()
}

func BenchmarkScanPerDetector(b *testing.B) {
	text := benchProse(100 << 10)
	for _, d := range Detectors() {
		b.Run(d, func(b *testing.B) {
			p := mustCompile(b, []Rule{{Detector: d}})
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				p.Scan(text)
			}
		})
	}
}

func TestFingerprintTracksConfiguration(t *testing.T) {
	base := []Rule{{Detector: "email"}, {Name: "code", Pattern: `QX-\d+`, Action: "exclude", AllowScopes: []string{"ops"}}}
	fp := func(rules []Rule) string {
		t.Helper()
		p, err := Compile(rules)
		if err != nil {
			t.Fatal(err)
		}
		return p.Fingerprint()
	}
	if fp(nil) != "" || fp(base) == "" || fp(base) != fp(base) {
		t.Fatal("fingerprint not stable or not empty for no rules")
	}
	for name, change := range map[string]func(r []Rule){
		"order":   func(r []Rule) { r[0], r[1] = r[1], r[0] },
		"action":  func(r []Rule) { r[1].Action = "redact" },
		"pattern": func(r []Rule) { r[1].Pattern = `QX-\d*` },
		"name":    func(r []Rule) { r[0].Name = "mail" },
	} {
		r := []Rule{base[0], base[1]}
		change(r)
		if fp(r) == fp(base) {
			t.Errorf("a changed %s keeps the fingerprint", name)
		}
	}
	// Who may see a span does not change which spans there are.
	scoped := []Rule{base[0], base[1]}
	scoped[1].AllowScopes = []string{"ops", "hr"}
	if fp(scoped) != fp(base) {
		t.Error("changed allow_scopes change the fingerprint: every context would be rescanned for nothing")
	}
	// New detector behaviour changes it.
	p, err := Compile(base)
	if err != nil {
		t.Fatal(err)
	}
	if p.fingerprint(DetectorVersion+1) == p.Fingerprint() {
		t.Error("a new detector version keeps the fingerprint")
	}
}
