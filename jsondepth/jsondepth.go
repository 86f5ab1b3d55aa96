// Package jsondepth bounds the nesting of JSON documents before any parser
// sees them. The JSON libraries the project uses (gjson, sjson) validate and
// walk nested values recursively: a request body or an upstream answer made
// of millions of '[' overflows the goroutine stack, a fatal error that no
// recover catches, and encoding/json refuses documents nested deeper than
// 10,000 levels, so a deeply nested value stored once could never be read
// back. Every JSON input from outside is checked here first, with a
// non-recursive scan.
package jsondepth

import "github.com/tidwall/gjson"

// Limit is the deepest nesting MegaContext accepts anywhere: far more than
// any chat request needs (a request with tool schemas nests about ten
// levels), far less than what breaks the parsers.
const Limit = 128

// Depth returns the deepest nesting of objects and arrays in b, ignoring
// brackets inside strings. It stops counting once the depth passes stop
// (stop <= 0 never stops early). b need not be valid JSON: unbalanced
// brackets are counted as they come, so the result bounds what a parser of
// b would recurse into.
func Depth[T ~string | ~[]byte](b T, stop int) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > deepest {
				deepest = depth
				if stop > 0 && deepest > stop {
					return deepest
				}
			}
		case '}', ']':
			if depth > 0 {
				depth--
			}
		}
	}
	return deepest
}

// Exceeds reports whether b nests deeper than max levels.
func Exceeds[T ~string | ~[]byte](b T, max int) bool { return Depth(b, max) > max }

// Valid reports whether b is valid JSON nested at most Limit levels deep:
// gjson's validator, which recurses once per level, only ever sees
// documents that cannot exhaust the stack.
func Valid(b []byte) bool { return !Exceeds(b, Limit) && gjson.ValidBytes(b) }
