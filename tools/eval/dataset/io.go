package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"
)

// LineError is an error about one line of a dataset file.
type LineError struct {
	// Line is the 1-based line number in the (decompressed) input.
	Line int
	// Err is what went wrong on that line.
	Err error
}

// Error implements error.
func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// gzipMagic starts every gzip stream.
const gzipMagic = "\x1f\x8b"

// Cases returns an iterator over the cases of a JSON Lines dataset read
// from r, plain or gzip-compressed (detected by its magic bytes). Blank
// lines are skipped. Each case is decoded strictly (unknown fields are
// errors) and validated with [Case.Validate]; case ids must be unique. The
// first error is yielded as a *LineError with a zero Case and ends the
// iteration.
func Cases(r io.Reader) iter.Seq2[Case, error] {
	return func(yield func(Case, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		magic, _ := br.Peek(len(gzipMagic))
		if string(magic) == gzipMagic {
			zr, err := gzip.NewReader(br)
			if err != nil {
				yield(Case{}, &LineError{Line: 1, Err: fmt.Errorf("opening gzip stream: %w", err)})
				return
			}
			defer zr.Close()
			br = bufio.NewReaderSize(zr, 64<<10)
		}
		seen := make(map[string]int)
		for lineNo := 1; ; lineNo++ {
			line, err := br.ReadBytes('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				yield(Case{}, &LineError{Line: lineNo, Err: fmt.Errorf("reading: %w", err)})
				return
			}
			eof := err != nil
			if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
				c, derr := decodeCase(trimmed)
				if derr == nil {
					if prev, dup := seen[c.ID]; dup {
						derr = fmt.Errorf("duplicate case id %q (first on line %d)", c.ID, prev)
					} else {
						seen[c.ID] = lineNo
					}
				}
				if derr != nil {
					yield(Case{}, &LineError{Line: lineNo, Err: derr})
					return
				}
				if !yield(c, nil) {
					return
				}
			}
			if eof {
				return
			}
		}
	}
}

// decodeCase decodes and validates one line.
func decodeCase(line []byte) (Case, error) {
	var c Case
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Case{}, fmt.Errorf("decoding case: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Case{}, errors.New("decoding case: unexpected data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Case{}, err
	}
	return c, nil
}

// Read reads a whole dataset (plain or gzip JSON Lines) from r; see
// [Cases] for the rules.
func Read(r io.Reader) ([]Case, error) {
	var out []Case
	for c, err := range Cases(r) {
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ReadFile reads a dataset file, plain or gzip-compressed.
func ReadFile(path string) ([]Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %w", err)
	}
	defer f.Close()
	cases, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	return cases, nil
}

// Write writes cases to w as JSON Lines, one case a line, without HTML
// escaping. It does not validate; the output of the same cases is always
// byte-identical.
func Write(w io.Writer, cases []Case) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range cases {
		if err := enc.Encode(&cases[i]); err != nil {
			return fmt.Errorf("dataset: encoding case %q: %w", cases[i].ID, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dataset: writing: %w", err)
	}
	return nil
}

// WriteFile writes cases to path as JSON Lines, gzip-compressed (with a
// fixed header, so output stays deterministic) when path ends in ".gz".
func WriteFile(path string, cases []Case) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("dataset: closing %s: %w", path, cerr)
		}
	}()
	if !strings.HasSuffix(path, ".gz") {
		return Write(f, cases)
	}
	zw := gzip.NewWriter(f)
	if err := Write(zw, cases); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("dataset: compressing %s: %w", path, err)
	}
	return nil
}
