package proxy

import (
	"bytes"
	"encoding/json"
)

// bodyLayout is where a chat request body keeps its messages (or a
// Responses API body its input items): found by one
// pass over the bytes that follows only strings and brackets, so that a
// resent history of megabytes costs a scan rather than a parse. Nothing is
// validated here: the body with its messages array left out is validated
// as a whole, and each message either matches stored bytes that were
// validated when they were stored, or is validated as it is decoded.
type bodyLayout struct {
	// start and end delimit the value of the top-level "messages" key in
	// the body: from its '[' to just past its ']'.
	start, end int
	// elems are the byte ranges of the array's elements, in order.
	elems [][2]int
	// depth is the deepest nesting of objects and arrays seen in the body
	// (the top-level object counts 1), up to the limit given to scanBody.
	depth int
}

// scanResult says what scanBody found.
type scanResult int

const (
	// scanOK: the layout is filled in.
	scanOK scanResult = iota
	// scanOther: the body is not shaped like a request whose key holds
	// an array (or it is not JSON, or nests deeper than allowed); a
	// full parse tells what is wrong.
	scanOther
	// scanDuplicate: the top-level object has the key twice
	// (perhaps spelled with escapes). Parsers disagree on which one counts,
	// so the upstream could read a list the proxy never saw.
	scanDuplicate
)

// scanBody locates the top-level "messages" array of body and splits it
// into elements: scanArray for the key "messages".
func scanBody(body []byte, maxDepth int) (bodyLayout, scanResult) {
	return scanArray(body, "messages", maxDepth)
}

// scanArray locates the top-level array under key in body and splits it
// into elements. It answers scanOther unless body is a top-level object
// with that key once, whose value is an array of elements separated by
// commas, with nothing but whitespace after the object and brackets
// balanced (their kinds and everything else are left to the validation
// that follows), nested at most maxDepth levels deep.
func scanArray(body []byte, key string, maxDepth int) (bodyLayout, scanResult) {
	lay, ok, dup := scanLayout(body, key, maxDepth)
	switch {
	case dup:
		return lay, scanDuplicate
	case !ok:
		return lay, scanOther
	}
	return lay, scanOK
}

func scanLayout(body []byte, key string, maxDepth int) (lay bodyLayout, ok, dup bool) {
	s := scanner{b: body, maxDepth: maxDepth}
	i := s.ws(0)
	if i >= len(body) || body[i] != '{' {
		return lay, false, false
	}
	s.depth = 1
	s.deepest = 1
	i = s.ws(i + 1)
	found := false
	for i < len(body) && body[i] != '}' {
		if body[i] != '"' {
			return lay, false, false
		}
		kEnd, ok := s.str(i)
		if !ok {
			return lay, false, false
		}
		isMessages := isKey(body[i:kEnd], key)
		i = s.ws(kEnd)
		if i >= len(body) || body[i] != ':' {
			return lay, false, false
		}
		i = s.ws(i + 1)
		if isMessages {
			if found {
				return lay, false, true
			}
			if i >= len(body) || body[i] != '[' {
				return lay, false, false
			}
			found = true
			lay.start = i
			lay.elems, i, ok = s.array(i)
			lay.end = i
		} else {
			i, ok = s.value(i)
		}
		if !ok {
			return lay, false, false
		}
		i = s.ws(i)
		if i < len(body) && body[i] == ',' {
			i = s.ws(i + 1)
			if i < len(body) && body[i] == '}' {
				return lay, false, false // a trailing comma
			}
		} else if i >= len(body) || body[i] != '}' {
			return lay, false, false
		}
	}
	if i >= len(body) || !found || s.ws(i+1) != len(body) {
		return lay, false, false
	}
	lay.depth = s.deepest
	return lay, true, false
}

// isKey reports whether the JSON string key (quotes included) reads
// name, escapes decoded.
func isKey(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return len(key) == len(name)+2 && string(key[1:len(key)-1]) == name
	}
	var k string
	return json.Unmarshal(key, &k) == nil && k == name
}

// scanner walks JSON bytes without decoding them.
type scanner struct {
	b []byte
	// depth is the current nesting, deepest the most seen; the walk fails
	// once deepest passes maxDepth.
	depth, deepest, maxDepth int
}

// ws returns the first index at or after i that is not JSON whitespace.
func (s *scanner) ws(i int) int {
	for i < len(s.b) {
		switch s.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// str returns the index just past the string that starts at i (a '"').
// A quote ends the string unless an odd run of backslashes precedes it.
func (s *scanner) str(i int) (int, bool) {
	j := i + 1
	for {
		k := bytes.IndexByte(s.b[j:], '"')
		if k < 0 {
			return 0, false
		}
		q := j + k
		n := 0
		for q-1-n > i && s.b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q + 1, true
		}
		j = q + 1
	}
}

// value returns the index just past the value that starts at i.
func (s *scanner) value(i int) (int, bool) {
	if i >= len(s.b) {
		return 0, false
	}
	switch s.b[i] {
	case '"':
		return s.str(i)
	case '{', '[':
		return s.nested(i)
	case ',', '}', ']', ':':
		return 0, false
	}
	// A number or a literal: up to the next delimiter.
	for i < len(s.b) {
		switch s.b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, true
		}
		i++
	}
	return i, true
}

// nested returns the index just past the object or array that starts at i,
// counting brackets outside strings.
func (s *scanner) nested(i int) (int, bool) {
	base := s.depth
	for i < len(s.b) {
		switch s.b[i] {
		case '"':
			end, ok := s.str(i)
			if !ok {
				return 0, false
			}
			i = end
			continue
		case '{', '[':
			s.depth++
			if s.depth > s.deepest {
				s.deepest = s.depth
				if s.deepest > s.maxDepth {
					return 0, false
				}
			}
		case '}', ']':
			s.depth--
			if s.depth == base {
				return i + 1, true
			}
		}
		i++
	}
	return 0, false
}

// array splits the array that starts at i into its elements and returns
// them with the index just past the array.
func (s *scanner) array(i int) ([][2]int, int, bool) {
	s.depth++
	s.deepest = max(s.deepest, s.depth)
	if s.deepest > s.maxDepth {
		return nil, 0, false
	}
	var elems [][2]int
	i = s.ws(i + 1)
	if i < len(s.b) && s.b[i] == ']' {
		s.depth--
		return elems, i + 1, true
	}
	for {
		end, ok := s.value(i)
		if !ok {
			return nil, 0, false
		}
		elems = append(elems, [2]int{i, end})
		i = s.ws(end)
		if i >= len(s.b) {
			return nil, 0, false
		}
		switch s.b[i] {
		case ',':
			i = s.ws(i + 1)
		case ']':
			s.depth--
			return elems, i + 1, true
		default:
			return nil, 0, false
		}
	}
}
