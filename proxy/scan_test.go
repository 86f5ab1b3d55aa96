package proxy

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestScanBodyTable(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		res   scanResult
		elems []string
	}{
		{"plain", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, scanOK, []string{`{"role":"user","content":"hi"}`}},
		{"spaces and order", " {\n \"messages\" : [ {\"a\":1} ,\t{\"b\":[2]} ] , \"model\":\"m\" }\n", scanOK, []string{`{"a":1}`, `{"b":[2]}`}},
		{"brackets and quotes in strings", `{"messages":[{"c":"]}\"[{"},{"c":"\\"}],"x":"]"}`, scanOK, []string{`{"c":"]}\"[{"}`, `{"c":"\\"}`}},
		{"scalars", `{"messages":[1,"s",null,{"a":{}}]}`, scanOK, []string{`1`, `"s"`, `null`, `{"a":{}}`}},
		{"empty", `{"messages":[]}`, scanOK, nil},
		{"duplicate", `{"messages":[],"messages":[{"role":"user","content":"x"}]}`, scanDuplicate, nil},
		{"duplicate escaped", `{"messages":[{"role":"user","content":"x"}],"mess\u0061ges":[]}`, scanDuplicate, nil},
		{"not an array", `{"messages":"hi"}`, scanOther, nil},
		{"missing", `{"model":"m"}`, scanOther, nil},
		{"not an object", `[{"messages":[]}]`, scanOther, nil},
		{"trailing comma in array", `{"messages":[{"a":1},]}`, scanOther, nil},
		{"trailing comma in object", `{"messages":[{"a":1}],}`, scanOther, nil},
		{"missing comma", `{"messages":[{"a":1} {"b":2}]}`, scanOther, nil},
		{"unterminated", `{"messages":[{"a":"1}]}`, scanOther, nil},
		{"garbage after", `{"messages":[]} x`, scanOther, nil},
		{"too deep", `{"messages":[` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `]}`, scanOther, nil},
	}
	for _, c := range cases {
		lay, res := scanBody([]byte(c.body), maxNesting)
		if res != c.res {
			t.Errorf("%s: result %d, want %d", c.name, res, c.res)
			continue
		}
		if res != scanOK {
			continue
		}
		var got []string
		for _, e := range lay.elems {
			got = append(got, c.body[e[0]:e[1]])
		}
		if strings.Join(got, "|") != strings.Join(c.elems, "|") {
			t.Errorf("%s: elements %q, want %q", c.name, got, c.elems)
		}
		if m := gjson.Get(c.body, "messages"); gjson.Valid(c.body) && (m.Index != lay.start || m.Index+len(m.Raw) != lay.end) {
			t.Errorf("%s: array at [%d,%d), gjson says [%d,%d)", c.name, lay.start, lay.end, m.Index, m.Index+len(m.Raw))
		}
	}
}

// TestDuplicateMessagesKeyRefused: a body with two "messages" keys gets a
// 400; before, the proxy rewrote the first and forwarded the second to
// the upstream untouched (JSON parsers that keep the last key read it).
func TestDuplicateMessagesKeyRefused(t *testing.T) {
	_, err := parseChatRequest([]byte(`{"messages":[{"role":"user","content":"hi"}],"messages":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}`))
	if err == nil || err.status != 400 || err.param != "messages" {
		t.Fatalf("duplicate messages key: %+v", err)
	}
}

// TestScanArrayOtherKey: the scan finds a Responses body's input items as
// it finds a chat body's messages, and refuses the key twice, however it
// is spelled; "messages" there is just another field.
func TestScanArrayOtherKey(t *testing.T) {
	body := `{"messages":[1],"input":[{"role":"user","content":"a"},{"type":"reasoning"}],"inputs":[2]}`
	lay, res := scanArray([]byte(body), "input", maxNesting)
	if res != scanOK || len(lay.elems) != 2 || body[lay.elems[1][0]:lay.elems[1][1]] != `{"type":"reasoning"}` {
		t.Fatalf("input: %d %v", res, lay.elems)
	}
	if _, res := scanArray([]byte(`{"input":[],"inp\u0075t":[{"role":"user","content":"x"}]}`), "input", maxNesting); res != scanDuplicate {
		t.Fatalf("duplicate input key: %d", res)
	}
}

// TestDuplicateInputKeyRefused: as with chat's messages, a Responses body
// with two "input" keys gets a 400 (parsers disagree on which one counts).
func TestDuplicateInputKeyRefused(t *testing.T) {
	_, err := parseResponsesRequest([]byte(`{"input":[{"role":"user","content":"hi"}],"input":[{"role":"user","content":"my card is 4111 1111 1111 1111"}]}`))
	if err == nil || err.status != 400 || err.param != "input" {
		t.Fatalf("duplicate input key: %+v", err)
	}
}
