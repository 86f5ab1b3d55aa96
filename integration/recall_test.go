package integration

import (
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
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 512, Parallel: 1})
	rl := startUpstreamHop(t, ls.URL())
	p := startProxy(t, proxyOptions{Upstream: rl.url})
	c := &chatter{t: t, p: p, user: "locker-512", extra: map[string]any{"max_tokens": 32, "temperature": 0}}
	c.plantAndTalk(newTalker(3), 149)
	res := c.say("What is my locker code?")
	exp, budget, window := windowHeaders(res.Header)
	if prompt := lastPrompt(t, rl); !strings.Contains(prompt, lockerCode) {
		t.Errorf("turn 150: the prompt (budget %d, window %d tokens, %d expansions) lacks %s:\n%s", budget, window, exp, lockerCode, prompt)
	}
	p.restartHard()
	res = p.mustChat(t, chatBody(t, []msg{{"user", "Remind me, what is my locker code?"}}, map[string]any{"user": c.user, "max_tokens": 32}), nil)
	exp, budget, window = windowHeaders(res.Header)
	if prompt := lastPrompt(t, rl); !strings.Contains(prompt, lockerCode) {
		t.Errorf("new chat after a restart: the prompt (budget %d, window %d tokens, %d expansions) lacks %s:\n%s", budget, window, exp, lockerCode, prompt)
	}
}

// TestLlamaServerFillerQuestionAt2048: the same chat at -c 2048, and a
// question padded with three sentences of the small talk that recurs all
// through the history: the rare words of the question must outweigh them.
func TestLlamaServerFillerQuestionAt2048(t *testing.T) {
	if testing.Short() {
		t.Skip("150 real turns")
	}
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 2048, Parallel: 1})
	rl := startUpstreamHop(t, ls.URL())
	p := startProxy(t, proxyOptions{Upstream: rl.url})
	c := &chatter{t: t, p: p, user: "locker-2048", extra: map[string]any{"max_tokens": 32, "temperature": 0}}
	k := newTalker(4)
	c.plantAndTalk(k, 149)
	q := k.sentence() + " " + k.sentence() + " Quick question: what is my locker code again? " + k.sentence()
	res := c.say(q)
	exp, budget, window := windowHeaders(res.Header)
	if prompt := lastPrompt(t, rl); !strings.Contains(prompt, lockerCode) {
		t.Errorf("turn 150: the prompt (budget %d, window %d tokens, %d expansions) lacks %s:\n%s", budget, window, exp, lockerCode, prompt)
	}
}

// TestLlamaServerRepeatedQuestion: a budget of 604 tokens (at -c 700,
// which this llama.cpp pads to 768, max_tokens 132 leaves 604), 20 turns,
// then the same question in two new chats: asking again must never lose
// what the first answer recalled.
func TestLlamaServerRepeatedQuestion(t *testing.T) {
	const maxTokens, want = 132, 604
	ls := startLlamaServer(t, llamaServerOptions{NCtx: 700, Parallel: 1})
	rl := startUpstreamHop(t, ls.URL())
	p := startProxy(t, proxyOptions{Upstream: rl.url})
	c := &chatter{t: t, p: p, user: "newcomer", extra: map[string]any{"max_tokens": maxTokens, "temperature": 0}}
	c.plantAndTalk(newTalker(5), 20)
	for i := 1; i <= 2; i++ {
		res := p.mustChat(t, chatBody(t, []msg{{"user", "What is my locker code?"}}, map[string]any{"user": c.user, "max_tokens": maxTokens}), nil)
		exp, budget, window := windowHeaders(res.Header)
		t.Logf("new chat %d: budget %d, window %d tokens, %d expansions", i, budget, window, exp)
		if budget != want {
			t.Fatalf("new chat %d: budget %d, want the issue's %d (did the server's context padding or the template cost change?)", i, budget, want)
		}
		if prompt := lastPrompt(t, rl); !strings.Contains(prompt, lockerCode) {
			t.Errorf("new chat %d: the prompt (budget %d, window %d tokens, %d expansions) lacks %s:\n%s", i, budget, window, exp, lockerCode, prompt)
		}
	}
}
