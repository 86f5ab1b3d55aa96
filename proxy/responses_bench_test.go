package proxy

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/megacontext/megacontext/proxy/upstream"
)

// benchChatStream is a chat completion stream as llama.cpp (and the
// fakellama fixture) sends one: a role chunk, one chunk per word of an
// answer of n words, the finish chunk, a usage chunk and [DONE].
func benchChatStream(n int) string {
	var b strings.Builder
	env := `{"id":"chatcmpl-0123456789abcdefghijklmnopqrstuv","object":"chat.completion.chunk","created":1764633600,"model":"stories260K","system_fingerprint":"b7000-0123abcd","choices":[`
	chunk := func(choice string) {
		b.WriteString("data: " + env + choice + "]}\n\n")
	}
	chunk(`{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}`)
	words := strings.Fields("the garden river mountain story window paper music kitchen travel winter summer market bridge forest village")
	for i := range n {
		w := words[i%len(words)]
		if i > 0 {
			w = " " + w
		}
		chunk(`{"finish_reason":null,"index":0,"delta":{"content":"` + w + `"}}`)
	}
	chunk(`{"finish_reason":"stop","index":0,"delta":{}}`)
	b.WriteString("data: " + env[:len(env)-len(`"choices":[`)] + `"choices":[],"usage":{"completion_tokens":` + fmt.Sprint(n) + `,"prompt_tokens":900,"total_tokens":` + fmt.Sprint(900+n) + `}}` + "\n\n")
	b.WriteString("data: [DONE]\n\n")
	return b.String()
}

// countingWriter counts the bytes and the writes (flushes of the
// response's buffered writer) that reach the connection.
type countingWriter struct {
	bytes, writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.bytes += len(p)
	c.writes++
	return len(p), nil
}

// BenchmarkStreamedTurn measures the proxy's work on a streamed answer
// once the upstream answers, per turn and per event, for chat completions
// (relayed chunk by chunk) and for /v1/responses (translated into
// response.* events), interleaved in the same run so that their ratio holds
// on a noisy machine: responses-ns/turn over chat-ns/turn is the
// translation's cost. Storing is left out (both APIs store the reply the
// same way; /v1/responses also writes its record, see memory's
// benchmarks); the response object is built as storing it would.
func BenchmarkStreamedTurn(b *testing.B) {
	for _, words := range []int{16, 128} {
		b.Run(fmt.Sprintf("words=%d", words), func(b *testing.B) {
			sse := benchChatStream(words)
			s := &Server{log: slog.New(slog.DiscardHandler), m: newMetrics()}
			req, aerr := parseResponsesRequest([]byte(`{"model":"m","input":"hi","max_output_tokens":256,"stream":true}`))
			if aerr != nil {
				b.Fatal(aerr)
			}
			var cw countingWriter
			bw := bufio.NewWriterSize(&cw, 4096)
			chat := func() {
				resp := &upstream.Response{Body: io.NopCloser(strings.NewReader(sse))}
				s.relayStream(bw, resp, func(upstream.Message, bool) error { return nil })
			}
			created := time.Unix(1764633600, 0)
			save := func(a *answer, created time.Time, _ bool) ([]byte, error) {
				return req.object(a, created).appendJSON(nil), nil
			}
			responses := func() {
				s.translateStream(bw, io.NopCloser(strings.NewReader(sse)), req, "resp_0123456789abcdef0123456789abcdef", created, false, save)
			}
			cw = countingWriter{}
			responses()
			events := strings.Count(sse, "data: ")
			rBytes, rWrites := cw.bytes, cw.writes
			cw = countingWriter{}
			chat()
			cBytes, cWrites := cw.bytes, cw.writes
			respNs, respAllocs := interleave(b, "turn", chat, responses)
			b.ReportMetric(respNs/float64(events), "responses-ns/upstream-event")
			b.ReportMetric(respAllocs/float64(events), "responses-allocs/upstream-event")
			b.ReportMetric(float64(cBytes), "chat-bytes/turn")
			b.ReportMetric(float64(rBytes), "responses-bytes/turn")
			b.ReportMetric(float64(cWrites), "chat-writes/turn")
			b.ReportMetric(float64(rWrites), "responses-writes/turn")
		})
	}
}

// BenchmarkRequestTranslate measures what the proxy does with a request
// body before memory sees it, for the same 60-message conversation sent to
// chat completions (messages) and to /v1/responses (input items, turned
// into chat messages and a chat body), interleaved in the same run:
// responses/chat is the translation's cost.
func BenchmarkRequestTranslate(b *testing.B) {
	words := strings.Fields("the garden river mountain story window paper music kitchen travel winter summer market bridge forest village")
	var msgs []string
	for i := range 60 {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		var t []string
		for j := range 50 {
			t = append(t, words[(i*7+j)%len(words)])
		}
		msgs = append(msgs, `{"role":"`+role+`","content":"`+strings.Join(t, " ")+`."}`)
	}
	list := "[" + strings.Join(msgs, ",") + "]"
	chatBody := []byte(`{"model":"m","messages":` + list + `,"max_tokens":256,"stream":true}`)
	respBody := []byte(`{"model":"m","input":` + list + `,"max_output_tokens":256,"stream":true}`)
	chat := func() {
		if _, aerr := parseChatRequest(chatBody); aerr != nil {
			b.Fatal(aerr)
		}
	}
	responses := func() {
		req, aerr := parseResponsesRequest(respBody)
		if aerr == nil {
			_, aerr = req.messages(nil)
		}
		if aerr != nil {
			b.Fatal(aerr)
		}
		_ = req.chatBody()
	}
	interleave(b, "request", chat, responses)
}

// interleave runs chat and responses one after the other b.N times and
// reports the time and allocations of each per unit (a turn, a request)
// and their ratio; it returns the responses side's time and allocations
// per unit.
func interleave(b *testing.B, unit string, chat, responses func()) (respNs, respAllocs float64) {
	chatAllocs := testing.AllocsPerRun(50, chat)
	respAllocs = testing.AllocsPerRun(50, responses)
	b.ReportAllocs()
	b.ResetTimer()
	var tChat, tResp time.Duration
	for range b.N {
		t0 := time.Now()
		chat()
		t1 := time.Now()
		responses()
		tResp += time.Since(t1)
		tChat += t1.Sub(t0)
	}
	n := float64(b.N)
	respNs = float64(tResp.Nanoseconds()) / n
	b.ReportMetric(float64(tChat.Nanoseconds())/n, "chat-ns/"+unit)
	b.ReportMetric(respNs, "responses-ns/"+unit)
	b.ReportMetric(float64(tResp)/float64(tChat), "responses/chat")
	b.ReportMetric(chatAllocs, "chat-allocs/"+unit)
	b.ReportMetric(respAllocs, "responses-allocs/"+unit)
	return respNs, respAllocs
}
