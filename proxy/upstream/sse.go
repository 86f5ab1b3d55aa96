package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxEventBytes is the default SSEReader.MaxEventBytes.
const DefaultMaxEventBytes = 8 << 20

// Event is one server-sent event block.
type Event struct {
	// Name is the value of the event: field, "" for plain messages. A
	// non-standard "error:" line (sent by some llama.cpp builds) sets Name to
	// "error" and its value is appended to Data.
	Name string
	// Data is the event's data: the values of its data: lines joined by
	// "\n", nil when it has none (comment-only blocks such as keep-alives).
	Data []byte
	// Raw is the exact bytes of the block as received, from its first byte
	// through the blank line that ends it, so relaying every Raw in order
	// reproduces the stream byte for byte.
	Raw []byte
	// Incomplete is set on a final block that the stream ended (or failed)
	// before terminating with a blank line. A conforming SSE client would
	// discard it; its Raw is still given for faithful relaying.
	Incomplete bool
}

// SSEReader splits a text/event-stream into events. It accepts LF, CRLF
// and CR line endings, comments, multi-line data and a leading BOM, per the
// WHATWG EventSource rules. It reads in large chunks and does not allocate
// per event in the common single-data-line case.
//
// The Data and Raw slices of an Event are only valid until the next call to
// Next; copy them to keep them.
type SSEReader struct {
	// MaxEventBytes bounds the size of one event block; a larger one fails
	// with ErrEventTooLarge. Zero means DefaultMaxEventBytes.
	MaxEventBytes int

	r        io.Reader
	buf      []byte
	pos, end int   // unconsumed bytes are buf[pos:end]
	scan     int   // bytes of buf[pos:] already split into lines
	err      error // sticky read error, returned once buffered data is used
	segs     [][2]int
	name     string
	data     []byte
	bomDone  bool
	finished bool
}

// NewSSEReader returns an SSEReader reading from r.
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: r, buf: make([]byte, 32<<10)}
}

// Next returns the next event block. At the end of the stream it returns
// io.EOF; a read error is returned after any buffered partial block has
// been delivered (with Incomplete set).
func (s *SSEReader) Next() (Event, error) {
	if s.finished {
		return Event{}, s.errOrEOF()
	}
	max := s.MaxEventBytes
	if max <= 0 {
		max = DefaultMaxEventBytes
	}
	s.segs = s.segs[:0]
	s.name = ""
	s.scan = 0
	noProgress := 0
	for {
		// Split complete lines out of the buffered bytes.
		for {
			win := s.buf[s.pos+s.scan : s.end]
			if !s.bomDone {
				if len(win) < 3 && s.err == nil && bytes.HasPrefix([]byte("\xEF\xBB\xBF"), win) {
					break // need more bytes to tell
				}
				s.bomDone = true
				if bytes.HasPrefix(win, []byte("\xEF\xBB\xBF")) {
					s.scan += 3
					continue
				}
			}
			n, term := lineEnd(win, s.err != nil)
			if n < 0 {
				break
			}
			line := win[:n]
			lineStart := s.scan
			s.scan += n + term
			if n == 0 {
				return s.dispatch(s.scan, false), nil
			}
			s.field(line, lineStart)
		}
		if s.err != nil {
			s.finished = true
			if s.end > s.pos {
				// Stream ended inside a block: the unterminated last line (if
				// any) was not yet parsed.
				if rest := s.buf[s.pos+s.scan : s.end]; len(rest) > 0 {
					s.field(rest, s.scan)
				}
				return s.dispatch(s.end-s.pos, true), nil
			}
			return Event{}, s.errOrEOF()
		}
		if s.end-s.pos > max {
			s.finished = true
			s.err = fmt.Errorf("%w: more than %d bytes", ErrEventTooLarge, max)
			return Event{}, s.err
		}
		// Make room and read more.
		if s.end == len(s.buf) {
			if s.pos > 0 {
				copy(s.buf, s.buf[s.pos:s.end])
				s.end -= s.pos
				s.pos = 0
			} else {
				nb := make([]byte, 2*len(s.buf))
				copy(nb, s.buf[:s.end])
				s.buf = nb
			}
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil {
			s.err = err
		} else if n == 0 {
			if noProgress++; noProgress > 100 {
				s.err = io.ErrNoProgress
			}
		}
	}
}

func (s *SSEReader) errOrEOF() error {
	if s.err == nil || errors.Is(s.err, io.EOF) {
		return io.EOF
	}
	return s.err
}

// lineEnd finds the first line terminator in b: it returns the line length
// and the terminator length, or -1 when b holds no complete line. A CR at
// the very end is only a terminator at EOF (it may be the start of CRLF).
func lineEnd(b []byte, atEOF bool) (n, term int) {
	lf := bytes.IndexByte(b, '\n')
	search := b
	if lf >= 0 {
		search = b[:lf]
	}
	if cr := bytes.IndexByte(search, '\r'); cr >= 0 {
		switch {
		case cr+1 < len(b) && b[cr+1] == '\n':
			return cr, 2
		case cr+1 < len(b) || atEOF:
			return cr, 1
		default:
			return -1, 0
		}
	}
	if lf >= 0 {
		return lf, 1
	}
	return -1, 0
}

// field interprets one non-empty line at offset off from s.pos.
func (s *SSEReader) field(line []byte, off int) {
	if line[0] == ':' {
		return // comment
	}
	name, value := line, line[len(line):]
	valueOff := off + len(line)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		valueOff = off + i + 1
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
			valueOff++
		}
	}
	switch string(name) {
	case "data":
		s.segs = append(s.segs, [2]int{valueOff, valueOff + len(value)})
	case "event":
		s.name = string(value)
	case "error":
		if s.name == "" {
			s.name = "error"
		}
		s.segs = append(s.segs, [2]int{valueOff, valueOff + len(value)})
	}
}

// dispatch builds the event from the first size bytes of buf[pos:] and
// consumes them.
func (s *SSEReader) dispatch(size int, incomplete bool) Event {
	block := s.buf[s.pos : s.pos+size]
	ev := Event{Name: s.name, Raw: block, Incomplete: incomplete}
	switch len(s.segs) {
	case 0:
	case 1:
		ev.Data = block[s.segs[0][0]:s.segs[0][1]:s.segs[0][1]]
	default:
		s.data = s.data[:0]
		for i, sg := range s.segs {
			if i > 0 {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, block[sg[0]:sg[1]]...)
		}
		ev.Data = s.data
	}
	s.pos += size
	s.scan = 0
	if s.pos == s.end {
		s.pos, s.end = 0, 0
	}
	return ev
}
