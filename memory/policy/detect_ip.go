package policy

import (
	"net/netip"
	"strings"
)

// findIPAddresses finds IPv4 addresses in dotted-decimal form (four
// octets 0 to 255 without leading zeros) and IPv6 addresses as parsed by
// net/netip (at least two non-empty hex groups and four hex digits, so
// that "::", "a::b" or times like "12:30:45" do not count), optionally
// with an IPv4 tail ("::ffff:192.0.2.1"). Addresses glued to words or
// longer dotted structures (versions such as "1.2.3.4.5") are rejected;
// a dash between two addresses is a range ("10.0.0.1-10.0.0.9"), and both
// are found.
func findIPAddresses(s string, dst []match) []match {
	lastEnd := -1 // end of the last address found
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isHex(c) && c != ':' {
			continue
		}
		// Candidate: a maximal run of hex digits, ':' and '.'.
		j := i
		colons := 0
		for j < len(s) && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
			if s[j] == ':' {
				colons++
			}
			j++
		}
		// Trim trailing punctuation such as a sentence's final '.'.
		for j > i && (s[j-1] == '.' || s[j-1] == ':' && (j-2 < i || s[j-2] != ':')) {
			if s[j-1] == ':' {
				colons--
			}
			j--
		}
		left := byteAt(s, i-1)
		if isWordByte(left) || left == '.' || left == ':' || left == '-' && i-1 != lastEnd || isWordByte(byteAt(s, j)) ||
			byteAt(s, j) == '-' && isAlpha(byteAt(s, j+1)) {
			i = max(i, j-1)
			continue
		}
		if colons >= 2 {
			if validIPv6(s[i:j]) {
				dst = append(dst, match{i, j})
				lastEnd = j
			}
		} else if colons == 0 && validIPv4(s[i:j]) && !afterReferenceWord(s, i) && !isHeadingNumber(s, i, j) {
			dst = append(dst, match{i, j})
			lastEnd = j
		} else if colons == 1 {
			// host:port
			k := i
			for s[k] != ':' {
				k++
			}
			if validIPv4(s[i:k]) && allDigits(s[k+1:j]) && !afterReferenceWord(s, i) {
				dst = append(dst, match{i, k})
				lastEnd = k
			}
		}
		i = max(i, j-1)
	}
	return dst
}

// validIPv4 reports whether t is exactly a dotted-decimal IPv4 address.
func validIPv4(t string) bool {
	octets, val, digits := 0, 0, 0
	for k := 0; k <= len(t); k++ {
		if k == len(t) || t[k] == '.' {
			if digits == 0 || digits > 1 && t[k-digits] == '0' || val > 255 {
				return false
			}
			octets++
			val, digits = 0, 0
			continue
		}
		if !isDigit(t[k]) || digits == 3 {
			return false
		}
		val = val*10 + int(t[k]-'0')
		digits++
	}
	return octets == 4
}

// validIPv6 reports whether t is an IPv6 address with enough substance
// to be one in prose: netip parses it, and it has at least two non-empty
// groups and four hex digits.
func validIPv6(t string) bool {
	groups, hex := 0, 0
	inGroup := false
	for k := 0; k < len(t); k++ {
		switch c := t[k]; {
		case c == ':':
			inGroup = false
		case c == '.':
			inGroup = true
		default:
			if !inGroup {
				groups++
				inGroup = true
			}
			hex++
		}
	}
	if groups < 2 || hex < 4 {
		return false
	}
	a, err := netip.ParseAddr(t)
	return err == nil && a.Is6()
}

// allDigits reports whether t is a non-empty run of ASCII digits.
func allDigits(t string) bool {
	for k := 0; k < len(t); k++ {
		if !isDigit(t[k]) {
			return false
		}
	}
	return t != ""
}

// afterReferenceWord reports whether the dotted number at s[i] follows a
// word that introduces section or version numbers ("Section 4.2.1.10",
// "RFC 5280, 4.2.1.10", ",v 1.10.14.1"), which look like IPv4 addresses.
func afterReferenceWord(s string, i int) bool {
	skipSpace := func(k int) int {
		for k > 0 && k > i-40 {
			switch s[k-1] {
			case ' ', '\t', '\n', ',', ':', '(':
				k--
				continue
			}
			break
		}
		return k
	}
	word := func(k int) (string, int) {
		e := k
		for k > 0 && e-k < 12 && (isAlnum(s[k-1]) || s[k-1] == '.') {
			k--
		}
		return s[k:e], k
	}
	k := skipSpace(i)
	w, k := word(k)
	if w != "" && allDigits(w) { // "RFC 5280, 4.2.1.10"
		w, _ = word(skipSpace(k))
	}
	if strings.HasSuffix(s[:k], "\u00a7") || strings.HasSuffix(s[:skipSpace(i)], "\u00a7") {
		return true
	}
	switch strings.ToLower(strings.TrimSuffix(w, ".")) {
	case "section", "sections", "sec", "secs", "chapter", "clause", "appendix", "annex",
		"table", "figure", "fig", "step", "rfc", "version", "ver", "v", "rev", "release":
		return true
	}
	return false
}

// isHeadingNumber reports whether the dotted number s[i:j] numbers a
// heading: it starts a line and is followed by an optional '.', a space
// and a capitalized word ("8.1.2.3 Request Pseudo-Header Fields").
func isHeadingNumber(s string, i, j int) bool {
	k := i
	for k > 0 && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	if k > 0 && s[k-1] != '\n' {
		return false
	}
	if byteAt(s, j) == '.' {
		j++
	}
	return byteAt(s, j) == ' ' && isUpper(byteAt(s, j+1)) && isLower(byteAt(s, j+2))
}
