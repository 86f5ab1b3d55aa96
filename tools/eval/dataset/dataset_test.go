package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validLine = `{"id":"c1","sessions":[{"id":"s1","time":"2025-01-06T09:00:00Z","messages":[{"role":"user","content":"My locker code is ZX-4471-QK. Thanks."},{"role":"assistant","content":"Noted <ok> & saved."}]},{"id":"s2","time":"2025-01-07T09:00:00Z","messages":[{"role":"user","content":"I moved to Lisbon."}]}],"questions":[{"id":"q1","type":"exact-quote","question":"What is my locker code?","answer":"ZX-4471-QK","evidence":["My locker code is ZX-4471-QK."]},{"id":"q2","type":"multi-evidence","question":"What do you know?","answer":"ZX-4471-QK; Lisbon","evidence":["ZX-4471-QK","moved to Lisbon"]}]}`

// withLine returns validLine with old replaced by new (once).
func withLine(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(validLine, old) {
		t.Fatalf("validLine lacks %q", old)
	}
	return strings.Replace(validLine, old, new, 1)
}

func gz(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestReadValid(t *testing.T) {
	c2 := strings.Replace(validLine, `"id":"c1"`, `"id":"c2"`, 1)
	tests := []struct {
		name  string
		in    string
		cases int
	}{
		{"empty", "", 0},
		{"one line no newline", validLine, 1},
		{"one line", validLine + "\n", 1},
		{"crlf and blank lines", "\r\n" + validLine + "\r\n\n  \n" + c2 + "\r\n", 2},
		{"gzip", gz(t, validLine+"\n"+c2+"\n"), 2},
		{"gzip empty", gz(t, ""), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cases, err := Read(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(cases) != tt.cases {
				t.Fatalf("got %d cases, want %d", len(cases), tt.cases)
			}
			if tt.cases > 0 {
				c := cases[0]
				if c.ID != "c1" || len(c.Sessions) != 2 || len(c.Questions) != 2 {
					t.Fatalf("decoded %+v", c)
				}
				want := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
				if !c.Sessions[0].Time.Equal(want) {
					t.Errorf("time %v, want %v", c.Sessions[0].Time, want)
				}
				if got := c.Questions[1].AnswerParts(); len(got) != 2 || got[1] != "Lisbon" {
					t.Errorf("AnswerParts = %q", got)
				}
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		want string
	}{
		{"not json", "{oops", 1, "decoding case"},
		{"trailing data", validLine + ` {}`, 1, "after the JSON object"},
		{"unknown field", withLine(t, `"id":"c1",`, `"id":"c1","extra":1,`), 1, `unknown field "extra"`},
		{"unknown role", withLine(t, `"role":"assistant"`, `"role":"robot"`), 1, `unknown role "robot"`},
		{"empty evidence list", withLine(t, `"evidence":["My locker code is ZX-4471-QK."]`, `"evidence":[]`), 1, "no evidence"},
		{"empty evidence string", withLine(t, `"evidence":["My locker code is ZX-4471-QK."]`, `"evidence":[""]`), 1, "evidence 1 is empty"},
		{"evidence not in history", withLine(t, `"moved to Lisbon"`, `"moved to Porto"`), 1, `evidence 2 "moved to Porto" does not occur`},
		{"evidence across messages", withLine(t, `"moved to Lisbon"`, `"Thanks. Noted"`), 1, "does not occur"},
		{"duplicate question id", withLine(t, `"id":"q2"`, `"id":"q1"`), 1, "duplicate question id"},
		{"duplicate session id", withLine(t, `"id":"s2"`, `"id":"s1"`), 1, "duplicate session id"},
		{"empty case id", withLine(t, `"id":"c1"`, `"id":""`), 1, "empty case id"},
		{"missing time", withLine(t, `"time":"2025-01-07T09:00:00Z",`, ``), 1, "missing time"},
		{"time order", withLine(t, `2025-01-07`, `2024-01-07`), 1, "before the previous session"},
		{"empty answer", withLine(t, `"answer":"ZX-4471-QK"`, `"answer":" "`), 1, "empty answer"},
		{"empty type", withLine(t, `"type":"exact-quote"`, `"type":""`), 1, "empty type"},
		{"no sessions", `{"id":"c9","sessions":[],"questions":[]}`, 1, "no sessions"},
		{"duplicate case id", validLine + "\n\n" + validLine + "\n", 3, `duplicate case id "c1" (first on line 1)`},
		{"error on later line", validLine + "\n" + "[1,2]\n", 2, "decoding case"},
		{"gzip line numbers", gz(t, "\n"+validLine+"\n{bad\n"), 3, "decoding case"},
		{"truncated gzip", gz(t, validLine+"\n")[:30], 1, "reading"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in))
			if err == nil {
				t.Fatal("Read succeeded, want error")
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %v is not a *LineError", err)
			}
			if le.Line != tt.line {
				t.Errorf("line %d, want %d (%v)", le.Line, tt.line, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestCasesStopsEarly(t *testing.T) {
	in := validLine + "\n" + strings.Replace(validLine, `"id":"c1"`, `"id":"c2"`, 1) + "\n{bad\n"
	n := 0
	for c, err := range Cases(strings.NewReader(in)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		if c.ID == "c1" {
			break
		}
	}
	if n != 1 {
		t.Fatalf("iterated %d cases after break, want 1", n)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	cases, err := Read(strings.NewReader(validLine + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Write(&b, cases); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != validLine+"\n" {
		t.Fatalf("Write output differs:\n got %s\nwant %s", got, validLine)
	}
	dir := t.TempDir()
	for _, name := range []string{"d.jsonl", "d.jsonl.gz"} {
		path := filepath.Join(dir, name)
		if err := WriteFile(path, cases); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if isGz := bytes.HasPrefix(raw, []byte(gzipMagic)); isGz != strings.HasSuffix(name, ".gz") {
			t.Errorf("%s: gzip = %v", name, isGz)
		}
		back, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var b2 bytes.Buffer
		if err := Write(&b2, back); err != nil {
			t.Fatal(err)
		}
		if b2.String() != b.String() {
			t.Errorf("%s: round trip differs", name)
		}
	}
	// Compressed output is deterministic too (no time or name in the header).
	first, _ := os.ReadFile(filepath.Join(dir, "d.jsonl.gz"))
	if err := WriteFile(filepath.Join(dir, "d.jsonl.gz"), cases); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(filepath.Join(dir, "d.jsonl.gz")); !bytes.Equal(first, second) {
		t.Error("gzip output differs between two writes")
	}
	if _, err := ReadFile(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("ReadFile of a missing file succeeded")
	}
}

func TestCaseHelpers(t *testing.T) {
	c := Case{Sessions: []Session{{Messages: []Message{
		{Role: RoleUser, Content: "abab ab"},
		{Role: RoleAssistant, Content: "ab"},
	}}}}
	if got := c.CountInHistory("ab"); got != 4 {
		t.Errorf("CountInHistory = %d, want 4", got)
	}
	if got := c.CountInHistory(""); got != 0 {
		t.Errorf("CountInHistory(\"\") = %d, want 0", got)
	}
	if got := c.HistoryBytes(); got != 9 {
		t.Errorf("HistoryBytes = %d, want 9", got)
	}
	if got := c.HistoryTokens(); got != 2 {
		t.Errorf("HistoryTokens = %d, want 2", got)
	}
	if got := len(Types()); got != 9 {
		t.Errorf("Types has %d entries, want 9", got)
	}
	for _, r := range []string{"user", "assistant", "system", "tool", "developer"} {
		if !ValidRole(r) {
			t.Errorf("ValidRole(%q) = false", r)
		}
	}
	if ValidRole("User") {
		t.Error(`ValidRole("User") = true`)
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(validLine + "\n"))
	f.Add([]byte(gz(f, validLine+"\n")))
	f.Add([]byte("\n\n{}\n"))
	f.Add([]byte(`{"id":"x","sessions":null}`))
	f.Add([]byte{0x1f, 0x8b, 0x08})
	f.Fuzz(func(t *testing.T, data []byte) {
		cases, err := Read(bytes.NewReader(data))
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		// Whatever reads back must write, read and write again identically.
		var b1, b2 bytes.Buffer
		if err := Write(&b1, cases); err != nil {
			t.Fatal(err)
		}
		again, err := Read(bytes.NewReader(b1.Bytes()))
		if err != nil {
			t.Fatalf("re-reading written cases: %v\n%s", err, b1.Bytes())
		}
		if len(again) != len(cases) {
			t.Fatalf("re-read %d cases, want %d", len(again), len(cases))
		}
		if err := Write(&b2, again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
			t.Fatalf("write is not stable:\n%s\n%s", b1.Bytes(), b2.Bytes())
		}
	})
}

func TestCheckPlanted(t *testing.T) {
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"valid", "", "", ""},
		{"evidence twice", `"content":"I moved to Lisbon."`, `"content":"I moved to Lisbon. ZX-4471-QK"`, "occurs 2 times"},
		{"answer absent", `"answer":"ZX-4471-QK; Lisbon"`, `"answer":"ZX-4471-QK; Porto"`, `answer "Porto" does not occur`},
		{"invalid", `"type":"exact-quote"`, `"type":""`, "empty type"},
	} {
		line := validLine
		if tc.old != "" {
			line = withLine(t, tc.old, tc.new)
		}
		var c Case
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		err := c.CheckPlanted()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
