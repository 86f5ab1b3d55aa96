package integration

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Recall through the real binary in front of the real llama.cpp server
// (stories260K.gguf, whose small vocabulary makes text cost about three
// times the tokens of a Llama 3 vocabulary): the cases outsiders found
// the engine failing. A hop between the proxy and the server keeps every
// forwarded body, so the tests read the prompt the model actually got.

// lastPrompt returns the text of every message of the last chat
// completion the hop relayed: the prompt the model actually got.
func lastPrompt(t *testing.T, h *upstreamHop) string {
	t.Helper()
	chats := h.requests("/v1/chat/completions")
	if len(chats) == 0 {
		t.Fatal("no chat reached the server")
	}
	var sb strings.Builder
	for _, m := range gjson.GetBytes(chats[len(chats)-1].body, "messages").Array() {
		sb.WriteString(m.Get("content").Str)
		sb.WriteString("\n")
	}
	return sb.String()
}

const lockerCode = "ZX-4471-QK"

// chatter is a client that resends its whole history every turn.
type chatter struct {
	t       *testing.T
	p       *proxy
	user    string
	history []msg
	extra   map[string]any
}

// say sends text as the next user turn and keeps the reply in the history.
func (c *chatter) say(text string) *chatResult {
	c.t.Helper()
	c.history = append(c.history, msg{"user", text})
	extra := map[string]any{"user": c.user}
	for k, v := range c.extra {
		extra[k] = v
	}
	res := c.p.mustChat(c.t, chatBody(c.t, c.history, extra), nil)
	c.history = append(c.history, msg{"assistant", res.Content})
	return res
}

// plantAndTalk has turns turns of 40-80 words, the locker code told at
// turn 3, and returns the history's user messages.
func (c *chatter) plantAndTalk(k *talker, turns int) {
	for turn := 1; turn <= turns; turn++ {
		text := k.message()
		if turn == 3 {
			text = k.sentence() + " By the way, my locker code is " + lockerCode + ", please keep it in mind for later. " + k.sentence()
		}
		c.say(text)
	}
}

// lockerChat starts the real llama.cpp server at -c nctx (one slot), a hop
// that records what it is sent, the proxy in front of the hop, and a
// client of user that asks for maxTokens at temperature 0.
func lockerChat(t *testing.T, nctx int, user string, maxTokens int) (*upstreamHop, *proxy, *chatter) {
	t.Helper()
	ls := startLlamaServer(t, llamaServerOptions{NCtx: nctx, Parallel: 1})
	rl := startUpstreamHop(t, ls.URL())
	p := startProxy(t, proxyOptions{Upstream: rl.url})
	return rl, p, &chatter{t: t, p: p, user: user, extra: map[string]any{"max_tokens": maxTokens, "temperature": 0}}
}

// wantLockerCode fails the test when the last prompt the hop relayed (the
// answer to res) lacks the locker code.
func wantLockerCode(t *testing.T, h *upstreamHop, res *chatResult, what string) {
	t.Helper()
	exp, budget, window := windowHeaders(res.Header)
	if prompt := lastPrompt(t, h); !strings.Contains(prompt, lockerCode) {
		t.Errorf("%s: the prompt (budget %d, window %d tokens, %d expansions) lacks %s:\n%s", what, budget, window, exp, lockerCode, prompt)
	}
}

// windowHeaders returns the window's expansions, budget and tokens.
func windowHeaders(h http.Header) (expanded, budget, window int) {
	expanded, _ = strconv.Atoi(h.Get("X-MegaContext-Expanded"))
	budget, _ = strconv.Atoi(h.Get("X-MegaContext-Budget-Tokens"))
	window, _ = strconv.Atoi(h.Get("X-MegaContext-Window-Tokens"))
	return
}

// TestLlamaServerOldFactAt512: 150 turns of 40-80 words at -c 512 (about
// 100 blocks of history for every window's token), a locker code told at
// turn 3. At turn 150 the question recalls it, and so does a new chat after
// the proxy restarts.
func TestLlamaServerOldFactAt512(t *testing.T) {
	if testing.Short() {
		t.Skip("150 real turns")
	}
	rl, p, c := lockerChat(t, 512, "locker-512", 32)
	c.plantAndTalk(newTalker(3), 149)
	wantLockerCode(t, rl, c.say("What is my locker code?"), "turn 150")
	p.restartHard()
	res := p.mustChat(t, chatBody(t, []msg{{"user", "Remind me, what is my locker code?"}}, map[string]any{"user": c.user, "max_tokens": 32}), nil)
	wantLockerCode(t, rl, res, "new chat after a restart")
}

// TestLlamaServerFillerQuestionAt2048: the same chat at -c 2048, and a
// question padded with three sentences of the small talk that recurs all
// through the history: the rare words of the question must outweigh them.
func TestLlamaServerFillerQuestionAt2048(t *testing.T) {
	if testing.Short() {
		t.Skip("150 real turns")
	}
	rl, _, c := lockerChat(t, 2048, "locker-2048", 32)
	k := newTalker(4)
	c.plantAndTalk(k, 149)
	q := k.sentence() + " " + k.sentence() + " Quick question: what is my locker code again? " + k.sentence()
	wantLockerCode(t, rl, c.say(q), "turn 150")
}

// TestLlamaServerRepeatedQuestion: a budget of 604 tokens (at -c 700,
// which this llama.cpp pads to 768, max_tokens 132 leaves 604), 20 turns,
// then the same question in two new chats: asking again must never lose
// what the first answer recalled.
func TestLlamaServerRepeatedQuestion(t *testing.T) {
	const maxTokens, want = 132, 604
	rl, p, c := lockerChat(t, 700, "newcomer", maxTokens)
	c.plantAndTalk(newTalker(5), 20)
	for i := 1; i <= 2; i++ {
		res := p.mustChat(t, chatBody(t, []msg{{"user", "What is my locker code?"}}, map[string]any{"user": c.user, "max_tokens": maxTokens}), nil)
		exp, budget, window := windowHeaders(res.Header)
		t.Logf("new chat %d: budget %d, window %d tokens, %d expansions", i, budget, window, exp)
		if budget != want {
			t.Fatalf("new chat %d: budget %d, want the issue's %d (did the server's context padding or the template cost change?)", i, budget, want)
		}
		wantLockerCode(t, rl, res, fmt.Sprintf("new chat %d", i))
	}
}
