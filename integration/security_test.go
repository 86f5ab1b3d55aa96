package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/megacontext/megacontext/integration/fakellama"
)

// Keys of the security tests' configuration (see securityConfig).
const (
	keyBasic = "sk-alice-basic"
	keyPII   = "sk-alice-pii"
	keyAdmin = "sk-admin"
	// keyAdminBasic administers acme without the pii scope.
	keyAdminBasic = "sk-admin-basic"
	keyBob        = "sk-bob"
	keyHashed     = "sk-carol-hashed" // configured only as its SHA-256 digest
)

// Sensitive values planted by the tests. The card is Luhn-valid (Visa's
// test number); the code is withheld by the "internal" exclude rule.
const (
	plantCard      = "4111 1111 1111 1111"
	plantCardBare  = "4111111111111111"
	plantEmail     = "alice.w@example.com"
	plantHotel     = "Marisol"
	plantNightjar  = "NJ-7734-QX"
	withheldMarker = "[message withheld by policy]"
)

// securityConfig is the configuration: four plain keys in two
// tenants and one hashed key, two redact rules (built-in detectors) and one
// exclude rule (a pattern no key is cleared for).
func securityConfig() string {
	sum := sha256.Sum256([]byte(keyHashed))
	return `auth:
  keys:
    - {key: sk-alice-basic, tenant: acme, scopes: [basic]}
    - {key: sk-alice-pii, tenant: acme, scopes: [basic, pii]}
    - {key: sk-admin, tenant: acme, scopes: [basic, pii, admin]}
    - {key: sk-admin-basic, tenant: acme, scopes: [basic, admin]}
    - {key: sk-bob, tenant: globex, scopes: [basic, pii, admin]}
    - {hash: "sha256:` + hex.EncodeToString(sum[:]) + `", tenant: acme, scopes: [basic]}
policy:
  rules:
    - {name: cards, detector: credit_card, action: redact, allow_scopes: [pii]}
    - {name: emails, detector: email, action: redact, allow_scopes: [pii]}
    - {name: internal, pattern: "(?i)project\\s+nightjar", action: exclude, allow_scopes: [internal]}
`
}

// as returns the headers of a request made with key for the MegaContext
// id; thread, when not empty, names the conversation.
func as(key, id, thread string) map[string]string {
	h := map[string]string{}
	if key != "" {
		h["Authorization"] = "Bearer " + key
	}
	if id != "" {
		h["X-MegaContext-Id"] = id
	}
	if thread != "" {
		h["X-MegaContext-Thread"] = thread
	}
	return h
}

// forwarded sends one chat and returns the upstream request it caused.
func forwarded(t *testing.T, p *proxy, fake *fakellama.Server, body []byte, hdr map[string]string) (*chatResult, fakellama.Request) {
	t.Helper()
	n := len(fake.Requests())
	res := p.mustChat(t, body, hdr)
	reqs := fake.Requests()
	if len(reqs) != n+1 {
		t.Fatalf("upstream saw %d requests for one chat, want 1", len(reqs)-n)
	}
	return res, reqs[n]
}

// adminList returns the context ids that key's admin list shows.
func adminList(t *testing.T, p *proxy, key string) []string {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts", nil, as(key, "", ""))
	if r.Status != http.StatusOK {
		t.Fatalf("list as %s: status %d: %s", key, r.Status, r.Body)
	}
	var ids []string
	for _, c := range gjson.GetBytes(r.Body, "data").Array() {
		ids = append(ids, c.Get("id").Str)
	}
	return ids
}

// adminStats returns the statistics of id as key sees them; found is false
// on 404.
func adminStats(t *testing.T, p *proxy, key, id string) (st contextStats, found bool) {
	t.Helper()
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+url.PathEscape(id), nil, as(key, "", ""))
	if r.Status == http.StatusNotFound {
		checkOpenAIError(t, "stats 404", r.Body)
		return st, false
	}
	if r.Status != http.StatusOK {
		t.Fatalf("stats %s as %s: status %d: %s", id, key, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &st); err != nil {
		t.Fatalf("stats %s: %v: %s", id, err, r.Body)
	}
	return st, true
}

// containsAny reports the first of needles that s contains.
func containsAny(s string, needles ...string) (string, bool) {
	for _, n := range needles {
		if strings.Contains(s, n) {
			return n, true
		}
	}
	return "", false
}

// TestAuthKeys: a missing, malformed or unknown key gets 401 in OpenAI
// error JSON on every authenticated route, and nothing reaches the
// upstream or the store; a key configured only as its SHA-256 digest
// authenticates, the digest itself does not.
func TestAuthKeys(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	body := chatBody(t, []msg{{"user", "Hello, please store this message: the intruder was here."}}, nil)

	sum := sha256.Sum256([]byte(keyHashed))
	for _, c := range []struct{ name, auth string }{
		{"none", ""},
		{"unknown", "Bearer sk-nobody"},
		{"empty bearer", "Bearer "},
		{"basic scheme", "Basic " + keyBasic},
		{"bare key", keyBasic},
		{"digest as key", "Bearer sha256:" + hex.EncodeToString(sum[:])},
		{"prefix of a key", "Bearer sk-alice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			hdr := map[string]string{"X-MegaContext-Id": "intruder"}
			if c.auth != "" {
				hdr["Authorization"] = c.auth
			}
			for _, rt := range []struct{ method, path string }{
				{"POST", "/v1/chat/completions"},
				{"GET", "/v1/models"},
				{"POST", "/v1/completions"},
				{"GET", "/megacontext/v1/contexts"},
				{"GET", "/megacontext/v1/contexts/intruder"},
			} {
				var b []byte
				if rt.method == "POST" {
					b = body
				}
				r := p.mustDo(t, rt.method, rt.path, b, hdr)
				if r.Status != http.StatusUnauthorized {
					t.Errorf("%s %s: status %d, want 401: %s", rt.method, rt.path, r.Status, r.Body)
					continue
				}
				e := checkOpenAIError(t, rt.method+" "+rt.path, r.Body)
				if e.Get("code").Str != "invalid_api_key" {
					t.Errorf("%s %s: error.code %s, want invalid_api_key", rt.method, rt.path, e.Get("code").Raw)
				}
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate %q", rt.method, rt.path, r.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("unauthenticated requests reached the upstream %d times", n)
	}
	// /healthz and /metrics stay open (probes and scrapers carry no key).
	for _, path := range []string{"/healthz", "/metrics"} {
		if r := p.mustDo(t, "GET", path, nil, nil); r.Status != http.StatusOK {
			t.Errorf("%s without a key: %d", path, r.Status)
		}
	}

	// Nothing was stored, in any tenant.
	for _, key := range []string{keyAdmin, keyBob} {
		if ids := adminList(t, p, key); len(ids) != 0 {
			t.Errorf("after unauthenticated requests, %s lists %v", key, ids)
		}
	}

	// The hashed key works and lands in its tenant.
	res := p.mustChat(t, body, as(keyHashed, "carol", ""))
	if res.Content == "" {
		t.Errorf("hashed key: empty reply %s", res.Body)
	}
	if got := fake.Requests(); len(got) != 1 || got[0].Header.Get("Authorization") != "" {
		t.Errorf("hashed key: upstream requests %d, Authorization forwarded %q", len(got), got[0].Header.Get("Authorization"))
	}
	if ids := adminList(t, p, keyAdmin); !slices.Equal(ids, []string{"carol"}) {
		t.Errorf("acme admin lists %v, want [carol]", ids)
	}
	if ids := adminList(t, p, keyBob); len(ids) != 0 {
		t.Errorf("globex admin lists %v, want nothing", ids)
	}
	if _, found := adminStats(t, p, keyBob, "carol"); found {
		t.Errorf("globex admin sees acme's context carol")
	}
}

// TestPolicyLifecycle follows one user of tenant acme through a long chat
// with a small upstream context: a card number and an email are redacted
// for a basic caller live and in later recall, a pii caller recalls them
// from memory, another tenant using the same MegaContext id sees none of
// it, an exclude rule withholds a message live and in recall, the metrics
// count every action and the log never holds a sensitive value.
func TestPolicyLifecycle(t *testing.T) {
	const (
		nCtx      = 2048
		maxTokens = 128
		id        = "alice"
		fillers   = 30
	)
	fake := newFake(t, fakellama.Options{NCtx: nCtx})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})

	// The client resends its whole history each turn, as chat UIs do.
	system := msg{"system", "You are a travel assistant. Answer briefly."}
	history := []msg{system}
	k := newTalker(7)
	turn := func(text string, key string, stream bool) (*chatResult, fakellama.Request) {
		t.Helper()
		history = append(history, msg{"user", text})
		res, req := forwarded(t, p, fake, chatBody(t, history, map[string]any{"max_tokens": maxTokens, "stream": stream}), as(key, id, ""))
		history = append(history, msg{"assistant", res.Content})
		return res, req
	}
	var piiRequests []int // indices of upstream requests made for a pii caller

	turn(k.message(), keyBasic, false)

	// (2) The live turn of a basic caller: card and email redacted, the rest intact.
	planted := "Charge my card " + plantCard + " for the Lisbon trip: I booked the Hotel " + plantHotel +
		" Grande by the river, and please send the confirmation email to " + plantEmail + " today."
	res, req := turn(planted, keyBasic, true)
	last := req.Messages[len(req.Messages)-1]
	if s, ok := containsAny(req.Prompt, plantCard, plantCardBare, plantEmail); ok {
		t.Errorf("live turn: forwarded prompt holds %q:\n%s", s, req.Prompt)
	}
	if !strings.Contains(last.Content, plantHotel) || !strings.Contains(last.Content, "[redacted:") {
		t.Errorf("live turn: forwarded message %q, want the hotel kept and [redacted:...] placeholders", last.Content)
	}
	if n := strings.Count(last.Content, "[redacted:"); n != 2 {
		t.Errorf("live turn: %d placeholders in %q, want 2 (card, email)", n, last.Content)
	}
	if s, ok := containsAny(res.Content, plantCard, plantEmail); ok {
		t.Errorf("live turn: reply holds %q", s)
	}

	// (6) An exclude rule withholds the whole live message.
	_, req = turn("Status update: project Nightjar launch code is "+plantNightjar+", keep it between us.", keyBasic, false)
	if got := req.Messages[len(req.Messages)-1].Content; got != withheldMarker {
		t.Errorf("excluded live turn forwarded as %q, want %q", got, withheldMarker)
	}
	if strings.Contains(req.Prompt, plantNightjar) || strings.Contains(req.Prompt, "Nightjar") {
		t.Errorf("excluded live turn: forwarded prompt holds the code or the project:\n%s", req.Prompt)
	}

	// Filler until the planted message has left the verbatim tail.
	for i := 0; i < fillers; i++ {
		turn(k.message(), keyBasic, i%4 == 1)
	}

	// (3) The question, many turns later, recalls the message from memory,
	// still redacted for the basic caller.
	question := "Which hotel did I book for the Lisbon trip, and which card and email did I give you for it?"
	_, req = turn(question, keyBasic, false)
	for i, m := range req.Messages {
		if m.Content == planted || (i > 0 && strings.Contains(m.Content, plantHotel)) {
			t.Fatalf("the planted message is still in the verbatim tail (message %d of %d); more filler needed", i, len(req.Messages))
		}
	}
	if !strings.Contains(req.Messages[0].Content, plantHotel) {
		t.Errorf("recall (basic): memory in the system prompt lacks the hotel %q:\n%s", plantHotel, req.Messages[0].Content)
	}
	if !strings.Contains(req.Messages[0].Content, "[redacted:") {
		t.Errorf("recall (basic): memory has no [redacted:...] placeholder:\n%s", req.Messages[0].Content)
	}
	if s, ok := containsAny(req.Prompt, plantCard, plantCardBare, plantEmail, plantNightjar); ok {
		t.Errorf("recall (basic): forwarded prompt holds %q:\n%s", s, req.Prompt)
	}

	// The same question in a new chat (memory only): basic, then pii.
	newChat := chatBody(t, []msg{system, {"user", question}}, map[string]any{"max_tokens": maxTokens})
	_, req = forwarded(t, p, fake, newChat, as(keyBasic, id, "recall-basic"))
	if !strings.Contains(req.Prompt, plantHotel) {
		t.Errorf("new chat (basic): no hotel recalled:\n%s", req.Prompt)
	}
	if s, ok := containsAny(req.Prompt, plantCard, plantCardBare, plantEmail); ok {
		t.Errorf("new chat (basic): forwarded prompt holds %q:\n%s", s, req.Prompt)
	}

	// (4) A caller cleared for pii sees the originals, from memory.
	piiRequests = append(piiRequests, len(fake.Requests()))
	_, req = forwarded(t, p, fake, newChat, as(keyPII, id, "recall-pii"))
	for _, want := range []string{plantHotel, plantCard, plantEmail} {
		if !strings.Contains(req.Messages[0].Content, want) {
			t.Errorf("new chat (pii): memory lacks %q:\n%s", want, req.Messages[0].Content)
		}
	}
	// Nobody is cleared for the exclude rule, pii callers included.
	piiRequests = append(piiRequests, len(fake.Requests()))
	_, req = forwarded(t, p, fake, chatBody(t, []msg{system, {"user", "What was the launch code in my status update?"}}, map[string]any{"max_tokens": maxTokens}), as(keyPII, id, "recall-code"))
	if strings.Contains(req.Prompt, plantNightjar) {
		t.Errorf("recall of an excluded message (pii): forwarded prompt holds the code:\n%s", req.Prompt)
	}

	// (5) Another tenant with the same MegaContext id sees nothing of acme.
	_, req = forwarded(t, p, fake, newChat, as(keyBob, id, "recall-bob"))
	if s, ok := containsAny(req.Prompt, plantHotel, plantCard, plantCardBare, plantEmail, "[redacted:", "Lisbon trip:", plantNightjar); ok {
		t.Errorf("globex caller with acme's id: forwarded prompt holds %q:\n%s", s, req.Prompt)
	}
	if req.Messages[0].Content != system.Content {
		t.Errorf("globex caller with acme's id got memory: %q", req.Messages[0].Content)
	}
	// Hostile ids spelling acme's key in other ways reach nothing of acme.
	for _, hostile := range []string{"acme:alice", "acme%3Aalice", "../acme/alice", "acme/alice", "ALICE", "alice "} {
		_, req = forwarded(t, p, fake, newChat, as(keyBob, hostile, "recall-bob"))
		if s, ok := containsAny(req.Prompt, plantHotel, plantCard, plantEmail, "[redacted:"); ok {
			t.Errorf("globex caller with id %q: forwarded prompt holds %q:\n%s", hostile, s, req.Prompt)
		}
	}
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts", nil, as(keyBob, "", ""))
	for _, c := range gjson.GetBytes(r.Body, "data").Array() {
		if c.Get("tenant").Str != "globex" || c.Get("messages").Int() > 3 {
			t.Errorf("globex's list entry %s, want tenant globex and at most 3 messages (its own new chat)", c.Raw)
		}
	}
	if ids := adminList(t, p, keyAdmin); !slices.Equal(ids, []string{id}) {
		t.Errorf("acme admin lists %v, want only %q", ids, id)
	}
	if ids := adminList(t, p, keyBob); !slices.Contains(ids, id) {
		t.Errorf("globex admin lists %v, want its own %q", ids, id)
	}
	if st, _ := adminStats(t, p, keyBob, id); st.Messages != 3 {
		t.Errorf("globex's %q holds %d messages, want 3 (its system prompt, question and reply)", id, st.Messages)
	}
	r = p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=1000", nil, as(keyBob, "", ""))
	if r.Status != http.StatusOK || strings.Contains(string(r.Body), plantHotel) || strings.Contains(string(r.Body), plantCard) {
		t.Errorf("globex messages of %q: %d %s", id, r.Status, r.Body)
	}
	// acme's context is untouched: the long chat (system prompt included)
	// and the three new chats' questions and replies (and perhaps their
	// system prompts: each is a thread of its own).
	if acme, _ := adminStats(t, p, keyAdmin, id); acme.Messages < len(history)+3*2 || acme.Messages > len(history)+3*3 {
		t.Errorf("acme's %q holds %d messages, want %d to %d", id, acme.Messages, len(history)+3*2, len(history)+3*3)
	}

	// No upstream request ever carried a value a caller was not cleared for.
	for i, q := range fake.Requests() {
		needles := []string{plantNightjar, "Nightjar"}
		if !slices.Contains(piiRequests, i) {
			needles = append(needles, plantCard, plantCardBare, plantEmail)
		}
		if s, ok := containsAny(string(q.Body), needles...); ok {
			t.Errorf("upstream request %d holds %q", i, s)
		}
		if a := q.Header.Get("Authorization"); a != "" {
			t.Errorf("upstream request %d carries the client's Authorization %q", i, a)
		}
	}
	checkAllFit(t, fake)

	// (8) Metrics count the actions; the log names rules, never values.
	counts := policyCounts(t, p)
	for _, ra := range []string{"cards/redact", "emails/redact", "internal/exclude"} {
		if counts[ra] <= 0 {
			t.Errorf("megacontext_policy_actions_total{%s} = %v, want > 0 (all: %v)", ra, counts[ra], counts)
		}
	}
	checkLogClean(t, p, "policy applied")
}

// policyCounts scrapes megacontext_policy_actions_total by "rule/action".
func policyCounts(t *testing.T, p *proxy) map[string]float64 {
	t.Helper()
	r := p.mustDo(t, "GET", "/metrics", nil, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	re := regexp.MustCompile(`(?m)^megacontext_policy_actions_total\{([^}]*)\} (\S+)$`)
	label := regexp.MustCompile(`(\w+)="([^"]*)"`)
	out := map[string]float64{}
	for _, m := range re.FindAllStringSubmatch(string(r.Body), -1) {
		ls := map[string]string{}
		for _, l := range label.FindAllStringSubmatch(m[1], -1) {
			ls[l[1]] = l[2]
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("/metrics: bad value in %q", m[0])
		}
		out[ls["rule"]+"/"+ls["action"]] += v
	}
	return out
}

// checkLogClean asserts that the process's log (stdout and stderr, debug
// level) holds none of the planted values, and holds want.
func checkLogClean(t *testing.T, p *proxy, want string) {
	t.Helper()
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if s, ok := containsAny(log, plantCard, plantCardBare, plantEmail, plantNightjar, "8675-ORCHID"); ok {
		t.Errorf("the proxy's log holds the sensitive value %q", s)
	}
	if want != "" && !strings.Contains(log, want) {
		t.Errorf("the proxy's log lacks %q", want)
	}
}

// TestAdminScopesAndTags: the admin API needs the admin scope and shows
// only the caller's tenant; tagging a whole message with a rule redacts it
// for callers not cleared for the rule in later windows, and untagging
// restores it.
func TestAdminScopesAndTags(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	const (
		id   = "alice-notes"
		code = "8675-ORCHID"
	)
	system := msg{"system", "You are a helpful assistant."}
	history := []msg{system,
		{"user", "I repainted the garden shed green over the weekend and the neighbours loved it."}}
	res := p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))
	history = append(history, msg{"assistant", res.Content},
		msg{"user", "Note for later: the garage door code is " + code + ", and the spare key hides under the blue flower pot."})
	res = p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))
	history = append(history, msg{"assistant", res.Content},
		msg{"user", "Tomorrow I am baking rye bread for the street party on Saturday afternoon."})
	p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))
	// Another tenant's context.
	p.mustChat(t, chatBody(t, []msg{{"user", "Globex quarterly numbers are due on Friday."}}, nil), as(keyBob, "bob-private", ""))

	// (7) Scopes: no admin scope, 403; admin sees its own tenant only.
	for _, key := range []string{keyBasic, keyPII, keyHashed} {
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/megacontext/v1/contexts", ""},
			{"GET", "/megacontext/v1/contexts/" + id, ""},
			{"GET", "/megacontext/v1/contexts/" + id + "/messages", ""},
			{"POST", "/megacontext/v1/contexts/" + id + "/messages/1/tags", `{"remove":["cards"]}`},
			{"POST", "/megacontext/v1/contexts/" + id + "/window", `{"query":"garage door code"}`},
			{"DELETE", "/megacontext/v1/contexts/" + id, ""},
		} {
			var b []byte
			if rt.body != "" {
				b = []byte(rt.body)
			}
			r := p.mustDo(t, rt.method, rt.path, b, as(key, "", ""))
			if r.Status != http.StatusForbidden {
				t.Errorf("%s %s as %s: status %d, want 403: %s", rt.method, rt.path, key, r.Status, r.Body)
				continue
			}
			checkOpenAIError(t, rt.method+" "+rt.path, r.Body)
			if strings.Contains(string(r.Body), code) {
				t.Errorf("%s %s as %s: 403 body leaks the stored text", rt.method, rt.path, key)
			}
		}
	}
	if ids := adminList(t, p, keyAdmin); !slices.Equal(ids, []string{id}) {
		t.Errorf("acme admin lists %v, want [%s]", ids, id)
	}
	if ids := adminList(t, p, keyBob); !slices.Equal(ids, []string{"bob-private"}) {
		t.Errorf("globex admin lists %v, want [bob-private]", ids)
	}
	if _, found := adminStats(t, p, keyAdmin, "bob-private"); found {
		t.Errorf("acme admin reads globex's context")
	}
	// globex's admin can neither read, tag nor delete acme's context.
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/megacontext/v1/contexts/" + id + "/messages", ""},
		{"POST", "/megacontext/v1/contexts/" + id + "/messages/1/tags", `{"add":["cards"]}`},
		{"POST", "/megacontext/v1/contexts/" + id + "/window", `{"query":"garage door code"}`},
		{"DELETE", "/megacontext/v1/contexts/" + id, ""},
	} {
		var b []byte
		if rt.body != "" {
			b = []byte(rt.body)
		}
		r := p.mustDo(t, rt.method, rt.path, b, as(keyBob, "", ""))
		if strings.Contains(string(r.Body), code) {
			t.Errorf("%s %s as globex: answer holds acme's text: %s", rt.method, rt.path, r.Body)
		}
		if rt.method != "POST" || !strings.HasSuffix(rt.path, "/window") {
			if r.Status != http.StatusNotFound {
				t.Errorf("%s %s as globex: status %d, want 404: %s", rt.method, rt.path, r.Status, r.Body)
			}
		}
	}
	// The system prompt, three questions and three replies survive globex's delete.
	if st, found := adminStats(t, p, keyAdmin, id); !found || st.Messages != 7 {
		t.Fatalf("acme's %q after globex's delete attempt: %+v (found %v)", id, st, found)
	}

	// Find the message to tag.
	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=100", nil, as(keyAdmin, "", ""))
	if r.Status != http.StatusOK {
		t.Fatalf("messages: %d %s", r.Status, r.Body)
	}
	seq := int64(-1)
	for _, m := range gjson.GetBytes(r.Body, "data").Array() {
		if m.Get("role").Str == "user" && strings.Contains(m.Get("text").Str, code) {
			seq = m.Get("seq").Int()
		}
	}
	if seq < 0 {
		t.Fatalf("message with the code not listed: %s", r.Body)
	}
	tagPath := fmt.Sprintf("/megacontext/v1/contexts/%s/messages/%d/tags", id, seq)

	ask := func(key, thread, question string) fakellama.Request {
		t.Helper()
		_, req := forwarded(t, p, fake, chatBody(t, []msg{system, {"user", question}}, nil), as(key, id, thread))
		return req
	}
	if req := ask(keyBasic, "q-before", "What is the garage door code?"); !strings.Contains(req.Prompt, code) {
		t.Fatalf("before tagging, the basic caller does not recall the code:\n%s", req.Prompt)
	}

	if r := p.mustDo(t, "POST", tagPath, []byte(`{"add":["no-such-rule"]}`), as(keyAdmin, "", "")); r.Status != http.StatusBadRequest {
		t.Errorf("tag with an unknown rule: %d %s", r.Status, r.Body)
	}
	if r := p.mustDo(t, "POST", fmt.Sprintf("/megacontext/v1/contexts/%s/messages/%d/tags", id, 9999), []byte(`{"add":["cards"]}`), as(keyAdmin, "", "")); r.Status != http.StatusNotFound {
		t.Errorf("tag of a missing message: %d %s", r.Status, r.Body)
	}
	r = p.mustDo(t, "POST", tagPath, []byte(`{"add":["cards"]}`), as(keyAdmin, "", ""))
	if r.Status != http.StatusOK || !slices.ContainsFunc(gjson.GetBytes(r.Body, "tags").Array(), func(v gjson.Result) bool { return v.Str == "cards" }) {
		t.Fatalf("tag: %d %s", r.Status, r.Body)
	}

	req := ask(keyBasic, "q-tagged", "Remind me, what is the garage door code?")
	if strings.Contains(req.Prompt, code) || strings.Contains(req.Prompt, "blue flower pot") {
		t.Errorf("after tagging, the basic caller's window holds the tagged message:\n%s", req.Prompt)
	}
	if !strings.Contains(req.Prompt, "[redacted:") {
		t.Errorf("after tagging, no [redacted:...] placeholder in the basic caller's window:\n%s", req.Prompt)
	}
	if !strings.Contains(req.Prompt, "shed") && !strings.Contains(req.Prompt, "rye bread") {
		t.Errorf("after tagging, untagged messages vanished too:\n%s", req.Prompt)
	}
	if req := ask(keyPII, "q-tagged-pii", "Garage door code, please?"); !strings.Contains(req.Prompt, code) {
		t.Errorf("after tagging, the pii caller does not recall the code:\n%s", req.Prompt)
	}
	// The admin's dry run with its own scopes (pii) shows the code; the
	// message listing shows the tag.
	r = p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"query":"garage door code"}`), as(keyAdmin, "", ""))
	if r.Status != http.StatusOK || !strings.Contains(gjson.GetBytes(r.Body, "memory").Str, code) {
		t.Errorf("dry run as a pii admin: %d %s", r.Status, r.Body)
	}
	r = p.mustDo(t, "GET", fmt.Sprintf("/megacontext/v1/contexts/%s/messages?from=%d&limit=1", id, seq), nil, as(keyAdmin, "", ""))
	if tags := gjson.GetBytes(r.Body, "data.0.tags").Array(); len(tags) != 1 || tags[0].Str != "cards" {
		t.Errorf("listed tags of message %d: %s", seq, r.Body)
	}

	r = p.mustDo(t, "POST", tagPath, []byte(`{"remove":["cards"]}`), as(keyAdmin, "", ""))
	if r.Status != http.StatusOK || len(gjson.GetBytes(r.Body, "tags").Array()) != 0 {
		t.Fatalf("untag: %d %s", r.Status, r.Body)
	}
	if req := ask(keyBasic, "q-untagged", "Once more: the garage door code?"); !strings.Contains(req.Prompt, code) {
		t.Errorf("after untagging, the basic caller does not recall the code:\n%s", req.Prompt)
	}
	if counts := policyCounts(t, p); counts["cards/redact"] <= 0 {
		t.Errorf("tag redactions not counted: %v", counts)
	}
}

// rawRun runs the binary with args until it exits or limit passes and
// returns its exit code and output; it fails the test if the process is
// still running at limit.
func rawRun(t *testing.T, args []string, env []string, limit time.Duration) (int, string) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %v; output:\n%s", args, limit, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// rawStart runs the binary with args and waits until url/healthz answers;
// the process is stopped at cleanup. It returns the output read so far
// through a function.
func rawStart(t *testing.T, url string, args []string, env []string) func() string {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), env...)
	logPath := filepath.Join(t.TempDir(), "out.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	read := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			t.Fatalf("%v exited before it was ready:\n%s", args, read())
		default:
		}
		if resp, err := hc.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return read
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not ready within %v:\n%s", args, startTimeout, read())
		}
		time.Sleep(25 * time.Millisecond) // poll interval
	}
}

// TestOpenProxyListen: with no keys the proxy refuses to listen beyond
// loopback (exit status 1, a message about auth) unless auth.allow_open is
// set; on loopback it starts and says it is open.
func TestOpenProxyListen(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	data := filepath.Join(t.TempDir(), "data")
	port := strconv.Itoa(freePort(t))

	for _, listen := range []string{"0.0.0.0:" + port, "[::]:" + port, ":" + port} {
		code, out := rawRun(t, []string{"serve", "--listen", listen, "--upstream", fake.URL(), "--data", data}, nil, startTimeout)
		if code == 0 {
			t.Errorf("open proxy on %s: exit status 0, want non-zero; output:\n%s", listen, out)
		}
		if !strings.Contains(out, "auth") || strings.Contains(out, "panic") {
			t.Errorf("open proxy on %s: output does not explain the auth refusal:\n%s", listen, out)
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("open proxy on %s: something listens on port %s after the refusal", listen, port)
		}
	}
	if len(fake.Requests()) != 0 {
		t.Errorf("a refused proxy sent %d requests upstream", len(fake.Requests()))
	}

	// Loopback: starts, open, says so.
	p := startProxy(t, proxyOptions{Upstream: fake.URL()})
	p.mustChat(t, chatBody(t, []msg{{"user", "hello on loopback"}}, nil), nil)
	b, _ := os.ReadFile(p.logPath)
	if !strings.Contains(string(b), "no auth.keys configured") {
		t.Errorf("open loopback proxy does not say it is open:\n%s", b)
	}

	// allow_open opts in to an open proxy beyond loopback.
	t.Run("allow_open", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte("auth:\n  allow_open: true\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(freePort(t))
		read := rawStart(t, "http://127.0.0.1:"+port, []string{"serve", "--config", cfg, "--listen", "0.0.0.0:" + port, "--upstream", fake.URL(), "--data", filepath.Join(dir, "data")}, nil)
		if !strings.Contains(read(), "open") {
			t.Errorf("allow_open proxy does not warn that it is open:\n%s", read())
		}
	})

	// With keys, listening beyond loopback is fine.
	t.Run("keys", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte(securityConfig()), 0o644); err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(freePort(t))
		rawStart(t, "http://127.0.0.1:"+port, []string{"serve", "--config", cfg, "--listen", "0.0.0.0:" + port, "--upstream", fake.URL(), "--data", filepath.Join(dir, "data")}, nil)
		r, err := http.Get("http://127.0.0.1:" + port + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusUnauthorized {
			t.Errorf("keyed proxy on 0.0.0.0: /v1/models without key: %d", r.StatusCode)
		}
	})
}

// TestExcludeRecallWithholdsWholeMessage: a message matched by an exclude
// rule is withheld whole in the live turn and in the resent verbatim tail;
// once it is recalled from memory, none of it may reach a caller not
// cleared for the rule either, also when the message is long enough to
// span several blocks and the secret sits in a later block than the span
// the rule matched.
func TestExcludeRecallWithholdsWholeMessage(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	const id = "alice-excl"
	system := msg{"system", "You are a helpful assistant."}
	secret := "Quick status update on project Nightjar for the team. The rollout slipped by a week because the vendor " +
		"shipped the wrong firmware, the test rig in building four needs new power supplies, and legal still has " +
		"not signed off on the export paperwork. For the record, the launch code is " + plantNightjar + "."
	history := []msg{system, {"user", "I spent the morning repotting the tomato seedlings on the balcony."}}
	res := p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))
	history = append(history, msg{"assistant", res.Content}, msg{"user", secret})
	_, req := forwarded(t, p, fake, chatBody(t, history, nil), as(keyBasic, id, ""))
	if got := req.Messages[len(req.Messages)-1].Content; got != withheldMarker {
		t.Errorf("live turn forwarded as %q, want %q", got, withheldMarker)
	}
	history = append(history, msg{"assistant", "Okay."}, msg{"user", "Later I walked the dog along the canal."})
	_, req = forwarded(t, p, fake, chatBody(t, history, nil), as(keyBasic, id, ""))
	if strings.Contains(req.Prompt, plantNightjar) {
		t.Errorf("resent verbatim tail holds the code:\n%s", req.Prompt)
	}

	// New chats see the conversation through memory only.
	for i, key := range []string{keyBasic, keyPII} {
		_, req = forwarded(t, p, fake, chatBody(t, []msg{system, {"user", "What was the launch code in my status update?"}}, nil), as(key, id, "recall-"+strconv.Itoa(i)))
		if strings.Contains(req.Prompt, plantNightjar) {
			t.Errorf("recall as %s: the excluded message's code reaches the upstream:\n%s", key, req.Prompt)
		}
	}
	r := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"query":"What was the launch code in my status update?"}`), as(keyAdmin, "", ""))
	if r.Status != http.StatusOK || strings.Contains(gjson.GetBytes(r.Body, "memory").Str, plantNightjar) {
		t.Errorf("dry run as admin: the excluded message's code is in the memory: %d %s", r.Status, gjson.GetBytes(r.Body, "memory").Str)
	}
}

// TestAdminIDsWithSlash: a MegaContext id may hold any printable
// character, '/' included (X-MegaContext-Id: team/alice); the admin API
// must reach such a context through its path-escaped id (team%2Falice) to
// read, tag or delete it.
func TestAdminIDsWithSlash(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	const id = "team/alice"
	p.mustChat(t, chatBody(t, []msg{{"user", "Please forget everything I say in this chat later."}}, nil), as(keyBasic, id, ""))
	if ids := adminList(t, p, keyAdmin); !slices.Equal(ids, []string{id}) {
		t.Fatalf("acme admin lists %v, want [%s]", ids, id)
	}
	path := "/megacontext/v1/contexts/" + url.PathEscape(id)
	if r := p.mustDo(t, "GET", path, nil, as(keyAdmin, "", "")); r.Status != http.StatusOK || gjson.GetBytes(r.Body, "messages").Int() != 2 {
		t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
	}
	if r := p.mustDo(t, "DELETE", path, nil, as(keyAdmin, "", "")); r.Status != http.StatusOK {
		t.Errorf("DELETE %s: %d %s", path, r.Status, r.Body)
	}
	if ids := adminList(t, p, keyAdmin); len(ids) != 0 {
		t.Errorf("after DELETE %s the admin still lists %v", path, ids)
	}
}

// TestToolCallArgumentsFiltered: the policy applies to every text of a
// live message a caller sends, not only its content: an assistant tool
// call's arguments resent in the history carry the card and the email to
// the upstream for a basic caller otherwise (in memory the same call is
// stored as text and redacted).
func TestToolCallArgumentsFiltered(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	args := `{"card":"` + plantCard + `","email":"` + plantEmail + `","hotel":"` + plantHotel + `"}`
	body := []byte(`{"model":"fake-model","messages":[
  {"role":"user","content":"Please pay for the Hotel Marisol booking."},
  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"pay","arguments":` + strconv.Quote(args) + `}}]},
  {"role":"tool","tool_call_id":"call_1","content":"payment accepted"},
  {"role":"user","content":"Did the payment go through?"}]}`)
	_, req := forwarded(t, p, fake, body, as(keyBasic, "alice-tools", ""))
	if s, ok := containsAny(string(req.Body), plantCard, plantCardBare, plantEmail); ok {
		t.Errorf("tool call arguments forwarded unfiltered to a basic caller's upstream: %q in\n%s", s, gjson.GetBytes(req.Body, "messages").Raw)
	}
	// Memory redacts the same call for the basic caller.
	_, req = forwarded(t, p, fake, chatBody(t, []msg{{"user", "Which card did the pay tool use?"}}, nil), as(keyBasic, "alice-tools", "later"))
	if s, ok := containsAny(req.Prompt, plantCard, plantCardBare, plantEmail); ok {
		t.Errorf("recall of the tool call holds %q:\n%s", s, req.Prompt)
	}
}

// TestAdminViewNoWiderThanModel: an admin key without the pii scope sees
// through the admin API no more than a window would show a caller with its
// scopes: leading system prompts and names are redacted, a system prompt
// an exclude rule covers is withheld, the window dry run is filtered, and
// it can neither remove nor add a tag of a rule it is not cleared for (the
// removal it could make before revealed the raw card).
func TestAdminViewNoWiderThanModel(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	const id = "alice-admin-view"
	body := []byte(`{"model":"fake-model","messages":[
  {"role":"system","content":"You are a travel assistant. The customer's card is ` + plantCard + `."},
  {"role":"user","name":"` + plantEmail + `","content":"Please charge my card ` + plantCard + ` for the Hotel ` + plantHotel + `."}]}`)
	p.mustChat(t, body, as(keyBasic, id, ""))
	p.mustChat(t, chatBody(t, []msg{{"system", "Project Nightjar operations. The launch code is " + plantNightjar + "."}, {"user", "Status of the launch?"}}, nil), as(keyBasic, id, "ops"))

	messages := func(key string) string {
		t.Helper()
		r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=100", nil, as(key, "", ""))
		if r.Status != http.StatusOK {
			t.Fatalf("messages as %s: %d %s", key, r.Status, r.Body)
		}
		return string(r.Body)
	}
	view := messages(keyAdminBasic)
	if s, ok := containsAny(view, plantCard, plantCardBare, plantEmail, plantNightjar, "Nightjar"); ok {
		t.Errorf("admin without pii lists %q:\n%s", s, view)
	}
	if !strings.Contains(view, plantHotel) || !strings.Contains(view, withheldMarker) {
		t.Errorf("admin without pii: listing lost what it may see:\n%s", view)
	}
	r := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"query":"which card and email did I give for the hotel?"}`), as(keyAdminBasic, "", ""))
	if s, ok := containsAny(string(r.Body), plantCard, plantCardBare, plantEmail); r.Status != http.StatusOK || ok {
		t.Errorf("dry run as admin without pii: %d, holds %q: %s", r.Status, s, r.Body)
	}

	// Find the user message and try to untag its card.
	seq := gjson.Get(view, `data.#(role=="user").seq`).Int()
	tagPath := fmt.Sprintf("/megacontext/v1/contexts/%s/messages/%d/tags", id, seq)
	for _, body := range []string{`{"remove":["cards"]}`, `{"add":["cards"]}`, `{"remove":["internal"]}`} {
		r := p.mustDo(t, "POST", tagPath, []byte(body), as(keyAdminBasic, "", ""))
		if r.Status != http.StatusForbidden {
			t.Errorf("tags %s as admin without pii: %d %s, want 403", body, r.Status, r.Body)
			continue
		}
		checkOpenAIError(t, "tags "+body, r.Body)
	}
	if s, ok := containsAny(messages(keyAdminBasic), plantCard, plantCardBare); ok {
		t.Errorf("after the tag attempts the admin without pii reads %q", s)
	}
	// The pii admin may change the cards tag; the card stays redacted for
	// others, since its detector span is not a tag.
	if r := p.mustDo(t, "POST", tagPath, []byte(`{"remove":["cards"]}`), as(keyAdmin, "", "")); r.Status != http.StatusOK {
		t.Errorf("tags remove cards as pii admin: %d %s", r.Status, r.Body)
	}
	if s, ok := containsAny(messages(keyAdminBasic), plantCard, plantCardBare); ok {
		t.Errorf("after the pii admin removed the tag, the admin without pii reads %q", s)
	}
	// The pii admin sees the originals, but not what no one is cleared for.
	full := messages(keyAdmin)
	if !strings.Contains(full, plantCard) || !strings.Contains(full, plantEmail) || strings.Contains(full, plantNightjar) {
		t.Errorf("pii admin's listing:\n%s", full)
	}
}

// TestAdminTagRemovalKeepsDetectorSpans: through the admin API, a pii
// admin removing the emails tag from a message that is only an e-mail
// address (the detector's span covers its whole block, as a hand tag
// would) lifts nothing the detector found: a basic caller's recall and an
// admin without pii still see the placeholder, not the address, after the
// removal and after adding and removing the tag by hand.
func TestAdminTagRemovalKeepsDetectorSpans(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	const id = "alice-bare-email"
	history := []msg{{"user", "I repainted the garden shed green over the weekend and the neighbours loved it."}}
	res := p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))
	history = append(history, msg{"assistant", res.Content}, msg{"user", plantEmail})
	p.mustChat(t, chatBody(t, history, nil), as(keyBasic, id, ""))

	r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=100", nil, as(keyAdmin, "", ""))
	seq := gjson.GetBytes(r.Body, `data.#(text=="`+plantEmail+`").seq`)
	if r.Status != http.StatusOK || !seq.Exists() {
		t.Fatalf("the bare address is not listed to the pii admin: %d %s", r.Status, r.Body)
	}
	tagPath := fmt.Sprintf("/megacontext/v1/contexts/%s/messages/%d/tags", id, seq.Int())
	check := func(when string) {
		t.Helper()
		_, req := forwarded(t, p, fake, chatBody(t, []msg{{"user", "What e-mail address did I give you earlier?"}}, nil), as(keyBasic, id, "ask-"+when))
		if strings.Contains(req.Prompt, plantEmail) {
			t.Errorf("%s: a basic caller recalls the address:\n%s", when, req.Prompt)
		}
		r := p.mustDo(t, "GET", "/megacontext/v1/contexts/"+id+"/messages?limit=100", nil, as(keyAdminBasic, "", ""))
		w := p.mustDo(t, "POST", "/megacontext/v1/contexts/"+id+"/window", []byte(`{"query":"e-mail address"}`), as(keyAdminBasic, "", ""))
		if s, ok := containsAny(string(r.Body)+string(w.Body), plantEmail); ok {
			t.Errorf("%s: an admin without pii reads %q", when, s)
		}
	}
	check("before")
	for _, body := range []string{`{"remove":["emails"]}`, `{"add":["emails"]}`, `{"remove":["emails"]}`} {
		r := p.mustDo(t, "POST", tagPath, []byte(body), as(keyAdmin, "", ""))
		if tags := gjson.GetBytes(r.Body, "tags").Array(); r.Status != http.StatusOK || len(tags) != 1 || tags[0].Str != "emails" {
			t.Fatalf("tags %s as the pii admin: %d %s (the detector's span tags the message)", body, r.Status, r.Body)
		}
		check("after " + body)
	}
}

// TestCompletionsFiltered: the text of the pass-through completions
// route reaches the upstream filtered like a chat message (embeddings
// inputs are filtered the same way: see proxy's TestPassthroughFields).
func TestCompletionsFiltered(t *testing.T) {
	fake := newFake(t, fakellama.Options{})
	p := startProxy(t, proxyOptions{Upstream: fake.URL(), Config: securityConfig()})
	body := []byte(`{"model":"fake-model","prompt":"Card: ` + plantCard + `, mail ` + plantEmail + `. Summary:","max_tokens":8,"user":"` + plantEmail + `"}`)
	for _, c := range []struct {
		key  string
		leak bool
	}{{keyBasic, false}, {keyPII, true}} {
		n := len(fake.Requests())
		r := p.mustDo(t, "POST", "/v1/completions", body, as(c.key, "", ""))
		if r.Status != http.StatusOK || len(fake.Requests()) != n+1 {
			t.Fatalf("completions as %s: %d %s", c.key, r.Status, r.Body)
		}
		got := string(fake.Requests()[n].Body)
		if _, ok := containsAny(got, plantCard, plantEmail); ok != c.leak {
			t.Errorf("completions as %s forwarded %s", c.key, got)
		}
	}
}
