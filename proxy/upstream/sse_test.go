package upstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type sseWant struct {
	name       string
	data       string
	hasData    bool
	raw        string
	incomplete bool
}

// readAll drains an SSEReader, copying each event.
func readAll(t testing.TB, r *SSEReader) ([]sseWant, error) {
	var out []sseWant
	for {
		ev, err := r.Next()
		if err != nil {
			return out, err
		}
		out = append(out, sseWant{ev.Name, string(ev.Data), ev.Data != nil, string(ev.Raw), ev.Incomplete})
	}
}

func TestSSEReader(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []sseWant
	}{
		{"llama.cpp style", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []sseWant{
			{data: `{"a":1}`, hasData: true, raw: "data: {\"a\":1}\n\n"},
			{data: "[DONE]", hasData: true, raw: "data: [DONE]\n\n"},
		}},
		{"CRLF", "data: x\r\n\r\ndata: y\r\n\r\n", []sseWant{
			{data: "x", hasData: true, raw: "data: x\r\n\r\n"},
			{data: "y", hasData: true, raw: "data: y\r\n\r\n"},
		}},
		{"CR only", "data: x\r\rdata: y\r\r", []sseWant{
			{data: "x", hasData: true, raw: "data: x\r\r"},
			{data: "y", hasData: true, raw: "data: y\r\r"},
		}},
		{"multi-line data, event name, id, retry, comment", ": ping\nevent: delta\nid: 7\nretry: 10\ndata: a\ndata:b\ndata\n\n", []sseWant{
			{name: "delta", data: "a\nb\n", hasData: true, raw: ": ping\nevent: delta\nid: 7\nretry: 10\ndata: a\ndata:b\ndata\n\n"},
		}},
		{"comment-only keep-alive", ": OPENROUTER PROCESSING\n\ndata: z\n\n", []sseWant{
			{raw: ": OPENROUTER PROCESSING\n\n"},
			{data: "z", hasData: true, raw: "data: z\n\n"},
		}},
		{"only one space stripped", "data:  two\n\n", []sseWant{{data: " two", hasData: true, raw: "data:  two\n\n"}}},
		{"empty data", "data:\n\n", []sseWant{{data: "", hasData: true, raw: "data:\n\n"}}},
		{"BOM", "\xEF\xBB\xBFdata: x\n\n", []sseWant{{data: "x", hasData: true, raw: "\xEF\xBB\xBFdata: x\n\n"}}},
		{"llama.cpp error line", "error: {\"message\":\"boom\"}\n\n", []sseWant{
			{name: "error", data: `{"message":"boom"}`, hasData: true, raw: "error: {\"message\":\"boom\"}\n\n"},
		}},
		{"extra blank lines", "data: x\n\n\n", []sseWant{
			{data: "x", hasData: true, raw: "data: x\n\n"},
			{raw: "\n"},
		}},
		{"partial at EOF", "data: x\n\ndata: y", []sseWant{
			{data: "x", hasData: true, raw: "data: x\n\n"},
			{data: "y", hasData: true, raw: "data: y", incomplete: true},
		}},
		{"partial line end at EOF", "data: y\n", []sseWant{
			{data: "y", hasData: true, raw: "data: y\n", incomplete: true},
		}},
		{"trailing CR at EOF", "data: y\r", []sseWant{
			{data: "y", hasData: true, raw: "data: y\r", incomplete: true},
		}},
		{"empty stream", "", nil},
		{"unknown field", "foo: bar\ndata: q\n\n", []sseWant{{data: "q", hasData: true, raw: "foo: bar\ndata: q\n\n"}}},
	}
	readers := map[string]func(string) io.Reader{
		"whole":   func(s string) io.Reader { return strings.NewReader(s) },
		"onebyte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":    func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
	}
	for _, tc := range cases {
		for rn, mk := range readers {
			t.Run(tc.name+"/"+rn, func(t *testing.T) {
				got, err := readAll(t, NewSSEReader(mk(tc.in)))
				if err != io.EOF {
					t.Fatalf("err = %v, want io.EOF", err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("got %d events %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("event %d = %+v, want %+v", i, got[i], tc.want[i])
					}
				}
			})
		}
	}
}

func TestSSEReaderLargeEvent(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	in := "data: " + big + "\n\ndata: tail\n\n"
	got, err := readAll(t, NewSSEReader(strings.NewReader(in)))
	if err != io.EOF || len(got) != 2 || got[0].data != big || got[1].data != "tail" {
		t.Fatalf("large event mis-read: %d events, err %v", len(got), err)
	}

	r := NewSSEReader(strings.NewReader(in))
	r.MaxEventBytes = 64 << 10
	_, err = r.Next()
	if !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("err = %v, want ErrEventTooLarge", err)
	}
	if _, err2 := r.Next(); !errors.Is(err2, ErrEventTooLarge) {
		t.Fatalf("second err = %v, want sticky ErrEventTooLarge", err2)
	}
}

func TestSSEReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewSSEReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom)))
	got, err := readAll(t, r)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if len(got) != 2 || got[0].data != "a" || !got[1].incomplete || got[1].raw != "data: b" {
		t.Fatalf("events = %+v", got)
	}
}

func TestSSEReaderNoProgress(t *testing.T) {
	_, err := NewSSEReader(zeroReader{}).Next()
	if !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// FuzzSSEReader checks that the raw bytes of the events always reassemble
// the input exactly, whatever the read sizes, and that parsing does not
// depend on how the input was split.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{"data: x\n\n", "data: a\r\ndata: b\r\n\r\n", "\xEF\xBB\xBFdata:x\r\r",
		": c\nevent: e\ndata\n\n\n", "error: {}\n\n", "data: y", "\r", "\xEF\xBB", "data:\n\ndata:\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole, err := readAll(t, NewSSEReader(bytes.NewReader(in)))
		if err != io.EOF {
			t.Fatalf("err = %v", err)
		}
		one, err := readAll(t, NewSSEReader(iotest.OneByteReader(bytes.NewReader(in))))
		if err != io.EOF {
			t.Fatalf("one-byte err = %v", err)
		}
		var raw strings.Builder
		for i, ev := range whole {
			raw.WriteString(ev.raw)
			if ev.raw == "" {
				t.Fatalf("event %d has empty Raw", i)
			}
			if ev.incomplete && i != len(whole)-1 {
				t.Fatalf("incomplete event %d is not last", i)
			}
			if len(ev.data) > len(ev.raw) {
				t.Fatalf("data longer than raw in %+v", ev)
			}
		}
		if raw.String() != string(in) {
			t.Fatalf("raw reassembly %q != input %q", raw.String(), in)
		}
		if len(one) != len(whole) {
			t.Fatalf("one-byte reads gave %d events, whole reads %d", len(one), len(whole))
		}
		for i := range one {
			if one[i] != whole[i] {
				t.Fatalf("event %d differs: %+v vs %+v", i, one[i], whole[i])
			}
		}
	})
}
