package policy

// match is a detected byte range [start, end).
type match struct{ start, end int }

// detectFunc appends the matches it finds in s to dst, in increasing order
// of start, non-overlapping, and returns the extended slice.
type detectFunc func(s string, dst []match) []match

// Built-in detector names, for Rule.Detector.
const (
	// DetectorEmail finds e-mail addresses.
	DetectorEmail = "email"
	// DetectorPhone finds international, North American and national
	// (trunk-prefix) telephone numbers.
	DetectorPhone = "phone"
	// DetectorCreditCard finds Luhn-valid payment card numbers of known
	// issuers.
	DetectorCreditCard = "credit_card"
	// DetectorIBAN finds IBANs with valid lengths and mod-97 checksums.
	DetectorIBAN = "iban"
	// DetectorAPIKey finds API keys, access tokens, JWTs, bearer tokens
	// and other random-looking key material.
	DetectorAPIKey = "api_key"
	// DetectorIPAddress finds IPv4 and IPv6 addresses.
	DetectorIPAddress = "ip_address"
)

// detectorFunc returns the built-in detector called name.
func detectorFunc(name string) (detectFunc, bool) {
	switch name {
	case DetectorEmail:
		return findEmails, true
	case DetectorPhone:
		return findPhones, true
	case DetectorCreditCard:
		return findCreditCards, true
	case DetectorIBAN:
		return findIBANs, true
	case DetectorAPIKey:
		return findAPIKeys, true
	case DetectorIPAddress:
		return findIPAddresses, true
	}
	return nil, false
}

// Detectors returns the names of the built-in detectors, sorted.
func Detectors() []string {
	return []string{DetectorAPIKey, DetectorCreditCard, DetectorEmail, DetectorIBAN, DetectorIPAddress, DetectorPhone}
}

// DefaultRules returns one redact rule per built-in detector, named after
// the detector, with no allowed scopes: a starting point for configuration.
func DefaultRules() []Rule {
	var rules []Rule
	for _, d := range Detectors() {
		rules = append(rules, Rule{Name: d, Detector: d, Action: ActionRedact})
	}
	return rules
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlpha(c byte) bool { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }
func isHex(c byte) bool   { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

// isWordByte reports whether c continues a word: ASCII letters and digits,
// '_', and any byte of a multi-byte UTF-8 sequence (non-ASCII letters).
func isWordByte(c byte) bool { return isAlnum(c) || c == '_' || c >= 0x80 }

// byteAt returns s[i], or 0 when i is out of range.
func byteAt(s string, i int) byte {
	if i < 0 || i >= len(s) {
		return 0
	}
	return s[i]
}

// numericLeft reports whether the text before position i continues a
// numeric structure: a digit or word byte right before i, or a joiner
// ('.', '-', '/', ':', ',') right after a digit.
func numericLeft(s string, i int) bool {
	c := byteAt(s, i-1)
	if isWordByte(c) {
		return true
	}
	switch c {
	case '.', '-', '/', ':', ',':
		return isDigit(byteAt(s, i-2))
	}
	return false
}

// numericRight reports whether the text from position i continues a
// numeric structure: a word byte, or a joiner followed by a digit.
func numericRight(s string, i int) bool {
	c := byteAt(s, i)
	if isWordByte(c) {
		return true
	}
	switch c {
	case '.', '-', '/', ':', ',':
		return isDigit(byteAt(s, i+1))
	}
	return false
}
