package fakellama

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPiecesTable(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"hello", []string{"hell", "o"}},
		{"Hello world", []string{"Hell", "o", " worl", "d"}},
		{"12345", []string{"1", "2", "3", "4", "5"}},
		{" 42", []string{" 4", "2"}},
		{"a  b", []string{"a", "  ", "b"}},
		{"a\n\nb", []string{"a", "\n\n", "b"}},
		{"x\ny", []string{"x", "\ny"}},
		{"hi!", []string{"hi", "!"}},
		{"a !", []string{"a", " !"}},
		{"XK-42", []string{"XK", "-", "4", "2"}},
		{"日本", []string{"日", "本"}},
		{" 日", []string{" 日"}},
		{" ", []string{" "}},
		{"  ", []string{"  "}},
		{"a ", []string{"a", " "}},
		{"\v", []string{"\v"}},
		{"\u00a0x", []string{"\u00a0", "x"}},
		{"abc\xff", []string{"abc", "\xff"}},
		{"<|im_start|>user\nhi<|im_end|>\n", []string{ImStart, "user", "\nhi", ImEnd, "\n"}},
		{" <|im_end|>", []string{" ", ImEnd}},
	}
	for _, c := range cases {
		got := Pieces(c.in)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Pieces(%q) = %q, want %q", c.in, got, c.want)
		}
		if n := CountTokens(c.in); n != len(c.want) {
			t.Errorf("CountTokens(%q) = %d, want %d", c.in, n, len(c.want))
		}
	}
}

func TestTokenizeIDs(t *testing.T) {
	if got, want := Tokenize("hello"), []int{PieceID("hell"), PieceID("o")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Tokenize(hello) = %v, want %v", got, want)
	}
	if got, want := Tokenize(ImStart+ImEnd), []int{TokenImStart, TokenImEnd}; !reflect.DeepEqual(got, want) {
		t.Errorf("specials = %v, want %v", got, want)
	}
	for _, id := range Tokenize("The quick brown fox, 1984!") {
		if id < 0 || id >= VocabSize {
			t.Errorf("text id %d outside [0,%d)", id, VocabSize)
		}
	}
	// Specials are plain text without special parsing.
	if got := len(TokenizeText(ImEnd)); got != 7 {
		t.Errorf("TokenizeText(%q) has %d tokens, want 7", ImEnd, got)
	}
}

func TestMediaMarker(t *testing.T) {
	ids := Tokenize("see " + MediaMarker)
	if len(ids) != 2+ImageTokens {
		t.Fatalf("got %d tokens, want %d", len(ids), 2+ImageTokens)
	}
	if ids[2] != TokenMedia || ids[3] != TokenMediaPad || ids[len(ids)-1] != TokenMediaPad {
		t.Errorf("image ids = %v", ids[2:5])
	}
	if got := strings.Join(Pieces("see "+MediaMarker), ""); got != "see "+MediaMarker {
		t.Errorf("pieces join = %q", got)
	}
}

func TestScannerMatchesRegexp(t *testing.T) {
	re := regexp.MustCompile(pieceRegexp)
	for _, s := range []string{
		"Hello, world! It's 2025-01-06T09:00:00Z.\n\n  Indented\tcode();",
		"  leading and trailing  ", "a\r\nb\f c\vd", "émoji 😀 ok", "\xff\xfe bad", "x  1  !",
	} {
		var got []string
		scan(s, false, func(p string, _ int) { got = append(got, p) })
		if want := re.FindAllString(s, -1); !reflect.DeepEqual(got, want) {
			t.Errorf("scan(%q) = %q, regexp gives %q", s, got, want)
		}
	}
}

func TestApplyTemplate(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hi"}}
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
	if got := ApplyTemplate(msgs); got != want {
		t.Errorf("ApplyTemplate = %q, want %q", got, want)
	}
	// <|im_start|> user \nhi <|im_end|> \n <|im_start|> assi stan t \n
	if got := PromptTokens([]Message{{Role: "user", Content: "hi"}}); got != 10 {
		t.Errorf("PromptTokens = %d, want 10", got)
	}
	if got := ApplyTemplate(nil); got != "<|im_start|>assistant\n" {
		t.Errorf("ApplyTemplate(nil) = %q", got)
	}
}

func TestMessageJSON(t *testing.T) {
	var msgs []Message
	body := `[
		{"role":"user","content":"plain"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},
		{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:,"}},{"type":"text","text":"there"}]}
	]`
	if err := json.Unmarshal([]byte(body), &msgs); err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{Role: "user", Content: "plain"},
		{Role: "assistant"},
		{Role: "user", Content: "look\n" + MediaMarker + "\nthere", Images: 1},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Fatalf("got %+v, want %+v", msgs, want)
	}
	if got, without := PromptTokens(msgs[2:]), PromptTokens([]Message{{Role: "user", Content: "look\n\nthere"}}); got < without+ImageTokens-2 {
		t.Errorf("image not charged: %d vs %d", got, without)
	}
	for _, m := range want {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var back Message
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back != m {
			t.Errorf("round trip %s: got %+v, want %+v", b, back, m)
		}
	}
	var bad Message
	if err := json.Unmarshal([]byte(`{"role":"user","content":42}`), &bad); err == nil {
		t.Error("numeric content accepted")
	}
}

func TestDefaultReply(t *testing.T) {
	req := Request{Messages: []Message{
		{Role: "user", Content: "old question"},
		{Role: "assistant", Content: "old answer"},
		{Role: "user", Content: "one two three four five six seven eight nine ten"},
	}}
	if got, want := DefaultReply(req), "Noted: one two three four five six seven eight"; got != want {
		t.Errorf("DefaultReply = %q, want %q", got, want)
	}
	if got := DefaultReply(Request{Messages: []Message{{Role: "system", Content: "x"}}}); got != "Noted." {
		t.Errorf("DefaultReply without user = %q", got)
	}
	if got := DefaultReply(Request{Prompt: "complete  this"}); got != "Noted: complete this" {
		t.Errorf("DefaultReply for completions = %q", got)
	}
}

func FuzzTokenizer(f *testing.F) {
	for _, s := range []string{"", "hello world", " 42 ", ImStart + "user\n" + ImEnd, MediaMarker + "x", "\xff a  b\n\n", "日本語 text"} {
		f.Add(s, "user")
	}
	re := regexp.MustCompile(pieceRegexp)
	f.Fuzz(func(t *testing.T, s, role string) {
		ids := Tokenize(s)
		if n := CountTokens(s); n != len(ids) {
			t.Fatalf("CountTokens = %d, len(Tokenize) = %d", n, len(ids))
		}
		ps := Pieces(s)
		if len(ps) != len(ids) || strings.Join(ps, "") != s {
			t.Fatalf("pieces %q do not rebuild %q", ps, s)
		}
		var plain []string
		scan(s, false, func(p string, _ int) { plain = append(plain, p) })
		if want := re.FindAllString(s, -1); !reflect.DeepEqual(plain, want) {
			t.Fatalf("scan = %q, regexp = %q", plain, want)
		}
		if len(TokenizeText(s)) != len(plain) {
			t.Fatal("TokenizeText disagrees with scan")
		}
		msgs := []Message{{Role: role, Content: s}, {Role: "user", Content: s}}
		prompt := ApplyTemplate(msgs)
		if got := PromptTokens(msgs); got != CountTokens(prompt) || got < 5 {
			t.Fatalf("PromptTokens = %d, CountTokens(prompt) = %d", got, CountTokens(prompt))
		}
		if utf8.ValidString(s) && utf8.ValidString(role) {
			b, err := json.Marshal(msgs[0])
			if err != nil {
				t.Fatal(err)
			}
			var back Message
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if back.Role != role || back.Content != s {
				t.Fatalf("JSON round trip changed %+v to %+v", msgs[0], back)
			}
		}
	})
}

func BenchmarkPromptTokens(b *testing.B) {
	msgs := make([]Message, 2000)
	for i := range msgs {
		msgs[i] = Message{Role: "user", Content: "The quick brown fox jumps over the lazy dog, 42 times."}
	}
	b.ResetTimer()
	for range b.N {
		PromptTokens(msgs)
	}
}
