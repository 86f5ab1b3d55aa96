package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// The chaos suite: the real binary under kill -9, hostile bodies, a full
// disk, a racing second instance and every upstream fault. Loops are bounded
// in count; nothing waits on a clock for synchronization.

// missing returns the messages of history that the context does not hold.
func (p *proxy) missing(t *testing.T, id string, history []msg) []msg {
	t.Helper()
	have := map[string]bool{}
	for _, m := range p.messages(t, id) {
		have[m.Role+"\x00"+m.Text] = true
	}
	var out []msg
	for _, m := range history {
		if !have[m.Role+"\x00"+m.Content] {
			out = append(out, m)
		}
	}
	return out
}

// TestChaosKillAfterAck: kill -9 right after the client has the whole
// answer (the body, or [DONE]), 50 times, plain and streamed in turn. Every
// acknowledged message, user or reply, must be there after the restart.
// The reply used to be stored in the background after it was sent: 21 of
// 25 plain and 24 of 25 streamed replies were lost.
func TestChaosKillAfterAck(t *testing.T) {
	const kills = 50
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	talk := newTalker(10)
	var history []msg
	lost := 0
	for i := 0; i < kills; i++ {
		history = append(history, msg{"user", fmt.Sprintf("Turn %d. %s", i, talk.message())})
		res := p.mustChat(t, chatBody(t, history, map[string]any{"user": "acked", "stream": i%2 == 1}), nil)
		p.kill(syscall.SIGKILL) // right after the acknowledgement
		history = append(history, msg{"assistant", res.Content})
		p.start()
		// Checked before the next turn, which resends (and so would store)
		// the whole history.
		if m := p.missing(t, "acked", history); len(m) > 0 {
			lost += len(m)
			t.Errorf("kill %d (stream %v): lost %d acknowledged messages: %q", i, i%2 == 1, len(m), m)
		}
	}
	t.Logf("%d kills right after the acknowledgement: %d of %d acknowledged messages lost", kills, lost, len(history))
}

// TestChaosKillRandom: kill -9 at random points while four clients chat
// at once (requests in flight, replies being stored), ten times. Nothing a
// client saw acknowledged is lost, and every context stays readable.
func TestChaosKillRandom(t *testing.T) {
	const rounds, clients = 10, 4
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	r := rand.New(rand.NewPCG(10, 2))
	histories := make([][]msg, clients)
	talkers := make([]*talker, clients)
	for c := range talkers {
		talkers[c] = newTalker(uint64(100 + c))
	}
	acked, lost := 0, 0
	for round := 0; round < rounds; round++ {
		// The kill comes once this many turns were acknowledged in the
		// round, with the other clients' requests in flight.
		killAt := int64(1 + r.IntN(12))
		var done atomic.Int64
		var wg sync.WaitGroup
		killed := make(chan struct{})
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for turn := 0; ; turn++ {
					select {
					case <-killed:
						return
					default:
					}
					text := talkers[c].message()
					if turn%4 == 3 {
						// A long paste: a write of hundreds of records that a
						// kill can cut in the middle (store.TearWrites says how).
						text = talkers[c].paste(48 << 10)
					}
					user := msg{"user", fmt.Sprintf("Client %d, round %d, turn %d. %s", c, round, turn, text)}
					body := chatBody(t, append(append([]msg(nil), histories[c]...), user), map[string]any{"user": fmt.Sprintf("chaos-%d", c), "stream": turn%2 == 0})
					res, err := p.chat(body, nil)
					if err != nil || res.Status != http.StatusOK {
						return // the proxy died under this request: not acknowledged
					}
					histories[c] = append(histories[c], user, msg{"assistant", res.Content})
					if done.Add(1) == killAt {
						p.kill(syscall.SIGKILL)
						close(killed)
					}
				}
			}()
		}
		wg.Wait()
		p.start()
		for c := 0; c < clients; c++ {
			acked += len(histories[c])
			if m := p.missing(t, fmt.Sprintf("chaos-%d", c), histories[c]); len(m) > 0 {
				lost += len(m)
				t.Errorf("round %d, client %d: lost %d acknowledged messages: %q", round, c, len(m), m)
			}
		}
	}
	for c := 0; c < clients; c++ {
		if st, ok := p.stats(t, fmt.Sprintf("chaos-%d", c)); !ok {
			t.Errorf("context chaos-%d unreadable: %+v", c, st)
		}
	}
	t.Logf("%d random kills under %d clients: %d of %d acknowledged messages lost", rounds, clients, lost, acked)
}

// fuzzSeeds are valid chat bodies that mutations start from.
var fuzzSeeds = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"My locker code is ZX-4471-QK."},{"role":"assistant","content":"Noted."},{"role":"user","content":"What was it?"}],"max_tokens":50}`,
	`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream this"}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get","arguments":"{\"city\":\"Oslo\"}"}}]},{"role":"tool","tool_call_id":"c1","content":"12C"},{"role":"user","content":"thanks"}],"tools":[{"type":"function","function":{"name":"get","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`,
	`{"model":"m","messages":[{"role":"developer","content":"x"},{"role":"user","name":"ann","content":"hello"}],"max_completion_tokens":20,"temperature":0,"top_k":3,"cache_prompt":true}`,
}

// fuzzPaths are where set mutations put values.
var fuzzPaths = []string{"messages", "messages.0", "messages.0.content", "messages.0.role", "messages.0.name", "messages.-1",
	"messages.0.content.0", "messages.0.tool_calls", "messages.0.tool_calls.0.function.arguments", "messages.0.tool_call_id",
	"max_tokens", "max_completion_tokens", "stream", "stream_options", "user", "model", "tools", "tools.0.function.parameters", "n", "x"}

// deep returns a value nested n levels deep.
func deep(r *rand.Rand, n int) string {
	open, close := "[", "]"
	if r.IntN(2) == 0 {
		open, close = `{"a":`, "}"
		return strings.Repeat(open, n) + "1" + strings.Repeat(close, n)
	}
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// fuzzValue is a random JSON value, hostile more often than not.
func fuzzValue(r *rand.Rand) string {
	switch r.IntN(16) {
	case 0:
		return deep(r, []int{2, 64, 127, 128, 129, 1000, 9999, 10000, 10001, 30000}[r.IntN(10)])
	case 1:
		return []string{"-1", "0", "1.5", "1e309", "99999999999999999999", "-0", "1e-400"}[r.IntN(7)]
	case 2:
		return []string{`""`, `" "`, `"\u0000"`, `"\ud800"`, `"é😀\n\t\\"`, `"../../etc"`, `"a\u202eb"`}[r.IntN(7)]
	case 3:
		return strconv.Quote(strings.Repeat("lorem ipsum ", 1+r.IntN(20000)))
	case 4:
		return []string{"true", "false", "null", "{}", "[]"}[r.IntN(5)]
	case 5:
		n := 1 + r.IntN(300)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"role":"%s","content":"m%d"}`, []string{"user", "assistant"}[i%2], i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case 6:
		return `[{"type":"text","text":"x"},{"type":"image_url"},{"type":7},{}]`
	case 7:
		return `[{"id":null,"function":{"name":5,"arguments":{"a":[1,2]}}}]`
	case 8:
		return `{"role":"user","content":"` + strings.Repeat("x", r.IntN(100)) + `","extra":` + deep(r, 1+r.IntN(200)) + `}`
	default:
		return []string{`"user"`, `"assistant"`, `"system"`, `"tool"`, `"robot"`, `42`, `{"role":"user"}`}[r.IntN(7)]
	}
}

// mutate returns a hostile variant of one seed body.
func mutate(r *rand.Rand) []byte {
	b := []byte(fuzzSeeds[r.IntN(len(fuzzSeeds))])
	for n := 1 + r.IntN(3); n > 0; n-- {
		switch r.IntN(10) {
		case 0: // flip bytes
			for i := 1 + r.IntN(4); i > 0 && len(b) > 0; i-- {
				b[r.IntN(len(b))] = byte(r.IntN(256))
			}
		case 1: // insert JSON punctuation
			pos := r.IntN(len(b) + 1)
			ins := []string{"{", "}", "[", "]", ",", ":", `"`, `\`, "null", "\x00", "\xff"}[r.IntN(11)]
			b = append(b[:pos:pos], append([]byte(ins), b[pos:]...)...)
		case 2: // truncate
			b = b[:r.IntN(len(b)+1)]
		case 3: // wrap the whole body
			d := []int{1, 200, 10000, 100000}[r.IntN(4)]
			b = []byte(strings.Repeat("[", d) + string(b) + strings.Repeat("]", d))
		default: // set a field to a hostile value
			if out, err := sjson.SetRawBytes(b, fuzzPaths[r.IntN(len(fuzzPaths))], []byte(fuzzValue(r))); err == nil {
				b = out
			}
		}
	}
	// Spread the bodies over a few contexts.
	if gjson.ValidBytes(b) && r.IntN(4) > 0 {
		if out, err := sjson.SetBytes(b, "user", fmt.Sprintf("fuzz-%d", r.IntN(8))); err == nil {
			b = out
		}
	}
	return b
}

// TestChaosFuzzBodies sends 10,000 mutated chat bodies (deep nesting,
// broken JSON, wrong types, hostile strings, thousands of messages) to the
// real binary: none may crash it or get a 5xx, and every context stays
// readable after a kill -9 and restart.
func TestChaosFuzzBodies(t *testing.T) {
	bodies := 10000
	if testing.Short() {
		bodies = 1000
	}
	const workers = 4
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	r := rand.New(rand.NewPCG(2026, 10))
	work := make(chan []byte)
	go func() {
		defer close(work)
		for i := 0; i < bodies; i++ {
			work <- mutate(r)
		}
	}()
	var mu sync.Mutex
	statuses := map[int]int{}
	var failures []string
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range work {
				res, err := p.do("POST", "/v1/chat/completions", body, map[string]string{"Accept": "*/*"})
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("transport error %v on %.200q", err, body))
				case res.Status >= 500:
					failures = append(failures, fmt.Sprintf("status %d (%.300s) on %.200q", res.Status, res.Body, body))
				default:
					statuses[res.Status]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d mutated bodies: statuses %v, %d failures", bodies, statuses, len(failures))
	for i, f := range failures {
		if i == 10 {
			t.Errorf("... and %d more", len(failures)-10)
			break
		}
		t.Error(f)
	}
	p.alive(t, "after the fuzzed bodies")
	p.restartHard()
	ids := p.listIDs(t)
	for _, id := range ids {
		r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+strings.ReplaceAll(pathEscape(id), ".", "%2E"), nil, nil)
		if r.Status != http.StatusOK || gjson.GetBytes(r.Body, "damaged_messages").Int() != 0 {
			t.Errorf("context %q after restart: status %d: %s", id, r.Status, r.Body)
		}
	}
	if statuses[http.StatusOK] == 0 || len(ids) == 0 {
		t.Errorf("no body was accepted (%d contexts): the mutations are too destructive to test the happy path", len(ids))
	}
}

// TestChaosUpstreamFaults: every way an upstream fails reaches the client
// as a clean error (OpenAI error JSON, or an error event once a stream has
// started), the user's message is kept, a cut stream's text is kept as
// partial, and the proxy goes on serving.
func TestChaosUpstreamFaults(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: "upstream:\n  timeout: 1s\n"})
	cases := []struct {
		fault  fakellama.Fault
		stream bool
		status int
		code   string // error code, in the body or the stream's error event
		event  bool   // the error comes as an event after a 200
	}{
		{fakellama.FaultHang, false, 504, "upstream_timeout", false},
		{fakellama.FaultHang, true, 504, "upstream_timeout", false},
		{fakellama.FaultSilence, false, 504, "upstream_timeout", false},
		{fakellama.FaultSilence, true, 200, "upstream_timeout", true},
		{fakellama.FaultCut, false, 502, "upstream_error", false},
		{fakellama.FaultCut, true, 200, "upstream_error", true},
		{fakellama.FaultHuge, false, 502, "upstream_error", false},
		{fakellama.FaultHuge, true, 502, "upstream_error", false},
		{fakellama.FaultInvalidJSON, false, 502, "upstream_error", false},
		// A stream chunk that is not JSON is relayed as it came: the
		// client's SDK judges it; the stream still ends with [DONE].
		{fakellama.FaultInvalidJSON, true, 200, "", false},
		{"500", false, 500, "", false},
		{"500", true, 500, "", false},
	}
	for i, c := range cases {
		name := fmt.Sprintf("%s stream=%v", c.fault, c.stream)
		id := fmt.Sprintf("fault-%d", i)
		if c.fault == "500" {
			fake.FailNext(500, `{"error":{"code":500,"message":"slot crashed","type":"server_error"}}`)
		} else {
			fake.FaultNext(c.fault)
		}
		r, err := p.do("POST", "/v1/chat/completions", chatBody(t, []msg{{"user", "Tell me a long story about " + id}}, map[string]any{"user": id, "stream": c.stream}), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Status != c.status {
			t.Errorf("%s: status %d, want %d: %.300s", name, r.Status, c.status, r.Body)
		}
		switch {
		case c.event:
			ev := lastEvent(r.Body)
			if !strings.HasPrefix(ev, `{"error":`) || gjson.Get(ev, "error.code").Str != c.code || strings.Contains(string(r.Body), "[DONE]") {
				t.Errorf("%s: the stream does not end with an error event %s: %.500s", name, c.code, r.Body)
			}
		case c.status >= 400:
			if e := checkOpenAIError(t, name, r.Body); c.code != "" && e.Get("code").Str != c.code {
				t.Errorf("%s: code %s, want %s", name, e.Get("code").Raw, c.code)
			}
		default:
			if !strings.Contains(string(r.Body), "[DONE]") {
				t.Errorf("%s: the stream did not end: %.300s", name, r.Body)
			}
		}
		st, ok := p.stats(t, id)
		if !ok || st.Messages < 1 {
			t.Errorf("%s: the user's message was not kept: %+v", name, st)
		}
		if c.fault == fakellama.FaultCut && c.stream && (st.Messages != 2 || st.Partial != 1) {
			t.Errorf("%s: the cut reply was not kept as partial: %+v", name, st)
		}
		p.alive(t, name)
	}
	// Refused: nobody listens upstream.
	down := startProxy(t, proxyOptions{Upstream: closedPortURL(t)})
	for _, stream := range []bool{false, true} {
		r := down.mustDo(t, "POST", "/v1/chat/completions", chatBody(t, []msg{{"user", "anyone?"}}, map[string]any{"stream": stream}), nil)
		if r.Status != http.StatusBadGateway || checkOpenAIError(t, "refused", r.Body).Get("code").Str != "upstream_unavailable" {
			t.Errorf("refused (stream %v): status %d: %s", stream, r.Status, r.Body)
		}
	}

	// An official SDK raises the mid-stream error instead of returning the
	// truncated text as a finished reply.
	cfg := openai.DefaultConfig("unused")
	cfg.BaseURL = p.URL() + "/v1"
	client := openai.NewClientWithConfig(cfg)
	for _, fault := range []fakellama.Fault{fakellama.FaultCut, fakellama.FaultSilence} {
		fake.FaultNext(fault)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		stream, err := client.CreateChatCompletionStream(ctx, openai.ChatCompletionRequest{
			Model: "m", User: "sdk-" + string(fault), Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "Tell me a long story."}},
		})
		if err != nil {
			cancel()
			t.Fatalf("go-openai %s: %v", fault, err)
		}
		var text strings.Builder
		for {
			chunk, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					t.Errorf("go-openai %s: the stream ended as a success with %q", fault, text.String())
				} else if !strings.Contains(err.Error(), "stream ended before the reply was complete") {
					t.Errorf("go-openai %s: unexpected error %v", fault, err)
				}
				break
			}
			if len(chunk.Choices) > 0 {
				text.WriteString(chunk.Choices[0].Delta.Content)
			}
		}
		stream.Close()
		cancel()
	}
}

// lastEvent returns the data of the last SSE event of a body.
func lastEvent(body []byte) string {
	last := ""
	for _, line := range strings.Split(string(body), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			last = d
		}
	}
	return last
}

// pathEscape escapes a context id as one URL path segment.
func pathEscape(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestChaosFullDisk: on a full disk (a tmpfs), a turn that cannot be
// stored is refused with 507 before anything reaches the upstream; a reply
// that cannot be stored is not acknowledged (507, or an error event instead
// of [DONE]); error bodies name neither the data path nor storage keys;
// once space is back the same turn goes through, and after kill -9 every
// acknowledged message is there. On a full disk 3 of 4 acknowledged replies
// used to be dropped with only a log line.
func TestChaosFullDisk(t *testing.T) {
	if uid := os.Geteuid(); uid != 0 {
		t.Skipf("making a full disk needs a tmpfs mount, which needs root (running as uid %d)", uid)
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s): no full disk to test", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	data := filepath.Join(dir, "data")
	filler := filepath.Join(dir, "filler")
	fill := func() {
		f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for {
			if _, err := f.Write(chunk); err != nil {
				break // ENOSPC: full
			}
		}
		for size := 4096; size > 0; size /= 2 { // the last partial page
			for {
				if _, err := f.Write(chunk[:size]); err != nil {
					break
				}
			}
		}
	}
	free := func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	// Records larger than a page: a full tmpfs still takes small writes
	// into the free end of a file's last page.
	long := " " + strings.TrimSpace(strings.Repeat("and then some more words ", 400))
	var fillNext atomic.Bool // the next reply fills the disk first
	reply := func(req fakellama.Request) string {
		if fillNext.CompareAndSwap(true, false) {
			fill()
		}
		return fakellama.DefaultReply(req) + long
	}
	fake := newFake(t, fakellama.Options{NCtx: 16384, Reply: reply})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: data})
	var history []msg
	turn := func(user string, stream bool) (*chatResult, error) {
		body := chatBody(t, append(append([]msg(nil), history...), msg{"user", user}), map[string]any{"user": "disk", "stream": stream, "max_tokens": 4000})
		return p.chat(body, nil)
	}
	for i := 0; i < 3; i++ {
		u := fmt.Sprintf("Before the disk fills, turn %d.", i) + long
		res, err := turn(u, i%2 == 1)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("turn %d: %v %+v", i, err, res)
		}
		history = append(history, msg{"user", u}, msg{"assistant", res.Content})
	}
	noLeak := func(what string, body []byte) {
		t.Helper()
		if s := string(body); strings.Contains(s, dir) || strings.Contains(s, "megacontext.db") || strings.Contains(s, "m:default") {
			t.Errorf("%s: the error names the data path or a storage key: %s", what, s)
		}
	}

	// Full before the turn: refused, nothing forwarded.
	fill()
	n := len(fake.Requests())
	for _, stream := range []bool{false, true} {
		res, err := turn("Written while the disk is full."+long, stream)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != http.StatusInsufficientStorage || checkOpenAIError(t, "full disk", res.Body).Get("code").Str != "insufficient_storage" {
			t.Errorf("full disk (stream %v): status %d: %s", stream, res.Status, res.Body)
		}
		noLeak("full disk", res.Body)
	}
	if got := len(fake.Requests()); got != n {
		t.Errorf("a turn that could not be stored was forwarded (%d requests)", got-n)
	}
	free()

	// The disk fills while the upstream answers: the reply cannot be stored,
	// and the client is not told it was.
	for _, stream := range []bool{false, true} {
		fillNext.Store(true)
		u := fmt.Sprintf("The disk fills during this answer (stream %v).", stream) + long
		res, err := turn(u, stream)
		switch {
		case stream && (res == nil || res.Status != http.StatusOK || res.Done || !strings.Contains(lastEvent(res.Body), "insufficient_storage")):
			t.Errorf("reply not stored, streamed: want an error event instead of [DONE]: %v %+v", err, res)
		case !stream && (err != nil || res.Status != http.StatusInsufficientStorage):
			t.Errorf("reply not stored, plain: want 507: %v %+v", err, res)
		}
		if res != nil {
			noLeak("reply not stored", res.Body)
		}
		free()
		// Space is back: the client retries the same turn.
		res, err = turn(u, stream)
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("retry with space back (stream %v): %v %+v", stream, err, res)
		}
		history = append(history, msg{"user", u}, msg{"assistant", res.Content})
	}
	p.restartHard()
	if m := p.missing(t, "disk", history); len(m) > 0 {
		t.Errorf("after a full disk and kill -9: lost %d acknowledged messages: %q", len(m), m)
	}
	for _, m := range p.messages(t, "disk") {
		if strings.Contains(m.Text, "while the disk is full") {
			t.Errorf("a refused turn was stored: %q", m.Text)
		}
	}
}

// TestChaosTwoInstancesRace: two processes started at the same moment on
// one data folder: exactly one serves, the other exits non-zero naming the
// folder.
func TestChaosTwoInstancesRace(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	data := filepath.Join(t.TempDir(), "data")
	type inst struct {
		url  string
		cmd  *exec.Cmd
		out  *bytes.Buffer
		done chan struct{}
	}
	var insts []*inst
	for i := 0; i < 2; i++ {
		port := freePort(t)
		in := &inst{url: fmt.Sprintf("http://127.0.0.1:%d", port), out: &bytes.Buffer{}, done: make(chan struct{})}
		in.cmd = exec.Command(binPath, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--upstream", fake.URL(), "--data", data)
		in.cmd.Dir, in.cmd.Env = t.TempDir(), cleanEnv()
		in.cmd.Stdout, in.cmd.Stderr = in.out, in.out
		insts = append(insts, in)
	}
	for _, in := range insts {
		if err := in.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = in.cmd.Wait(); close(in.done) }()
		t.Cleanup(func() {
			_ = in.cmd.Process.Kill()
			<-in.done
		})
	}
	// Wait until one serves and the other has exited.
	healthy := func(in *inst) bool {
		resp, err := (&http.Client{Timeout: time.Second}).Get(in.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	exited := func(in *inst) bool {
		select {
		case <-in.done:
			return true
		default:
			return false
		}
	}
	waitFor(t, "one instance serving and the other gone", func() bool {
		return (healthy(insts[0]) && exited(insts[1])) || (healthy(insts[1]) && exited(insts[0]))
	})
	for _, in := range insts {
		if exited(in) {
			abs, _ := filepath.Abs(data)
			if in.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(in.out.String(), abs) {
				t.Errorf("the refused instance: exit %d, output %q", in.cmd.ProcessState.ExitCode(), in.out.String())
			}
		}
	}
}
