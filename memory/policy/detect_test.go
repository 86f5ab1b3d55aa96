package policy

import (
	"slices"
	"strings"
	"testing"
)

// detectorCase is one input and the exact substrings a detector must find.
type detectorCase struct {
	in   string
	want []string
}

func runDetectorCases(t *testing.T, name string, find detectFunc, cases []detectorCase) {
	t.Helper()
	for _, c := range cases {
		var got []string
		ms := find(c.in, nil)
		for k, m := range ms {
			if m.start < 0 || m.end > len(c.in) || m.start >= m.end {
				t.Fatalf("%s(%q): bad match %v", name, c.in, m)
			}
			if k > 0 && m.start < ms[k-1].end {
				t.Fatalf("%s(%q): overlapping matches %v", name, c.in, ms)
			}
			got = append(got, c.in[m.start:m.end])
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s(%q) = %q, want %q", name, c.in, got, c.want)
		}
	}
}

func TestFindEmails(t *testing.T) {
	runDetectorCases(t, "findEmails", findEmails, []detectorCase{
		{"mail alice@example.com today", []string{"alice@example.com"}},
		{"<bob.smith+tag@mail.example.co.uk>", []string{"bob.smith+tag@mail.example.co.uk"}},
		{"Write to support@EXAMPLE.COM.", []string{"support@EXAMPLE.COM"}},
		{"a@b.io, c_d@e-f.org; g%h@i.dev", []string{"a@b.io", "c_d@e-f.org", "g%h@i.dev"}},
		{"'test@example.com'", []string{"test@example.com"}},
		{"first.last@sub-domain.example.museum", []string{"first.last@sub-domain.example.museum"}},
		{"x@y.com@z.org", nil},
		// Negatives.
		{"user@localhost", nil},
		{"@mention and foo@ and @bar.com", nil},
		{"icon@2x.png and logo@3x.jpg", nil},
		{"example.com/mod@v1.2.3 and pkg@latest", nil},
		{"m.Path@m.Version", nil},
		{"a..b@example.com", nil},
		{"trailing.@example.com", nil},
		{"x@-bad.com y@bad-.com", nil},
		{"z@example.c", nil},
		{"git checkout main@{1}", nil},
	})
}

func TestFindPhones(t *testing.T) {
	runDetectorCases(t, "findPhones", findPhones, []detectorCase{
		{"Call +1 (555) 123-4567 now", []string{"+1 (555) 123-4567"}},
		{"tel: +44 20 7946 0958.", []string{"+44 20 7946 0958"}},
		{"+44 (0)20 7946 0958", []string{"+44 (0)20 7946 0958"}},
		{"+49 30 12345678, +33 1 23 45 67 89", []string{"+49 30 12345678", "+33 1 23 45 67 89"}},
		{"E.164: +14155552671", []string{"+14155552671"}},
		{"+1-555-123-4567 or +1.555.123.4567", []string{"+1-555-123-4567", "+1.555.123.4567"}},
		{"0049 30 12345678", []string{"0049 30 12345678"}},
		{"(555) 234-5678", []string{"(555) 234-5678"}},
		{"(555)234-5678", []string{"(555)234-5678"}},
		{"555-234-5678 and 555.234.5678 and 555 234 5678", []string{"555-234-5678", "555.234.5678", "555 234 5678"}},
		{"1-800-555-0199", []string{"1-800-555-0199"}},
		{"020 7946 0958", []string{"020 7946 0958"}},
		{"030 12345678 / 06-12345678", []string{"030 12345678", "06-12345678"}},
		{"01 23 45 67 89", []string{"01 23 45 67 89"}},
		{"(020) 7946 0958", []string{"(020) 7946 0958"}},
		{"555-234-5678 2024", []string{"555-234-5678"}},
		{"+1 555 123 4567 12345", []string{"+1 555 123 4567"}},
		// Adjacent numbers: all found, whatever separates them.
		{"555 234 5678 555 234 5679", []string{"555 234 5678", "555 234 5679"}},
		{"555-234-5678555-234-5679", []string{"555-234-5678", "555-234-5679"}},
		{"+44 20 7946 0958+1 555 234 5678", []string{"+44 20 7946 0958", "+1 555 234 5678"}},
		{"+44 20 7946 0958,555-234-5678", []string{"+44 20 7946 0958", "555-234-5678"}},
		{"555-234-5678,+44 20 7946 0958", []string{"555-234-5678", "+44 20 7946 0958"}},
		{"(555) 234-5678 555-234-5678", []string{"(555) 234-5678", "555-234-5678"}},
		{"(555) 234-5678(555) 234-5679", []string{"(555) 234-5678", "(555) 234-5679"}},
		{"020 7946 0958 01 23 45 67 89", []string{"020 7946 0958", "01 23 45 67 89"}},
		{"+1 555 234 5678 555 234 5678", []string{"+1 555 234 5678", "555 234 5678"}},
		{"+14155552671 1 555 234 5678", []string{"+14155552671", "1 555 234 5678"}},
		// Negatives: dates, versions, times, IPs, long numbers, other IDs.
		{"2024-01-15 and 15.01.2024 and 01/02/2023", nil},
		{"01 02 2024 and 05 12 2023 10 30", nil},
		{"v1.22.3 and 1.2.3.4 and go1.26.8", nil},
		{"12:30:45 and 10:30", nil},
		{"192.168.1.1 and 10.123.123.123", nil},
		{"order 1234567890 and 4111111111111111", nil},
		{"SSN 123-45-6789, ISBN 978-3-16-148410-0", nil},
		{"x+12345678901 and 3+4 = 7", nil},
		{"+1.2.3", nil},
		{"555-234-5678-89", nil},
		{"call555-234-5678", nil},
		{"155-234-5678", nil},
		{"555-123-4567", nil}, // exchanges start with 2-9
		{"555-234.5678", nil},
		{"0.123.456.789", nil},
		{"010.001.001.001", nil},
		{"2024 555 123 4567 1234 5678", nil},
		{"01 02 01 01 58 01 04 00 01 01 59 01 04 00 00 00", nil}, // a byte dump
		{"01 02 03 04 05 06 07 08 09 10 11 12 13 14", nil},       // a numbered list
	})
}

func TestFindCreditCards(t *testing.T) {
	runDetectorCases(t, "findCreditCards", findCreditCards, []detectorCase{
		{"card 4111 1111 1111 1111 exp 12/25", []string{"4111 1111 1111 1111"}},
		{"4111-1111-1111-1111", []string{"4111-1111-1111-1111"}},
		{"4111111111111111.", []string{"4111111111111111"}},
		{"MC 5555555555554444, 2223003122003222", []string{"5555555555554444", "2223003122003222"}},
		{"Amex 3782 822463 10005", []string{"3782 822463 10005"}},
		{"Amex 378282246310005", []string{"378282246310005"}},
		{"Discover 6011111111111117", []string{"6011111111111117"}},
		{"Diners 3056 930902 5904", []string{"3056 930902 5904"}},
		{"JCB 3530111333300000", []string{"3530111333300000"}},
		{"UnionPay 6200000000000005", []string{"6200000000000005"}},
		{"Visa 13 4222222222222", []string{"4222222222222"}},
		{"4111 1111 1111 1111 2024", []string{"4111 1111 1111 1111"}},
		// Adjacent cards: all found, whatever separates them.
		{"4012 8888 8888 1881 4012 8888 8888 1881", []string{"4012 8888 8888 1881", "4012 8888 8888 1881"}},
		{"4111111111111111 4012888888881881", []string{"4111111111111111", "4012888888881881"}},
		{"4111111111111111\n4012888888881881", []string{"4111111111111111", "4012888888881881"}},
		{"41111111111111114012888888881881", []string{"4111111111111111", "4012888888881881"}},
		{"4012 8888 8888 18814111 1111 1111 1111", []string{"4012 8888 8888 1881", "4111 1111 1111 1111"}},
		{"4111-1111-1111-1111-4012-8888-8888-1881", []string{"4111-1111-1111-1111", "4012-8888-8888-1881"}},
		{"4111111111111111,4012888888881881.5555555555554444", []string{"4111111111111111", "4012888888881881", "5555555555554444"}},
		{"4012 8888 8888 1881 4111 1111 1111 1111 5555 5555 5555 4444",
			[]string{"4012 8888 8888 1881", "4111 1111 1111 1111", "5555 5555 5555 4444"}},
		{"3782 822463 10005 4111 1111 1111 1111 2024", []string{"3782 822463 10005", "4111 1111 1111 1111"}},
		{"at 12:30 4111 1111 1111 1111", []string{"4111 1111 1111 1111"}},
		{"4111111111111111 2024x", []string{"4111111111111111"}}, // the glue is the filler's
		// Negatives.
		{"4111111111111112", nil},                    // Luhn
		{"1234567812345670", nil},                    // passes Luhn, no issuer
		{"4111 1111 1111 1111-2222", nil},            // mixed separators
		{"4111111111111111,12", nil},                 // numeric structure
		{"41111111111111114111111111111112", nil},    // the second fails Luhn: one 32-digit number
		{"123456789012345678901234", nil},            // too short for two, too long for one
		{"1.4111111111111111-4012888888881881", nil}, // a numeric structure throughout
		{"41111 11111 11111 1", nil},                 // not a card grouping
		{"x4111111111111111", nil},                   // glued to a word
		{"4111111111111111234567", nil},              // too long
		{"411111111111111", nil},                     // Visa of 15 digits
		{"v1.4111111111111111", nil},                 // numeric structure
		{"378282246310005 is Amex but 37828224631 isn't", []string{"378282246310005"}},
		{"2024-01-15 12:30:45 192.168.1.1 555-123-4567", nil},
	})
}

func TestFindIBANs(t *testing.T) {
	runDetectorCases(t, "findIBANs", findIBANs, []detectorCase{
		{"IBAN: DE89 3704 0044 0532 0130 00.", []string{"DE89 3704 0044 0532 0130 00"}},
		{"DE89370400440532013000", []string{"DE89370400440532013000"}},
		{"GB82 WEST 1234 5698 7654 32 is mine", []string{"GB82 WEST 1234 5698 7654 32"}},
		{"FR14 2004 1010 0505 0001 3M02 606", []string{"FR14 2004 1010 0505 0001 3M02 606"}},
		{"NL91ABNA0417164300 BE68539007547034 CH9300762011623852957",
			[]string{"NL91ABNA0417164300", "BE68539007547034", "CH9300762011623852957"}},
		{"NO9386011117947", []string{"NO9386011117947"}},
		// Adjacent IBANs: all found, whatever separates them.
		{"DE89370400440532013000DE89370400440532013000", []string{"DE89370400440532013000", "DE89370400440532013000"}},
		{"DE89 3704 0044 0532 0130 00GB82 WEST 1234 5698 7654 32", []string{"DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32"}},
		{"GB82-WEST-1234-5698-7654-32-NL91-ABNA-0417-1643-00", []string{"GB82-WEST-1234-5698-7654-32", "NL91-ABNA-0417-1643-00"}},
		{"nl91abna0417164300nl91 abna 0417 1643 00", []string{"nl91abna0417164300", "nl91 abna 0417 1643 00"}},
		// Negatives.
		{"DE89 3704 0044 0532 0130 01", nil}, // checksum
		{"DE8937040044053201300", nil},       // too short for DE
		{"DE890370400440532013000", nil},     // too long for DE
		{"XX89370400440532013000", nil},      // unknown country
		{"de89370400440532013000 and nl91 abna 0417 1643 00", []string{"de89370400440532013000", "nl91 abna 0417 1643 00"}},
		{"GB82-WEST-1234-5698-7654-32 / FR14.2004.1010.0505.0001.3M02.606", []string{"GB82-WEST-1234-5698-7654-32", "FR14.2004.1010.0505.0001.3M02.606"}},
		{"De89370400440532013000", nil},         // mixed-case country code
		{"DE89-3704-0044-0532-0130-00-12", nil}, // runs on
		{"DE89 3704-0044 0532 0130 00", nil},    // mixed separators
		{"DE89 37040044 0532 0130 00", nil},     // bad grouping
		{"ADE89370400440532013000", nil},        // glued
		{"DE89370400440532013000DE8937", nil},   // glued to what is no IBAN
		{"DE89370400440532013000X", nil},        // glued
		{"US12 3456 7890", nil},
		{"ISO8601 and RFC3339 and AB12CD34", nil},
	})
}

func TestFindAPIKeys(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	runDetectorCases(t, "findAPIKeys", findAPIKeys, []detectorCase{
		{"OPENAI_API_KEY=sk-Ab3dEf9hIjKlMn0pQrStUvWx", []string{"sk-Ab3dEf9hIjKlMn0pQrStUvWx"}},
		{"key sk-proj-Xy12_abCDef-3456ghIJklMNopq7 end", []string{"sk-proj-Xy12_abCDef-3456ghIJklMNopq7"}},
		{"sk-ant-api03-AbCdEf012345-GhIjKl678_90MnOp", []string{"sk-ant-api03-AbCdEf012345-GhIjKl678_90MnOp"}},
		{"token ghp_abcdefghijklmnopqrstuvwxyz0123456789", []string{"ghp_abcdefghijklmnopqrstuvwxyz0123456789"}},
		{"gho_16C7e42F292c6912E7710c838347Ae178B4a", []string{"gho_16C7e42F292c6912E7710c838347Ae178B4a"}},
		{"github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789", []string{"github_pat_11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789"}},
		{"slack xoxb-1234567890-abcdefghij", []string{"xoxb-1234567890-abcdefghij"}},
		{"xoxp-123456789012-abcdefABCDEF", []string{"xoxp-123456789012-abcdefABCDEF"}},
		{"aws AKIAIOSFODNN7EXAMPLE,", []string{"AKIAIOSFODNN7EXAMPLE"}},
		{"AKIAIOSFODNN7EXAMPLEAKIAI44QH8DHBEXAMPLE", []string{"AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"}},
		{"AKIAIOSFODNN7EXAMPLE-AKIAI44QH8DHBEXAMPLE", []string{"AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"}},
		{"AIzaSyA-1234567890abcdefghijklmnopqrstu", []string{"AIzaSyA-1234567890abcdefghijklmnopqrstu"}},
		{"glpat-Ab12Cd34Ef56Gh78Ij90", []string{"glpat-Ab12Cd34Ef56Gh78Ij90"}},
		{"hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", []string{"hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"}},
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", []string{"sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},
		{"npm_abcdefghijklmnopqrstuvwxyz0123456789", []string{"npm_abcdefghijklmnopqrstuvwxyz0123456789"}},
		{"Authorization: Bearer abc123def456ghi789", []string{"abc123def456ghi789"}},
		{"authorization: bearer " + jwt, []string{jwt}},
		{"jwt=" + jwt + ".", []string{jwt}},
		{"secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", []string{"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}},
		{"password Xk9mQ2vL7pR4tW8zN3bJ6hF1 here", []string{"Xk9mQ2vL7pR4tW8zN3bJ6hF1"}},
		{"b64 dGhpcyBpcyBhIHNlY3JldCBrZXkgMTIz==", []string{"dGhpcyBpcyBhIHNlY3JldCBrZXkgMTIz=="}},
		// Negatives.
		{"sk-learn is a library; sk-some-long-hyphenated-words-here", nil},
		{"ghp_short and AKIA123 and AIzaShort", nil},
		{"the bearer of bad news; Bearer <token>; Bearer abcdefghijklmnopqrstu", nil},
		{"RoundToEvenScaledResidueFloat32x16 newFileStatFromWin32FileAttributeData", nil},
		{"AtomicCompareAndSwapRel32 and x509_SecTrustEvaluateWithError", nil},
		{"commit 43a373152df2d405c9940983e584e6a25e76632d", nil},
		{"uuid 123e4567-e89b-12d3-a456-426614174000", nil},
		{"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", nil},
		{"https://github.com/golang/go/blob/master/src/net/http/server.go", nil},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij0123456789", nil},
		{"eyJhbGciOiJIUzI1NiJ9 alone", nil},
	})
}

func TestFindIPAddresses(t *testing.T) {
	runDetectorCases(t, "findIPAddresses", findIPAddresses, []detectorCase{
		{"host 192.168.1.10 is up", []string{"192.168.1.10"}},
		{"10.0.0.1:8080 and http://127.0.0.1/x", []string{"10.0.0.1", "127.0.0.1"}},
		{"Ends with 8.8.8.8.", []string{"8.8.8.8"}},
		{"255.255.255.255 0.0.0.0", []string{"255.255.255.255", "0.0.0.0"}},
		{"v6 2001:db8::1 and [fe80::1cc0:3e8c:119f:c2e1]:80", []string{"2001:db8::1", "fe80::1cc0:3e8c:119f:c2e1"}},
		{"2001:0db8:85a3:0000:0000:8a2e:0370:7334", []string{"2001:0db8:85a3:0000:0000:8a2e:0370:7334"}},
		{"mapped ::ffff:192.0.2.1 ok", []string{"::ffff:192.0.2.1"}},
		{"net 10.1.0.0/16", []string{"10.1.0.0"}},
		{"range 10.0.0.1-10.0.0.9 and 2001:db8::1-2001:db8::ff", []string{"10.0.0.1", "10.0.0.9", "2001:db8::1", "2001:db8::ff"}},
		// Negatives.
		{"256.1.1.1 and 1.2.3 and 1.2.3.4.5", nil},
		{"01.02.03.04", nil},
		{"v1.2.3.4 and go1.2.3.4", nil},
		{"12:30:45 and 00:1a:2b:3c:4d:5e", nil},
		{"std::vector and a::b and :: alone", nil},
		{"See Section 4.2.1.10 and RFC 5280, 4.2.1.12 and ,v 1.10.14.1", nil},
		{"text\n8.1.2.3 Request Pseudo-Header Fields", nil},
		{"deadbeef cafe face", nil},
		{"1.2.3.4-beta", nil},
	})
}

func TestLuhnAndChecksums(t *testing.T) {
	for _, d := range []string{"4111111111111111", "79927398713", "0"} {
		if !luhnValid([]byte(d)) {
			t.Errorf("luhnValid(%s) = false", d)
		}
	}
	if luhnValid([]byte("79927398710")) {
		t.Error("luhnValid(79927398710) = true")
	}
	if !ibanChecksumValid([]byte("GB82WEST12345698765432")) || ibanChecksumValid([]byte("GB82WEST12345698765433")) {
		t.Error("ibanChecksumValid wrong")
	}
	if h := shannonEntropy("aaaa"); h != 0 {
		t.Errorf("entropy(aaaa) = %v", h)
	}
	if h := shannonEntropy("abcd"); h != 2 {
		t.Errorf("entropy(abcd) = %v", h)
	}
	// englishBigramTable encodes exactly englishBigrams.
	want := strings.Repeat("0", 26*26)
	for _, b := range strings.Fields(englishBigrams) {
		k := 26*int(b[0]-'a') + int(b[1]-'a')
		want = want[:k] + "1" + want[k+1:]
	}
	if englishBigramTable != want {
		t.Error("englishBigramTable does not encode englishBigrams")
	}
}
