package policy

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// view is text as the detectors see it, so that a value written to evade
// them (fullwidth digits, invisible characters inside, typographic dashes,
// defanged dots) reads as the plain value; spans found in it are mapped back
// to the original's bytes, and the original is what gets redacted.
//
// The view is the original's NFKC form (fullwidth and other compatibility
// forms become ASCII, no-break and typographic spaces become spaces) with,
// further:
//   - format characters (Unicode Cf: zero-width space, word joiner, soft
//     hyphen, byte-order mark, bidi controls) and combining marks (Mn, Me)
//     dropped (see newViews for the second view, where format characters
//     read as spaces);
//   - dashes (Pd, minus sign) read as '-', dot look-alikes (middle dots,
//     bullets, ideographic full stops) as '.', horizontal whitespace as ' ',
//     and runs of spaces as one;
//   - defanged separators read plainly: "[.]", "(.)" and "{.}" as '.',
//     "[@]", "(@)", "[at]", "(at)" as '@', and "[dot]", "(dot)" as '.',
//     the word forms taking one space on either side with them.
//
// Line breaks are kept, so a value spread over lines is not joined.
type view struct {
	// text is the normalized text.
	text string
	// starts[i] is the offset in the original of the character that
	// produced text[i]; starts[len(text)] is the original's length. It never
	// decreases.
	starts []int32
	// formatAsSpace marks the view where format characters read as
	// spaces.
	formatAsSpace bool
}

// newViews returns the normalized views of s: none when the view is s
// itself (plain ASCII without anything to rewrite: the common case,
// checked in one cheap pass), else the view, and when s holds format
// characters, a second view in which they read as spaces rather than
// nothing: a soft hyphen or a zero-width space between digit groups
// ("020\u00ad7946\u00ad0958") then separates them as printed numbers
// need, while the first view joins what they split ("frank\u200b.l@…").
func newViews(s string) []*view {
	if !needsView(s) {
		return nil
	}
	var views []*view
	first, hadFormat := normalize(s, false)
	if first.text != s {
		views = append(views, first)
	}
	if hadFormat {
		spaced, _ := normalize(s, true)
		views = append(views, spaced)
	}
	return views
}

// needsView reports whether the view of s may differ from s: a non-ASCII
// byte, a tab, two spaces in a row, or a bracket that may open a defanged
// separator.
func needsView(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= utf8.RuneSelf, c == '\t', c == '\v', c == '\f':
			return true
		case c == ' ':
			if byteAt(s, i+1) == ' ' {
				return true
			}
		case c == '[' || c == '(' || c == '{':
			if _, _, ok := defangAt(s, i); ok {
				return true
			}
		}
	}
	return false
}

// normalize builds the view of s. Format characters are dropped, or read
// as spaces with formatAsSpace; hadFormat reports whether there were any.
func normalize(s string, formatAsSpace bool) (v *view, hadFormat bool) {
	v, hadFormat, again := normalizeRunes(s, formatAsSpace)
	if again {
		v = rewriteSeparators(v)
	}
	v.starts = append(v.starts, int32(len(s)))
	v.formatAsSpace = formatAsSpace
	return v, hadFormat
}

// normalizeRunes applies NFKC segment by segment and rewrites or drops the
// resulting runes; each output byte records the start of its segment (the
// final sentinel is left to the caller). ASCII that no combining mark
// follows is its own segment and is copied without asking NFKC. again
// reports a space run or a bracket in the output, for rewriteSeparators.
func normalizeRunes(s string, formatAsSpace bool) (v *view, hadFormat, again bool) {
	out := make([]byte, 0, len(s))
	starts := make([]int32, 0, len(s)+1)
	var it norm.Iter
	for i := 0; i < len(s); {
		// Plain ASCII, but for its last byte when a non-ASCII rune follows
		// (a combining mark may compose with it).
		j := i
		for j < len(s) && s[j] < utf8.RuneSelf {
			j++
		}
		if j < len(s) && j > i {
			j--
		}
		for ; i < j; i++ {
			c := s[i]
			switch c {
			case '\t', '\v', '\f':
				c = ' '
			}
			switch c {
			case ' ':
				again = again || len(out) > 0 && out[len(out)-1] == ' '
			case '[', '(', '{':
				if !again {
					_, _, again = defangAt(s, i)
				}
			}
			out = append(out, c)
			starts = append(starts, int32(i))
		}
		if i >= len(s) {
			break
		}
		// NFKC segments until plain ASCII again.
		it.InitString(norm.NFKC, s[i:])
		base := i
		for !it.Done() {
			pos := int32(base + it.Pos())
			seg := it.Next()
			for k := 0; k < len(seg); {
				r, size := utf8.DecodeRune(seg[k:])
				if r == utf8.RuneError && size <= 1 {
					// Invalid UTF-8 passes through byte for byte.
					out = append(out, seg[k])
					starts = append(starts, pos)
					k++
					continue
				}
				k += size
				if r >= utf8.RuneSelf && unicode.Is(unicode.Cf, r) {
					hadFormat = true
					if !formatAsSpace {
						continue
					}
					r = ' '
				}
				if r = foldRune(r); r < 0 {
					continue
				}
				switch r {
				case ' ':
					again = again || len(out) > 0 && out[len(out)-1] == ' '
				case '[', '(', '{':
					again = true
				}
				n := len(out)
				out = utf8.AppendRune(out, r)
				for ; n < len(out); n++ {
					starts = append(starts, pos)
				}
			}
			i = base + it.Pos()
			if i >= len(s) || s[i] < utf8.RuneSelf && byteAt(s, i+1) < utf8.RuneSelf {
				break
			}
		}
	}
	return &view{text: string(out), starts: starts}, hadFormat, again
}

// foldRune maps a rune of NFKC text (other than a format character) to
// what the detectors should see, or -1 to drop it.
func foldRune(r rune) rune {
	if r < utf8.RuneSelf {
		switch r {
		case '\t', '\v', '\f':
			return ' '
		}
		return r
	}
	switch r {
	case '\u2212', '\u2043', '\u02d7', '\u2796', '\ufe63':
		return '-' // minus sign, hyphen bullet, modifier minus, heavy minus, small hyphen-minus
	case '\u00b7', '\u0387', '\u2022', '\u2027', '\u2219', '\u22c5', '\u30fb', '\u3002', '\ufe52':
		return '.' // middle dots, bullets, hyphenation point, dot operators, ideographic full stop
	case '\u0085', '\u2028', '\u2029':
		return '\n'
	}
	switch {
	case unicode.In(r, unicode.Mn, unicode.Me):
		return -1
	case unicode.Is(unicode.Pd, r):
		return '-'
	case unicode.IsSpace(r):
		return ' '
	}
	return r
}

// rewriteSeparators collapses runs of spaces and reads defanged
// separators plainly (see view) in a view without its sentinel.
func rewriteSeparators(in *view) *view {
	s := in.text
	out := make([]byte, 0, len(s))
	starts := make([]int32, 0, len(s)+1)
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' && len(out) > 0 && out[len(out)-1] == ' ' {
			i++ // the run keeps its first space
			continue
		}
		if c == '[' || c == '(' || c == '{' {
			if plain, end, ok := defangAt(s, i); ok {
				start := in.starts[i]
				if isWordDefang(s, i) {
					// " [at] " reads "@": the spaces around go with it.
					if len(out) > 0 && out[len(out)-1] == ' ' {
						start = starts[len(starts)-1]
						out, starts = out[:len(out)-1], starts[:len(starts)-1]
					}
					if byteAt(s, end) == ' ' {
						end++
					}
				}
				out = append(out, plain)
				starts = append(starts, start)
				i = end
				continue
			}
		}
		out = append(out, c)
		starts = append(starts, in.starts[i])
		i++
	}
	return &view{text: string(out), starts: starts}
}

// defangAt reads a defanged separator opening at s[i] and returns the
// separator it stands for and the end of the token.
func defangAt(s string, i int) (plain byte, end int, ok bool) {
	open := s[i]
	var close byte
	switch open {
	case '[':
		close = ']'
	case '(':
		close = ')'
	case '{':
		close = '}'
	default:
		return 0, 0, false
	}
	for _, d := range defangs {
		n := len(d.word)
		if i+n+2 > len(s) || s[i+n+1] != close {
			continue
		}
		if equalFoldASCII(s[i+1:i+n+1], d.word) {
			return d.plain, i + n + 2, true
		}
	}
	return 0, 0, false
}

// defangs are the bracketed words that stand for a separator.
var defangs = []struct {
	word  string
	plain byte
}{{".", '.'}, {"@", '@'}, {"at", '@'}, {"dot", '.'}}

// isWordDefang reports whether the defanged token at s[i] is a word
// ("[at]", "(dot)") rather than a symbol ("[.]").
func isWordDefang(s string, i int) bool { return isAlpha(byteAt(s, i+1)) }

// equalFoldASCII reports whether a equals the lower-case ASCII word b,
// ignoring ASCII case.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for k := 0; k < len(a); k++ {
		if a[k]|0x20 != b[k] && a[k] != b[k] {
			return false
		}
	}
	return true
}

// original maps the view span [a, b) back to the original's bytes: from
// the start of the character that produced text[a] to the end of the one
// that produced text[b-1], with the characters dropped in between.
func (v *view) original(a, b int) (start, end int) {
	last := v.starts[b-1]
	k := b
	for k < len(v.text) && v.starts[k] == last {
		k++ // text[b-1] came from a character that produced more bytes
	}
	return int(v.starts[a]), int(v.starts[k])
}
