package policy

import (
	"strings"
	"testing"
)

// adjacentValues are values of each detector in several written forms.
var adjacentValues = map[string][]string{
	DetectorCreditCard: {"4012 8888 8888 1881", "4111111111111111", "4111-1111-1111-1111", "3782 822463 10005", "5555.5555.5555.4444"},
	DetectorPhone:      {"+44 20 7946 0958", "555-234-5678", "(555) 234-5678", "020 7946 0958", "+14155552671", "01 23 45 67 89", "555 234 5678"},
	DetectorIBAN:       {"DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "GB82-WEST-1234-5698-7654-32", "NL91ABNA0417164300", "nl91 abna 0417 1643 00"},
	DetectorEmail:      {"alice@example.com", "bob.smith@mail.example.org"},
	DetectorIPAddress:  {"192.168.1.10", "2001:db8::1", "10.0.0.255"},
	DetectorAPIKey:     {"sk-Ab3dEf9hIjKlMn0pQrStUvWx", "AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
}

// adjacentSeparators are what may stand between two values of a detector
// for both to be found. Every detector separates values by a space, a line
// break, a tab, a comma, a semicolon, or invisible and no-break spaces;
// grouped numbers also back to back and across the joiners of numeric
// structures, IP addresses across a range dash, fixed-length keys back to
// back or across a dash.
var adjacentSeparators = map[string][]string{
	"":                 {" ", "\n", "\t", "  ", ", ", ",\n", "; ", ";", " / ", " and ", "\u00a0", "\u200b ", "\r\n"},
	DetectorCreditCard: {"", ",", "-", ".", "/", ":", "\u200b", "\u00ad", "\u2060"},
	DetectorPhone:      {"", ",", "-", ".", "/", ":", "\u200b", "\u00ad"},
	DetectorIBAN:       {"", ",", "-", ".", "/", "\u200b"},
	DetectorIPAddress:  {"-", ","},
	DetectorAPIKey:     {","},
}

// TestAdjacentValues checks that two values of one detector written next
// to each other are both redacted, for every pair of forms and every
// separator the detector reads between values: a redacted text holds
// neither value, nor the digits of either in any grouping (one span may
// cover both, where the detector's grammar reads them as one token).
func TestAdjacentValues(t *testing.T) {
	p, err := Compile(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for det, values := range adjacentValues {
		seps := append(append([]string{}, adjacentSeparators[""]...), adjacentSeparators[det]...)
		if det == DetectorAPIKey {
			seps = append(seps, "-") // AKIA ids are fixed-length
		}
		for _, a := range values {
			for _, b := range values {
				for _, sep := range seps {
					if det == DetectorAPIKey && sep == "-" && !strings.HasPrefix(a, "AKIA") {
						continue // a dash continues an sk- key
					}
					in := "first " + a + sep + b + " last"
					out, _, hits := p.Filter(in, nil)
					if len(hits) == 0 || leaksAny(out, a, b) {
						t.Errorf("%s: %q -> %q (%d hits)", det, in, out, len(hits))
					}
				}
			}
		}
	}
	// Three and more in a row.
	for _, in := range []string{
		"4012 8888 8888 1881 4111 1111 1111 1111 5555 5555 5555 4444 3782 822463 10005",
		"4111111111111111" + "4012888888881881" + "5555555555554444" + "378282246310005",
		"555-234-5678 555-234-5679 555-234-5670 555-234-5671",
		"DE89370400440532013000GB82WEST12345698765432NL91ABNA0417164300",
	} {
		out, _, hits := p.Filter(in, nil)
		if len(hits) < 3 || strings.ContainsAny(strings.NewReplacer("[redacted:", "", "]", "").Replace(out), "0123456789") {
			t.Errorf("%q -> %q (%d hits)", in, out, len(hits))
		}
	}
}

// leaksAny reports whether out holds either value, or the digits of either
// written in any grouping.
func leaksAny(out string, values ...string) bool {
	digits := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			if '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r == '@' {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	d := digits(out)
	for _, v := range values {
		if strings.Contains(out, v) || len(digits(v)) >= 8 && strings.Contains(d, digits(v)) {
			return true
		}
	}
	return false
}
