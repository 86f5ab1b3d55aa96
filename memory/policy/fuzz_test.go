package policy

import (
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"", "alice@example.com", "+44 20 7946 0958", "(555) 234-5678", "4111 1111 1111 1111",
	"DE89 3704 0044 0532 0130 00", "sk-Ab3dEf9hIjKlMn0pQrStUvWx", "Bearer abc123def456ghi789",
	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc", "192.168.1.10:80", "[fe80::1%eth0]:80",
	"2024-01-15 12:30:45 v1.2.3.4", "a@b.c@d.e", "+", "(", "::", "é@é.é",
	"4012 8888 8888 1881 4012 8888 8888 1881", "41111111111111114012888888881881", "555-234-5678555-234-5679",
	"+44 20 7946 0958,+1 (555) 234-5678", "DE89370400440532013000nl91abna0417164300", "AKIAIOSFODNN7EXAMPLEAKIAI44QH8DHBEXAMPLE",
}

// FuzzScan checks that Scan never panics and that its spans are in
// bounds, sorted, non-overlapping and on UTF-8 boundaries, and that a
// caller without scopes never sees a detected span verbatim where the
// input held it only inside spans.
func FuzzScan(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	p := propertyPolicy(f)
	all := allScopes(p)
	f.Fuzz(func(t *testing.T, text string) {
		spans := p.Scan(text)
		checkSpans(t, p, text, spans)
		out, _, hits := p.Apply(text, spans, nil)
		if len(hits) != len(spans) {
			t.Fatalf("%d hits for %d spans", len(hits), len(spans))
		}
		for _, s := range spans {
			secret := text[s.Start:s.End]
			if n, free := strings.Count(out, secret), unmatchedCount(text, secret, spans); n > free && !strings.Contains("[redacted:]"+strings.Join(p.Rules(), ""), secret) {
				t.Fatalf("output %q holds %q %d times, input %d times outside spans", out, secret, n, free)
			}
		}
		if out, ex, hits := p.Apply(text, spans, all); out != text || ex || hits != nil {
			t.Fatalf("cleared caller got %q", out)
		}
	})
}

// FuzzDetectors runs each built-in detector alone and checks its matches.
func FuzzDetectors(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, d := range Detectors() {
			find, _ := detectorFunc(d)
			ms := find(text, nil)
			for k, m := range ms {
				if m.start < 0 || m.end > len(text) || m.start >= m.end || k > 0 && m.start < ms[k-1].end {
					t.Fatalf("%s: bad matches %v for %q", d, ms, text)
				}
			}
		}
	})
}

// FuzzCompile feeds arbitrary rule fields to Compile and, when they
// compile, checks Scan and Filter on a sample text.
func FuzzCompile(f *testing.F) {
	f.Add("r", "", `TICKET-\d+`, "redact", "s", "TICKET-1 a@b.com")
	f.Add("", "email", "", "exclude", "", "x@example.com")
	f.Add("x", "phone", "a(", "drop", " ", "")
	f.Add("x", "", "(?i)x*", "", "s", "xXx")
	f.Fuzz(func(t *testing.T, name, detector, pattern, action, scope, text string) {
		p, err := Compile([]Rule{{Name: name, Detector: detector, Pattern: pattern, Action: action, AllowScopes: []string{scope}}})
		if err != nil {
			if p != nil {
				t.Fatal("non-nil policy with error")
			}
			return
		}
		spans := p.Scan(text)
		checkSpans(t, p, text, spans)
		if out, _, _ := p.Apply(text, spans, []string{strings.TrimSpace(scope)}); out != text {
			t.Fatalf("cleared caller got %q for %q", out, text)
		}
	})
}

// FuzzApply feeds arbitrary (possibly corrupt) stored spans to Apply.
func FuzzApply(f *testing.F) {
	f.Add("hello world", 0, 5, "email", 3, 8, "ticket")
	f.Add("héllo", 1, 2, "phone", -4, 99, "nope")
	p := propertyPolicy(f)
	f.Fuzz(func(t *testing.T, text string, s1, e1 int, r1 string, s2, e2 int, r2 string) {
		spans := []Span{{s1, e1, r1}, {s2, e2, r2}}
		out, _, hits := p.Apply(text, spans, nil)
		if len(hits) > 2 {
			t.Fatalf("%d hits for 2 spans", len(hits))
		}
		if len(hits) == 0 && out != text {
			t.Fatalf("no hits but output changed")
		}
	})
}
