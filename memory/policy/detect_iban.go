package policy

// findIBANs finds International Bank Account Numbers: a country code of
// the IBAN registry, two check digits (02 to 98) and the BBAN of the
// country's exact length, written either compactly
// ("DE89370400440532013000") or in groups of four separated by single
// spaces, dashes or dots ("DE89 3704 0044 0532 0130 00",
// "GB82-WEST-1234-5698-7654-32"), in upper or lower case (the country code
// in one case), whose ISO 7064 mod-97 checksum is 1. IBANs glued to words
// are rejected, unless what they are glued to is another IBAN: several in
// a row are all found, whatever separates them, nothing included.
func findIBANs(s string, dst []match) []match {
	lastEnd := -1 // end of the last IBAN found
	for i := 0; i+4 < len(s); i++ {
		if !isAlpha(s[i]) || !isDigit(s[i+2]) || isWordByte(byteAt(s, i-1)) && i != lastEnd {
			continue
		}
		end, sep, ok := readIBAN(s, i)
		if !ok {
			continue
		}
		// What follows must end the IBAN, or be the next one.
		if c := byteAt(s, end); isWordByte(c) || sep != 0 && sep != ' ' && c == sep && isAlnum(byteAt(s, end+1)) {
			next := end
			if !isWordByte(c) {
				next++
			}
			if _, _, ok := readIBAN(s, next); !ok {
				continue
			}
		}
		dst = append(dst, match{i, end})
		lastEnd = end
		i = end - 1
	}
	return dst
}

// readIBAN reads an IBAN starting at s[i], whatever follows it, and
// returns its end and the separator of its groups (0 when compact) if it
// is well-formed and its checksum verifies.
func readIBAN(s string, i int) (end int, sep byte, ok bool) {
	if i+4 >= len(s) {
		return 0, 0, false
	}
	a, b := s[i], s[i+1]
	if !(isUpper(a) && isUpper(b) || isLower(a) && isLower(b)) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0, 0, false
	}
	length := ibanLength(a&^0x20, b&^0x20)
	if length == 0 {
		return 0, 0, false
	}
	if c := s[i+4]; c == ' ' || c == '-' || c == '.' {
		sep = c
	}
	var buf [34]byte
	d := buf[:0]
	j := i
	for n := 0; n < length; n++ {
		if sep != 0 && n > 0 && n%4 == 0 {
			if byteAt(s, j) != sep {
				return 0, 0, false
			}
			j++
		}
		c := byteAt(s, j)
		switch {
		case isLower(c):
			c &^= 0x20
		case !isUpper(c) && !isDigit(c):
			return 0, 0, false
		}
		d = append(d, c)
		j++
	}
	if check := int(d[2]-'0')*10 + int(d[3]-'0'); check < 2 || check > 98 {
		return 0, 0, false
	}
	return j, sep, ibanChecksumValid(d)
}

// ibanChecksumValid computes ISO 7064 MOD 97-10 over an IBAN of upper-case
// letters and digits: the first four characters move to the end, letters
// become 10 to 35, and the remainder must be 1.
func ibanChecksumValid(iban []byte) bool {
	rem := 0
	for k := range iban {
		c := iban[(k+4)%len(iban)]
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A') + 10) % 97
		}
	}
	return rem == 1
}

// ibanLength returns the IBAN length of the country with code ab in the
// SWIFT IBAN registry, or 0 for countries that do not use IBANs.
func ibanLength(a, b byte) int {
	switch string([]byte{a, b}) {
	case "NO":
		return 15
	case "BE":
		return 16
	case "DK", "FI", "FK", "FO", "GL", "NL", "SD":
		return 18
	case "MK", "SI":
		return 19
	case "AT", "BA", "EE", "KZ", "LT", "LU", "MN", "XK":
		return 20
	case "CH", "HR", "LI", "LV":
		return 21
	case "BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA":
		return 22
	case "AE", "GI", "IL", "IQ", "OM", "SO", "TL":
		return 23
	case "AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG":
		return 24
	case "LY", "PT", "ST":
		return 25
	case "IS", "TR":
		return 26
	case "BI", "DJ", "FR", "GR", "IT", "MC", "MR", "SM":
		return 27
	case "AL", "AZ", "BY", "CY", "DO", "GT", "HN", "HU", "LB", "NI", "PL", "SV":
		return 28
	case "BR", "EG", "PS", "QA", "UA":
		return 29
	case "JO", "KW", "MU", "YE":
		return 30
	case "MT", "SC":
		return 31
	case "LC":
		return 32
	case "RU":
		return 33
	}
	return 0
}
