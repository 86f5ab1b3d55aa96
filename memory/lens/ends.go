package lens

import (
	"strings"
	"unicode/utf8"
)

// Open ends. A sentence cut at a block's end goes on in the next block,
// and a gathering question's Cover joins the two halves: it asks for each
// of thousands of candidate blocks whether its text ends inside a
// sentence. The index keeps the answer from Add (and Rewrite), so that
// the question reads no candidate's text for it.

// openBytes is the memory of a block's open-end mark.
const openBytes = 1

// EndsOpen reports whether block b's text, as indexed, ends inside a
// sentence: its last character other than a space is none of . ! ?
// (false for a block out of range).
func (x *Index) EndsOpen(b int) bool { return b >= 0 && b < len(x.open) && x.open[b] }

// endsOpen reports whether text ends inside a sentence (EndsOpen).
func endsOpen(text string) bool {
	t := strings.TrimSpace(text)
	_, n := utf8.DecodeLastRuneInString(t)
	return !strings.ContainsAny(t[len(t)-n:], ".!?")
}
