package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/store"
)

// Keys and facts of the inspector test.
const (
	inspectorAdmin = "sk-inspector-admin"
	inspectorUser  = "sk-inspector-user"
	lockerFact     = "My locker code is ZX-4471-QK, at the gym on Dock Street."
	spareKeyFact   = "Remember: the spare key is under the blue flowerpot."
)

// inspectorConfig: an admin and a user key of one tenant, an e-mail
// redaction rule and a retention rule for messages over 30 days old that
// no window showed.
const inspectorConfig = `upstream:
  tokenize: estimate
auth:
  keys:
    - {key: ` + inspectorAdmin + `, tenant: acme, scopes: [admin]}
    - {key: ` + inspectorUser + `, tenant: acme, scopes: [basic]}
policy:
  rules:
    - {name: emails, detector: email, action: redact, allow_scopes: [pii]}
retention:
  rules:
    - {name: stale, older_than_days: 30, never_expanded: true}
`

// chromiumPath finds a Chromium to drive, or "".
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// preloadBig writes a context of about tokens tokens into a data folder
// through the engine (as a long-lived user's history would be, its chats
// spread over the past year), faster than through the proxy.
func preloadBig(t *testing.T, dir string, k memory.Key, tokens int) {
	t.Helper()
	e, err := memory.Open(memory.Options{Dir: dir, Sync: store.SyncSecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := rand.New(rand.NewPCG(3, 12))
	words := strings.Fields(`garden river mountain story window paper music kitchen travel winter summer market bridge forest
village teacher student engine yellow orange quiet gentle ancient modern coffee bread letter journey harbor island valley
castle lantern mirror pocket ribbon saddle thunder meeting budget project dentist violin passport recipe bicycle`)
	sentence := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = words[r.IntN(len(words))]
		}
		return strings.Join(w, " ") + "."
	}
	start := time.Now().Add(-400 * 24 * time.Hour)
	total := 0
	for s := 0; total < tokens; s++ {
		var msgs []memory.Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, memory.Message{Role: "user", Text: sentence(40)}, memory.Message{Role: "assistant", Text: sentence(70)})
		}
		at := start.Add(time.Duration(s) * 20 * time.Minute)
		if _, err := e.Import(memory.Key{Tenant: k.Tenant, Context: k.Context, Thread: strconv.Itoa(s)}, msgs, at); err != nil {
			t.Fatal(err)
		}
		if s%50 == 0 {
			st, err := e.Stats(k)
			if err != nil {
				t.Fatal(err)
			}
			total = st.Tokens
		}
	}
}

// TestInspectorInBrowser drives the inspector in headless Chromium against
// the real binary: sign-in, the contexts, a timeline with a branch, the gist
// tree of a 1M-token context (loaded within a second), the kept windows with
// their reasons, the ask box, pinning a message that the next window then
// shows, a retention preview and prune, and the policy counts. With
// MEGACONTEXT_SCREENSHOTS=DIR it writes a PNG of each view there.
func TestInspectorInBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no Chromium found (chromium, chromium-browser, google-chrome): install Debian's chromium (.ci/run does) to run the inspector's browser test")
	}
	if testing.Short() {
		t.Skip("preloads a 1M-token context: skipped with -short")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	big := memory.Key{Tenant: "acme", Context: "big"}
	t0 := time.Now()
	preloadBig(t, dataDir, big, 1_000_000)
	t.Logf("preloaded a 1M-token context in %v", time.Since(t0).Round(time.Millisecond))

	fake := newFake(t, fakellama.Options{NCtx: 2048})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), DataDir: dataDir, Config: inspectorConfig})

	// Alice's chats through the proxy: facts, an e-mail the policy redacts,
	// and an edit that branches her first chat.
	alice := as(inspectorUser, "alice", "")
	history := []msg{{"system", "You are a helpful assistant."}}
	r := rand.New(rand.NewPCG(5, 6))
	small := strings.Fields("weekend plans groceries weather running shoes podcast dinner train tickets birthday gift garden")
	for i := 0; i < 40; i++ {
		u := "Quick one about " + small[r.IntN(len(small))] + " and " + small[r.IntN(len(small))] + ". "
		for j := 0; j < 30; j++ {
			u += small[r.IntN(len(small))] + " "
		}
		switch i {
		case 3:
			u = lockerFact
		case 8:
			u = "Send the receipt to alice.w@example.com please."
		case 12:
			u = spareKeyFact
		}
		history = append(history, msg{"user", u})
		res := p.mustChat(t, chatBody(t, history, map[string]any{"max_tokens": 64}), alice)
		history = append(history, msg{"assistant", res.Content})
	}
	edited := append(append([]msg(nil), history[:5]...), msg{"user", "Actually, scratch that: what should I cook tonight?"})
	p.mustChat(t, chatBody(t, edited, map[string]any{"max_tokens": 64}), alice)
	p.mustChat(t, chatBody(t, []msg{{"user", "What is my locker code at the gym?"}}, map[string]any{"max_tokens": 64}), alice)
	stats, _ := p.statsAs(t, "alice", inspectorAdmin)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.WindowSize(1100, 760), chromedp.Flag("disable-gpu", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ui := p.URL() + "/megacontext/ui/"
	// The first action starts the browser, on a context without a deadline
	// (which would stop the browser); each later step has one of its own.
	if err := chromedp.Do(bctx, chromedp.Navigate(ui)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(bctx, 60*time.Second) }
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(what, expr string) any {
		t.Helper()
		ctx, cancel := step()
		defer cancel()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	count := func(sel string) int {
		t.Helper()
		n, _ := eval("count "+sel, `document.querySelectorAll(`+strconv.Quote(sel)+`).length`).(float64)
		return int(n)
	}
	text := func(sel string) string {
		t.Helper()
		s, _ := eval("text of "+sel, `(document.querySelector(`+strconv.Quote(sel)+`) || {}).textContent || ""`).(string)
		return s
	}
	shots := os.Getenv("MEGACONTEXT_SCREENSHOTS")
	if shots != "" {
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shot := func(name string) {
		if shots == "" {
			return
		}
		ctx, cancel := step()
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }

	// Sign in with the admin key.
	do("sign in", visible("#key"), chromedp.SendKeys(chromedp.CSS("#key"), inspectorAdmin), chromedp.Click(chromedp.CSS(`#login button[type="submit"]`)),
		visible("table#contexts"))
	if rows := count("table#contexts tbody tr"); rows != 2 {
		t.Errorf("the contexts view lists %d contexts, want 2 (big, alice)", rows)
	}
	shot("contexts")

	// Alice's timeline: every message, her edit a branch, the old turn superseded.
	do("timeline", chromedp.Navigate(ui+"#/c/alice/timeline"), visible("#timeline .msg"))
	msgs, branches, superseded := count("#timeline .msg"), count("#timeline .badge.branch"), count("#timeline .badge.superseded")
	if msgs != stats.Messages || branches < 2 || superseded == 0 {
		t.Errorf("timeline: %d messages (stored %d), %d branch marks, %d superseded", msgs, stats.Messages, branches, superseded)
	}
	shot("timeline")

	// The 1M-token tree: the top level, and the level below opened, in a second.
	// Three questions to the big context, for its telemetry.
	for _, q := range []string{"What did I say about the violin and the passport?", "Any recipe with bread and coffee?", "What did I say about the violin and the passport?"} {
		p.mustChat(t, chatBody(t, []msg{{"user", q}}, map[string]any{"max_tokens": 64}), as(inspectorUser, "big", ""))
	}
	bigStats, _ := p.statsAs(t, "big", inspectorAdmin)
	if bigStats.Tokens < 1_000_000 {
		t.Fatalf("the big context holds %d tokens", bigStats.Tokens)
	}
	levels := bigStats.NodesPerLevel
	start := time.Now()
	do("tree", chromedp.Navigate(ui+"#/c/big/tree"), visible("#tree[data-load-ms]"))
	wall := time.Since(start)
	ms, _ := strconv.ParseFloat(eval("load ms", `document.querySelector("#tree").dataset.loadMs`).(string), 64)
	topNodes := count("#tree > li.node")
	t.Logf("tree view of a %d-token context (levels %v): loaded in %.1f ms in the page, %v from navigation to the rendered tree", bigStats.Tokens, levels, ms, wall.Round(time.Millisecond))
	// The roots: the top level, then at each level the nodes no parent
	// covers yet.
	roots := levels[len(levels)-1]
	for l := 0; l+1 < len(levels); l++ {
		roots += levels[l] - 8*levels[l+1]
	}
	if topNodes != roots {
		t.Errorf("the tree shows %d root nodes, the context has %d", topNodes, roots)
	}
	// The page's own clock, from the view's start (the context's stats
	// read first) to the roots drawn and the first opened; the time from
	// navigation adds the driver's round trips. It is logged above, not
	// asserted: a shared CI host makes wall time no test of behaviour
	// (the README's figure comes from this log line). What keeps the view
	// fast is asserted instead: it draws the roots and at most one opened
	// node per level (8 children each), never the whole tree.
	if ms <= 0 {
		t.Errorf("the page reported no load time (%v from navigation)", wall)
	}
	all := 0
	for _, n := range levels {
		all += n
	}
	if drawn := count("#tree li.node"); drawn > roots+8*(len(levels)-1) {
		t.Errorf("the tree view drew %d nodes of %d; want the %d roots and at most one opened node per level", drawn, all, roots)
	}
	if children := count("#tree > li.node:first-child > ul > li.node"); children != 8 {
		t.Errorf("the first top node opened into %d children, want the fan-out, 8", children)
	}
	if n := count(`#tree li.node:not([data-resident="0"])`); n == 0 {
		t.Errorf("no node of the tree shows the windows' telemetry")
	}
	shot("tree")

	// Alice's kept windows: the locker question's window shows an entry
	// expanded for it, coloured by its reason.
	do("windows", chromedp.Navigate(ui+"#/c/alice/windows"), visible("#windows details[open] pre.memory"))
	if ok, _ := eval("locker expanded", `[...document.querySelectorAll('#windows details[open] span.entry[data-reason="expanded"]')].some(e => e.textContent.includes("ZX-4471-QK"))`).(bool); !ok {
		t.Errorf("the newest kept window shows no expanded entry with the locker code")
	}
	// Its verbatim tail lists the question as a message of its own (an
	// element per message, not an array written as text).
	if tail := text("#windows details[open] .tailmsg"); tail != "user: What is my locker code at the gym?" {
		t.Errorf("the newest kept window's verbatim tail reads %q", tail)
	}
	shot("windows")

	// The ask box: the window for a question, with the reason of its entries.
	do("ask", chromedp.Navigate(ui+"#/c/alice/ask"), visible("#ask-q"),
		chromedp.SendKeys(chromedp.CSS("#ask-q"), "Which gym locker code did I give you?"), chromedp.Click(chromedp.CSS("#ask-go")),
		visible(`#ask-result[data-done="1"] pre.memory`))
	if reason, _ := eval("ask reason", `(() => { const e = [...document.querySelectorAll('#ask-result span.entry[data-level="0"]')].find(e => e.textContent.includes("ZX-4471-QK")); return e ? e.dataset.reason : ""; })()`).(string); reason != "expanded" {
		t.Errorf("the ask box shows the locker message verbatim with reason %q, want \"expanded\"", reason)
	}
	shot("ask")

	// Pin the spare-key message in the timeline; the next window shows it.
	spareSeq := -1
	for _, m := range p.messagesAs(t, "alice", inspectorAdmin) {
		if m.Get("text").Str == spareKeyFact {
			spareSeq = int(m.Get("seq").Int())
		}
	}
	do("pin", chromedp.Navigate(ui+"#/c/alice/timeline"), visible("#timeline .msg"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#timeline .msg[data-seq="%d"] button.pin`, spareSeq))),
		visible(fmt.Sprintf(`#timeline .msg[data-seq="%d"] .badge.pinned`, spareSeq)))
	p.mustChat(t, chatBody(t, []msg{{"user", "Any idea what to cook tonight?"}}, map[string]any{"max_tokens": 64}), alice)
	do("pinned window", chromedp.Navigate(ui+"#/c/alice/windows"), visible("#windows details[open] pre.memory"))
	if q := text("#windows details[open] .q"); q != "Any idea what to cook tonight?" {
		t.Errorf("the newest window is for %q", q)
	}
	if ok, _ := eval("pinned shown", `[...document.querySelectorAll('#windows details[open] span.entry[data-reason="pinned"]')].some(e => e.textContent.includes("blue flowerpot"))`).(bool); !ok {
		t.Errorf("the window after pinning does not show the pinned message as pinned")
	}

	// Curation: the pin listed; the retention rule's preview on the big
	// context, then its prune.
	do("curation", chromedp.Navigate(ui+"#/c/alice/curation"), visible(`#view-curation[data-context="alice"] table#pins`))
	if n := count("table#pins tbody tr"); n != 1 {
		t.Errorf("curation lists %d pins, want 1", n)
	}
	do("retention preview", chromedp.Navigate(ui+"#/c/big/curation"), visible(`#view-curation[data-context="big"] table#retention tr[data-rule="stale"]`))
	preview := text(`table#retention tr[data-rule="stale"] td:nth-child(3)`)
	if n, _ := strconv.Atoi(strings.ReplaceAll(preview, ",", "")); n == 0 {
		t.Errorf("the stale rule would prune %q messages of the year-old context, want many", preview)
	}
	shot("curation")
	do("prune", chromedp.Click(chromedp.CSS(`button.prune[data-rule="stale"]`)), chromedp.Click(chromedp.CSS(`button.prune[data-rule="stale"]`)),
		visible(`#view-curation[data-last-prune="stale"] table#retention tr[data-rule="stale"]`))
	if after := text(`table#retention tr[data-rule="stale"] td:nth-child(3)`); after != "0" {
		t.Errorf("after the prune the rule still matches %q messages", after)
	}

	// Policy: the e-mail redactions counted, no text.
	do("policy", chromedp.Navigate(ui+"#/policy"), visible("table#policy"))
	if row := text(`table#policy tr[data-rule="emails"]`); !strings.Contains(row, "redact") || strings.Contains(row, "example.com") {
		t.Errorf("policy row %q", row)
	}
	shot("policy")

	// Signed out, the page asks for a key again.
	do("sign out", chromedp.Click(chromedp.CSS("#signout")), visible("#key"))
}

// treeStats are the stats of a context the inspector test reads.
type treeStats struct {
	Messages, Tokens int
	// NodesPerLevel counts the tree's nodes, blocks first.
	NodesPerLevel []int
}

// statsAs returns a context's stats read with key.
func (p *proxy) statsAs(t *testing.T, id, key string) (treeStats, bool) {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id, nil, as(key, "", ""))
	var st treeStats
	if r.Status != 200 {
		return st, false
	}
	st.Tokens = int(gjson.GetBytes(r.Body, "tokens").Int())
	st.Messages = int(gjson.GetBytes(r.Body, "messages").Int())
	for _, n := range gjson.GetBytes(r.Body, "nodes_per_level").Array() {
		st.NodesPerLevel = append(st.NodesPerLevel, int(n.Int()))
	}
	return st, true
}

// messagesAs returns a context's stored messages read with key.
func (p *proxy) messagesAs(t *testing.T, id, key string) []gjson.Result {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=1000", nil, as(key, "", ""))
	return gjson.GetBytes(r.Body, "data").Array()
}
