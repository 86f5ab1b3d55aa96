package policy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"pgregory.net/rapid"
)

func TestViewText(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string // the views' texts; nil when the text is its own view
	}{
		{"plain ascii (555) text", nil},
		{"４１１１ １１１１", []string{"4111 1111"}},
		{"a\u00a0b\u2003c\u3000d", []string{"a b c d"}},
		{"x\u200by\u2060z\u00adw", []string{"xyzw", "x y z w"}},
		{"e\u0301 and \u0301x", []string{"é and x"}}, // composed by NFKC; a lone mark dropped
		{"ﬁle ①", []string{"file 1"}},
		{"3782\u2013822463\u221210005", []string{"3782-822463-10005"}},
		{"192\u3002168 a\u00b7b", []string{"192.168 a.b"}},
		{"a  b\t\tc", []string{"a b c"}},
		{"1[.]2(.)3{.}4", []string{"1.2.3.4"}},
		{"bob [at] example [dot] com and x(AT)y", []string{"bob@example.com and x@y"}},
		{"[a] (b) {.x}", nil},
		{"bad \xff byte ４", []string{"bad \xff byte 4"}},
		{"dave\uff20example\uff0ecom", []string{"dave@example.com"}},
	} {
		views := newViews(c.in)
		var got []string
		for _, v := range views {
			got = append(got, v.text)
			checkView(t, c.in, v)
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("views of %q = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestViewOriginal(t *testing.T) {
	for _, c := range []struct {
		in, viewSub, wantOrig string
	}{
		{"card ４１１１ １１１１ end", "4111 1111", "４１１１ １１１１"},
		{"x a\u200bb\u200b y", "ab", "a\u200bb\u200b"}, // dropped characters after go with it
		{"see ﬁle", "fi", "ﬁ"},
		{"see ﬁle", "f", "ﬁ"}, // half of a ligature takes all of it
		{"see ﬁle", "il", "ﬁl"},
		{"ip 10[.]0[.]0[.]1 ok", "10.0.0.1", "10[.]0[.]0[.]1"},
		{"mail bob [at] example [dot] com.", "bob@example.com", "bob [at] example [dot] com"},
		{"a   b", "a b", "a   b"},
	} {
		v := newViews(c.in)[0]
		a := strings.Index(v.text, c.viewSub)
		if a < 0 {
			t.Fatalf("view %q of %q lacks %q", v.text, c.in, c.viewSub)
		}
		s, e := v.original(a, a+len(c.viewSub))
		if got := c.in[s:e]; got != c.wantOrig {
			t.Errorf("%q: view %q maps back to %q, want %q", c.in, c.viewSub, got, c.wantOrig)
		}
	}
}

// TestScanEvasions: each detector finds its value written the ways users
// and the red team wrote them, and the original is what gets
// redacted.
func TestScanEvasions(t *testing.T) {
	p := mustCompile(t, DefaultRules())
	for _, c := range []struct{ in, want string }{
		{"card 4111.1111.1111.1111 ok", "card [redacted:credit_card] ok"},
		{"card ５５５５ ５５５５ ５５５５ ４４４４ ok", "card [redacted:credit_card] ok"},
		{"card 4012\u200b8888\u200b8888\u200b1881 ok", "card [redacted:credit_card] ok"},
		{"card 5105\u20601051\u20600510\u20605100 ok", "card [redacted:credit_card] ok"},
		{"card 6011\u00ad1111\u00ad1111\u00ad1117 ok", "card [redacted:credit_card] ok"},
		{"card 4012-8888 8888.1881 ok", "card [redacted:credit_card] ok"},
		{"card 5555  5555  5555  4444 ok", "card [redacted:credit_card] ok"},
		{"iban GB82-WEST-1234-5698-7654-32 ok", "iban [redacted:iban] ok"},
		{"iban FR14.2004.1010.0505.0001.3M02.606 ok", "iban [redacted:iban] ok"},
		{"iban nl91 abna 0417 1643 00 ok", "iban [redacted:iban] ok"},
		{"iban ＣＨ９３ ００７６ ２０１１ ６２３８ ５２９５ ７ ok", "iban [redacted:iban] ok"},
		{"iban DE89\u200b3704\u200b0044\u200b0532\u200b0130\u200b00 ok", "iban [redacted:iban] ok"},
		{"mail bob.k @ example.org ok", "mail [redacted:email] ok"},
		{"mail carol.n @mail.example.net ok", "mail [redacted:email] ok"},
		{"mail dave.m＠example.com ok", "mail [redacted:email] ok"},
		{"mail frank\u200b.l@exam\u200bple.com ok", "mail [redacted:email] ok"},
		{"mail heidi.q [at] example [dot] com ok", "mail [redacted:email] ok"},
		{"key sk-proj-Zq8\u200bWv2Lm5Np7Rt4Ks1Hx6Yc ok", "key [redacted:api_key] ok"},
		{"key sk\u2010proj\u2010Mn4Bv7Cx2Za9Sd6Fg1Hj8Kl3 ok", "key [redacted:api_key] ok"},
		{"key AKIA\u2060IOSFODNN7EXAMPLE ok", "key [redacted:api_key] ok"},
		{"tel ＋４４ ２０ ７９４６ ０１２３ ok", "tel [redacted:phone] ok"},
		{"tel 020\u00ad7946\u00ad0958 ok", "tel [redacted:phone] ok"},
		{"tel (555) 234\u20135678 ok", "tel [redacted:phone] ok"},
		{"tel +33\u00a01\u00a023\u00a045\u00a067\u00a089 ok", "tel [redacted:phone] ok"},
		{"ip 172[.]16[.]4[.]8 ok", "ip [redacted:ip_address] ok"},
		{"ip 192\u3002168\u30027\u30029 ok", "ip [redacted:ip_address] ok"},
		{"ip １９２．１６８．７．４２ ok", "ip [redacted:ip_address] ok"},
		{"ip 2001\uff1adb8\uff1a\uff1a8a2e\uff1a370\uff1a7334 ok", "ip [redacted:ip_address] ok"},
		// Look-alikes stay.
		{"and @bar.com, v1.2.3 — 2024–2025, ２０２４年, (a) [b]", "and @bar.com, v1.2.3 — 2024–2025, ２０２４年, (a) [b]"},
	} {
		if got, _, _ := p.Filter(c.in, nil); got != c.want {
			t.Errorf("Filter(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// checkView fails unless v maps every byte of its text to a character
// of the original, in order, on UTF-8 boundaries, and its runs tile it.
func checkView(tb interface{ Fatalf(string, ...any) }, orig string, v *view) {
	valid := utf8.ValidString(orig)
	next := 0
	for _, r := range v.runs {
		if int(r.v) != next || r.n <= 0 {
			tb.Fatalf("view %q of %q: runs %v do not tile it", v.text, orig, v.runs)
		}
		next += int(r.n)
	}
	if next != len(v.text) || v.origLen != len(orig) {
		tb.Fatalf("view %q of %q: runs %v cover %d bytes", v.text, orig, v.runs, next)
	}
	for k := range len(v.text) {
		s, e := v.startOf(k), v.endOf(k)
		if s < 0 || e > len(orig) || s >= e || k > 0 && (s < v.startOf(k-1) || e < v.endOf(k-1)) {
			tb.Fatalf("view %q of %q: byte %d maps to [%d, %d) out of order or bounds", v.text, orig, k, s, e)
		}
		if valid && (!utf8Boundary(orig, s) || !utf8Boundary(orig, e)) {
			tb.Fatalf("view %q of %q: byte %d maps to [%d, %d), splitting a UTF-8 sequence", v.text, orig, k, s, e)
		}
	}
}

// checkRedactionHides checks the normalizer's promise for one text: every
// value a rule finds in a view of text, once the original is redacted by
// Scan's spans, is found in no view of the output (nor in the output
// itself) more often than the view held it outside the redacted spans.
func checkRedactionHides(tb interface{ Fatalf(string, ...any) }, p *Policy, text string) {
	spans := p.Scan(text)
	checkSpans(tb, p, text, spans)
	out, _, _ := p.Apply(text, spans, nil)
	outTexts := []string{out}
	for _, v := range newViews(out) {
		outTexts = append(outTexts, v.text)
	}
	for _, v := range newViews(text) {
		checkView(tb, text, v)
		covered := func(i int) bool {
			for _, s := range spans {
				if v.startOf(i) >= s.Start && v.startOf(i) < s.End {
					return true
				}
			}
			return false
		}
		for ri := range p.rules {
			for _, m := range p.rules[ri].find(v.text, nil) {
				value := v.text[m.start:m.end]
				free := 0
				for i := 0; i+len(value) <= len(v.text); i++ {
					if v.text[i:i+len(value)] != value {
						continue
					}
					hidden := false
					for k := i; k < i+len(value) && !hidden; k++ {
						hidden = covered(k)
					}
					if !hidden {
						free++
					}
				}
				for _, o := range outTexts {
					if n := strings.Count(o, value); n > free {
						tb.Fatalf("%q redacted to %q: %q still reads %q (%d times, %d outside spans)", text, out, o, value, n, free)
					}
				}
			}
		}
	}
}

// evasionText draws text mixing sensitive values, their obfuscations and
// characters the normalizer rewrites.
func evasionText() *rapid.Generator[string] {
	pieces := []string{
		"4111", "1111", "5555 5555 5555 4444", "DE89", "3704", "0044", "0532", "0130", "00",
		"alice", "example", "com", "@", ".", "-", " ", "  ", "\n", "+44", "20", "7946", "0958",
		"192", "168", "10", "sk-proj-", "Zq8Wv2Lm5Np7Rt4Ks1Hx6Yc", "AKIA", "IOSFODNN7EXAMPLE",
		"\u200b", "\u00ad", "\u2060", "\ufeff", "\u00a0", "\u3000", "\u2013", "\u2212", "\u3002", "\u00b7",
		"４", "１", "＠", "．", "－", "[.]", "(.)", "[at]", " [dot] ", "\u0301", "ﬁ", "①", "é", "日本", "\xff",
	}
	return rapid.Custom(func(t *rapid.T) string {
		var b strings.Builder
		for n := rapid.IntRange(0, 24).Draw(t, "n"); n > 0; n-- {
			b.WriteString(rapid.SampledFrom(pieces).Draw(t, "piece"))
		}
		return b.String()
	})
}

func TestPropertyRedactionHidesNormalizedValues(t *testing.T) {
	p := propertyPolicy(t)
	rapid.Check(t, func(t *rapid.T) {
		checkRedactionHides(t, p, evasionText().Draw(t, "text"))
	})
}

// FuzzNormalize checks the views of arbitrary text (offsets in order, on
// UTF-8 boundaries, ending on the text's length) and that redacting the
// original by the mapped spans leaves no detected value readable in the
// normalized output.
func FuzzNormalize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, s := range []string{
		"４１１１ １１１１ １１１１ １１１１", "4012\u200b8888\u200b8888\u200b1881", "6011\u00ad1111\u00ad1111\u00ad1117",
		"nl91 abna 0417 1643 00", "GB82-WEST-1234-5698-7654-32", "bob.k @ example.org", "heidi [at] example [dot] com",
		"dave＠example．com", "sk\u2010proj\u2010Mn4Bv7Cx2Za9Sd6Fg1Hj8Kl3", "020\u00ad7946\u00ad0958",
		"172[.]16[.]4[.]8", "192\u3002168\u30027\u30029", "ﬁ\u0301\xff①", "a  \t b",
	} {
		f.Add(s)
	}
	p := propertyPolicy(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkRedactionHides(t, p, text)
	})
}
