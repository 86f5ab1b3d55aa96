package policy

import (
	"sort"
	"strings"
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
	// runs map text back to the original, in order, tiling text: most of
	// a view is the original's ASCII copied byte for byte, so the map is
	// kept as runs rather than an offset per byte.
	runs []viewRun
	// origLen is the original's length.
	origLen int
	// formatAsSpace marks the view where format characters read as
	// spaces.
	formatAsSpace bool
}

// viewRun is a stretch of a view's text that came from the original in
// one way: byte for byte (copied: text[v+k] is the original's byte o+k),
// or all from the one character (or segment, or defanged token) at o.
type viewRun struct {
	// v and o are where the run starts in the view and in the original.
	v, o int32
	// n is the run's length in the view.
	n int32
	// copied marks a byte-for-byte run.
	copied bool
}

// newViews returns the normalized views of s: none when the view is s
// itself (plain ASCII without anything to rewrite: the common case,
// checked in one cheap pass), else the view, and when s holds format
// characters, a second view in which they read as spaces rather than
// nothing: a soft hyphen or a zero-width space between digit groups
// ("020\u00ad7946\u00ad0958") then separates them as printed numbers
// need, while the first view joins what they split ("frank\u200b.l@…").
// Both are built in one pass.
func newViews(s string) []*view {
	if !needsView(s) {
		return nil
	}
	joined, spaced := normalize(s)
	var views []*view
	if joined.text != s {
		views = append(views, joined)
	}
	if spaced != nil {
		views = append(views, spaced)
	}
	return views
}

// needsView reports whether the view of s may differ from s: a non-ASCII
// byte, a tab, vertical tab or form feed, two spaces in a row, or a
// defanged separator. Every Scan asks, so it is built from word-at-a-time
// and vectorized searches rather than a byte loop.
func needsView(s string) bool {
	if hasNonASCII(s) || strings.Contains(s, "  ") || strings.IndexByte(s, '\t') >= 0 ||
		strings.IndexByte(s, '\v') >= 0 || strings.IndexByte(s, '\f') >= 0 {
		return true
	}
	for _, open := range []byte{'[', '(', '{'} {
		for from := 0; ; {
			k := strings.IndexByte(s[from:], open)
			if k < 0 {
				break
			}
			if _, _, ok := defangAt(s, from+k); ok {
				return true
			}
			from += k + 1
		}
	}
	return false
}

// hasNonASCII reports whether s holds a byte of 0x80 or more, eight bytes
// at a time.
func hasNonASCII(s string) bool {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if w&0x8080808080808080 != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// viewBuilder accumulates a view. Runs of spaces are written as one.
type viewBuilder struct {
	// out is the view's text so far.
	out []byte
	// runs map out back to the original (see view).
	runs []viewRun
}

// copyBytes appends orig[pos:pos+len(b)], which the view keeps as it is.
func (b *viewBuilder) copyBytes(p string, pos int) {
	if len(p) == 0 {
		return
	}
	v := int32(len(b.out))
	b.out = append(b.out, p...)
	if n := len(b.runs); n > 0 {
		if last := &b.runs[n-1]; last.copied && last.v+last.n == v && int(last.o+last.n) == pos {
			last.n += int32(len(p))
			return
		}
	}
	b.runs = append(b.runs, viewRun{v: v, o: int32(pos), n: int32(len(p)), copied: true})
}

// space appends a space that the character at pos produced, unless the
// view already ends with one. An ASCII space, tab or form feed maps byte
// for byte.
func (b *viewBuilder) space(pos int, ascii bool) {
	if n := len(b.out); n > 0 && b.out[n-1] == ' ' {
		return
	}
	if ascii {
		b.copyBytes(" ", pos)
		return
	}
	b.from(" ", pos)
}

// from appends text that the character (or segment, or token) at pos
// produced.
func (b *viewBuilder) from(p string, pos int) {
	v := int32(len(b.out))
	b.out = append(b.out, p...)
	b.extend(v, pos)
}

// extend maps out[v:] to the character at pos, extending the last run
// when it maps to that character too.
func (b *viewBuilder) extend(v int32, pos int) {
	if n := len(b.runs); n > 0 {
		if last := &b.runs[n-1]; !last.copied && last.o == int32(pos) {
			last.n += int32(len(b.out)) - v
			return
		}
	}
	b.runs = append(b.runs, viewRun{v: v, o: int32(pos), n: int32(len(b.out)) - v})
}

// addRune appends a rune that the segment at pos produced.
func (b *viewBuilder) addRune(r rune, pos int) {
	if r == ' ' {
		b.space(pos, false)
		return
	}
	v := int32(len(b.out))
	b.out = utf8.AppendRune(b.out, r)
	b.extend(v, pos)
}

// defanged appends the separator a defanged token at pos stands for; a
// word token (" [at] ") takes the space before it along.
func (b *viewBuilder) defanged(plain byte, pos int, word bool) {
	if n := len(b.out); word && n > 0 && b.out[n-1] == ' ' {
		last := &b.runs[len(b.runs)-1]
		pos = int(last.o)
		if last.copied {
			pos += int(last.n - 1)
		}
		b.out = b.out[:n-1]
		if last.n--; last.n == 0 {
			b.runs = b.runs[:len(b.runs)-1]
		}
	}
	b.from(string(plain), pos)
}

// clone copies the builder.
func (b *viewBuilder) clone(capacity int) *viewBuilder {
	c := &viewBuilder{out: make([]byte, len(b.out), capacity), runs: make([]viewRun, len(b.runs), max(len(b.runs), 16))}
	copy(c.out, b.out)
	copy(c.runs, b.runs)
	return c
}

// normalize builds the views of s in one pass: joined drops format
// characters; spaced, built only when s has any, reads them as spaces.
// ASCII that no combining mark follows is its own NFKC segment and is
// copied without asking NFKC; defanged tokens are read in the original's
// ASCII.
func normalize(s string) (joined, spaced *view) {
	a := &viewBuilder{out: make([]byte, 0, len(s))}
	var b *viewBuilder // the spaced view, from the first format character on
	var it norm.Iter
	for i := 0; i < len(s); {
		// Plain ASCII that needs nothing: copied as a whole.
		if j := plainASCIIEnd(s, i); j > i {
			a.copyBytes(s[i:j], i)
			if b != nil {
				b.copyBytes(s[i:j], i)
			}
			i = j
			continue
		}
		if c := s[i]; c < utf8.RuneSelf && byteAt(s, i+1) < utf8.RuneSelf {
			switch c {
			case ' ', '\t', '\v', '\f':
				a.space(i, true)
				if b != nil {
					b.space(i, true)
				}
				i++
				continue
			case '[', '(', '{':
				if plain, end, ok := defangAt(s, i); ok {
					word := isWordDefang(s, i)
					if word && byteAt(s, end) == ' ' {
						end++
					}
					a.defanged(plain, i, word)
					if b != nil {
						b.defanged(plain, i, word)
					}
					i = end
					continue
				}
			}
			a.copyBytes(s[i:i+1], i)
			if b != nil {
				b.copyBytes(s[i:i+1], i)
			}
			i++
			continue
		}
		// NFKC segments until plain ASCII again.
		it.InitString(norm.NFKC, s[i:])
		base := i
		for !it.Done() {
			pos := base + it.Pos()
			seg := it.Next()
			for k := 0; k < len(seg); {
				r, size := utf8.DecodeRune(seg[k:])
				if r == utf8.RuneError && size <= 1 {
					// Invalid UTF-8 passes through byte for byte.
					a.from(string(seg[k:k+1]), pos)
					if b != nil {
						b.from(string(seg[k:k+1]), pos)
					}
					k++
					continue
				}
				k += size
				if r >= utf8.RuneSelf && isFormat(r) {
					if b == nil {
						b = a.clone(len(s))
					}
					b.space(pos, false)
					continue
				}
				if r = foldRune(r); r >= 0 {
					a.addRune(r, pos)
					if b != nil {
						b.addRune(r, pos)
					}
				}
			}
			i = base + it.Pos()
			if i >= len(s) || s[i] < utf8.RuneSelf && byteAt(s, i+1) < utf8.RuneSelf {
				break
			}
		}
	}
	joined = &view{text: string(a.out), runs: a.runs, origLen: len(s)}
	if b != nil {
		spaced = &view{text: string(b.out), runs: b.runs, origLen: len(s), formatAsSpace: true}
	}
	return joined, spaced
}

// plainASCIIEnd returns the end of the ASCII run from s[i] that the view
// copies as it is: no tab, no bracket (defanged tokens), no space that
// starts the run or has a space after it (runs of spaces collapse), and
// not the last byte before a non-ASCII rune (a combining mark may compose
// with it).
func plainASCIIEnd(s string, i int) int {
	j := i
	for ; j < len(s); j++ {
		c := s[j]
		if c >= utf8.RuneSelf || byteAt(s, j+1) >= utf8.RuneSelf {
			break
		}
		switch c {
		case '\t', '\v', '\f', '[', '(', '{':
			return j
		case ' ':
			if j == i || byteAt(s, j+1) == ' ' {
				return j
			}
		}
	}
	return j
}

// isFormat reports whether r is a format character (Unicode Cf), with the
// common non-format ranges answered without a table search.
func isFormat(r rune) bool {
	switch {
	case r < 0xAD, 0x3040 <= r && r <= 0xD7A3:
		return false
	}
	return unicode.Is(unicode.Cf, r)
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
	if 0x3041 <= r && r <= 0x3096 || 0x30A1 <= r && r <= 0x30FA || 0x4E00 <= r && r <= 0x9FFF || 0xAC00 <= r && r <= 0xD7A3 {
		return r // kana, CJK ideographs and Hangul syllables: letters
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

// run returns the index of the run holding view byte k.
func (v *view) run(k int) int {
	return sort.Search(len(v.runs), func(i int) bool { return int(v.runs[i].v+v.runs[i].n) > k })
}

// startOf returns where in the original the character that produced view
// byte k starts.
func (v *view) startOf(k int) int {
	r := v.runs[v.run(k)]
	if r.copied {
		return int(r.o) + k - int(r.v)
	}
	return int(r.o)
}

// endOf returns where in the original the character that produced view
// byte k ends, characters the view dropped after it included.
func (v *view) endOf(k int) int {
	i := v.run(k)
	if r := v.runs[i]; r.copied && k < int(r.v+r.n)-1 {
		return int(r.o) + k - int(r.v) + 1
	}
	if i+1 < len(v.runs) {
		return int(v.runs[i+1].o)
	}
	return v.origLen
}

// original maps the view span [a, b) back to the original's bytes: from
// the start of the character that produced text[a] to the end of the one
// that produced text[b-1], with the characters dropped in between.
func (v *view) original(a, b int) (start, end int) {
	return v.startOf(a), v.endOf(b - 1)
}
