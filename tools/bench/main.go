// Command bench measures the latency MegaContext adds to a chat request:
// the same requests go to an upstream directly and through the proxy,
// interleaved turn by turn so that machine noise hits both alike, over a
// preloaded history. The upstream is the fakellama test fixture (instant
// replies), so the difference is the proxy's own cost: reconcile, ingest,
// exact token counts through the upstream's /tokenize, window assembly,
// rewriting, relaying and storing the reply.
//
//	go run ./tools/bench --history 100000 --turns 200
//	go run ./tools/bench --resend --history 1000000 --turns 30
//	go run ./tools/bench --focus --history 100000 --turns 300
//
// With --upstream URL it runs against a real server (llama.cpp's
// llama-server, say): every turn, the body the proxy forwarded is sent
// again straight to the upstream (with cache_prompt off in both), so both
// sides ask the upstream for the same work. Every request crosses a
// loopback hop that counts the proxy's requests by path (round trips per
// turn: /tokenize, /apply-template, ...) and, with --hop-delay, adds a
// latency to each, as a remote upstream would. --local-vocab counts tokens
// in-process with the vocabulary of the model file /props names, as
// `megacontext serve` does when it can read it (needs `make native`).
//
//	go run ./tools/bench --history 20000 --turns 100 --hop-delay 20ms
//	go run ./tools/bench --upstream http://127.0.0.1:8080 --history 20000 --turns 100 --max-tokens 8 --words 30
//
// With --responses, each turn also sends the same conversation through the
// proxy's /v1/responses (the messages as input items, to a MegaContext
// preloaded with the same history), and the report adds its latency and
// its difference from the same request through chat completions.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/store"
	"github.com/megacontext/megacontext/proxy"
)

// cfg holds the flags for real upstreams and remote hops.
var cfg struct {
	// upstream is the --upstream URL; empty runs the fakellama fixture.
	upstream string
	// hopDelay is the latency the hop adds to each request.
	hopDelay time.Duration
	// maxTokens is max_tokens of each chat request.
	maxTokens int
	// words is the length of each user message in words.
	words int
	// localVocab counts with the upstream model file's vocabulary.
	localVocab bool
	// assets gives the engine the installed WordNet and GloVe (./.wordnet,
	// ./.glove), as serve's auto settings do; default off (the lexical path).
	assets bool
}

func main() {
	history := flag.Int("history", 100_000, "tokens of history to preload into the MegaContext")
	turns := flag.Int("turns", 200, "chat turns to measure")
	nctx := flag.Int("n-ctx", 8192, "upstream context size")
	stream := flag.Bool("stream", false, "stream responses")
	jsonOut := flag.Bool("json", false, "print one JSON object")
	estimate := flag.Bool("estimate", false, "count tokens with the pure-Go estimate instead of the upstream's /tokenize")
	diffs := flag.Bool("diffs", false, "print where every 20th prompt first differs from the previous one")
	render := flag.String("render", memory.RenderOutline, "engine memory layout: chronological or outline")
	resendMode := flag.Bool("resend", false, "a chat UI's pattern: one conversation of --history tokens resent whole every turn; reports the proxy's own time against a short conversation's")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured turns to this file")
	sync := flag.String("sync", string(store.SyncSecond), "store durability: second (fsync once a second) or always (fsync every write)")
	responses := flag.Bool("responses", false, "also send each turn through /v1/responses and compare it with chat completions")
	replicas := flag.Int("replicas", 0, "measure the real binary as deployed: this many replica processes on --store (round robin), the throughput of --clients, RSS per replica")
	storeKind := flag.String("store", "buntdb", "with --replicas: buntdb (one replica), postgres (a durable throwaway server), or both: one embedded replica beside --replicas on PostgreSQL, every turn sent to both (the difference at the same load)")
	clients := flag.Int("clients", 8, "with --replicas: concurrent clients of the throughput phase")
	perClient := flag.Int("client-turns", 25, "with --replicas: turns each client sends in the throughput phase")
	cacheBytes := flag.Int64("cache-bytes", 0, "with --replicas: memory.cache_bytes of each replica, the bound of its cache of loaded contexts (0: the default, 256 MiB)")
	syncCommit := flag.String("synchronous-commit", "auto", "with --store postgres: the replicas' store.synchronous_commit (auto follows --sync: second as off, always as on; or on, off, local...)")
	pgStats := flag.Bool("pg-stats", false, "with --store postgres: break the database's side of the latency phase down by statement (pg_stat_statements) and WAL flush")
	focusAB := flag.Bool("focus", false, "A/B in one run: the same turns through a proxy whose focus telemetry and kept windows are off and one where they are on; reports what they add per request")
	flag.StringVar(&cfg.upstream, "upstream", "", "a running OpenAI-compatible server to measure against instead of the fakellama fixture")
	flag.DurationVar(&cfg.hopDelay, "hop-delay", 0, "latency added to every request to the upstream (a remote hop)")
	flag.IntVar(&cfg.maxTokens, "max-tokens", 256, "max_tokens of every chat request")
	flag.IntVar(&cfg.words, "words", 50, "words per user message")
	flag.BoolVar(&cfg.assets, "assets", false, "give the engine the installed WordNet and GloVe (make assets), as serve does when they are present")
	flag.BoolVar(&cfg.localVocab, "local-vocab", false, "count tokens with the vocabulary of the model file the upstream's /props names (native layer)")
	flag.Parse()
	cleanUpOnSignal()
	if *replicas > 0 && *storeKind == "both" {
		b := pairedBench{n: *replicas, history: *history, turns: *turns, sync: *sync, synchronousCommit: *syncCommit}
		if err := b.run(*jsonOut); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *replicas > 0 {
		b := replicaBench{n: *replicas, history: *history, turns: *turns, clients: *clients, perClient: *perClient, kind: *storeKind, sync: *sync, synchronousCommit: *syncCommit, pgStats: *pgStats, cacheBytes: *cacheBytes}
		if err := b.run(*jsonOut); err != nil {
			log.Fatal(err)
		}
		return
	}
	profile = *cpuProfile
	if *focusAB {
		if err := focusCost(*history, *turns, *nctx, *jsonOut); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *resendMode {
		if err := resend(*history, *turns, *nctx, *jsonOut, *estimate, *render); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(*history, *turns, *nctx, *stream, *jsonOut, *estimate, *diffs, *render, store.Sync(*sync), *responses); err != nil {
		log.Fatal(err)
	}
}

// profile is the --cpuprofile file; startProfile starts it once the
// measured turns begin and returns what stops it.
var profile string

func startProfile() (stop func(), err error) {
	if profile == "" {
		return func() {}, nil
	}
	f, err := os.Create(profile)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

var words = strings.Fields(`the garden river mountain story window paper music kitchen travel winter summer market
bridge forest village teacher student engine yellow orange purple quiet gentle rapid ancient modern coffee bread
letter journey harbor island valley castle lantern mirror pocket ribbon saddle thunder meeting budget project`)

func sentence(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = words[r.IntN(len(words))]
	}
	return strings.Join(w, " ") + "."
}

// preloadHistory imports the same chats of random sentences into every
// key until the first holds history tokens, one chat an hour.
func preloadHistory(eng *memory.Engine, keys []memory.Key, history int, r *rand.Rand) error {
	for s := 0; ; s++ {
		st, err := eng.Stats(keys[0])
		if err == nil && st.Tokens >= history {
			return nil
		}
		var msgs []memory.Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, memory.Message{Role: "user", Text: sentence(r, 40)}, memory.Message{Role: "assistant", Text: sentence(r, 60)})
		}
		for _, k := range keys {
			if _, err := eng.Import(memory.Key{Tenant: k.Tenant, Context: k.Context, Thread: fmt.Sprint(s)}, msgs, time.Now().Add(-time.Duration(1000-s)*time.Hour)); err != nil {
				return err
			}
		}
	}
}

func run(history, turns, nctx int, stream, jsonOut, estimate, showDiffs bool, render string, sync store.Sync, responses bool) error {
	rg, err := newRig(nctx, estimate, 5*time.Second, memory.Options{Render: render, Sync: sync})
	if err != nil {
		return err
	}
	defer rg.Close()
	fake, eng, counter, hp := rg.fake, rg.eng, rg.counter, rg.hop
	key := memory.Key{Tenant: "default", Context: "bench"}
	// The responses turns go to a twin MegaContext with the same history.
	rkey := memory.Key{Tenant: "default", Context: "bench-responses"}
	keys := []memory.Key{key}
	if responses {
		keys = append(keys, rkey)
	}
	r := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	if err := preloadHistory(eng, keys, history, r); err != nil {
		return err
	}
	preload := time.Since(start)
	proxyURL, stop, err := rg.serve(proxy.Options{})
	if err != nil {
		return err
	}
	defer stop()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	var direct, via, overhead, viaResp, respOverhead, respMinusChat []float64
	// CPU time of the whole process (client, proxy, fixture) per request,
	// chat and responses, with --responses.
	var cpuChat, cpuResp, cpuDiff []float64
	// The proxy's own time before forwarding (X-MegaContext-Overhead-Ms).
	var preChat, preResp []float64
	// The proxy's own time before forwarding, every turn.
	var before []float64
	var msgs []map[string]string
	msgs = append(msgs, map[string]string{"role": "system", "content": "You are a helpful assistant."})
	directHdr := map[string]string{directHeader: "1"}
	for t := 0; t < turns+5; t++ {
		msgs = append(msgs, map[string]string{"role": "user", "content": sentence(r, cfg.words)})
		req := map[string]any{"model": "m", "messages": msgs, "max_tokens": cfg.maxTokens, "stream": stream}
		if fake == nil {
			// Both sides must ask the same work of a real upstream.
			req["cache_prompt"], req["temperature"] = false, 0
		}
		body, _ := json.Marshal(req)
		// The proxy's round trips of the previous turn, its reply's storage
		// included, end where this turn starts.
		if t > 5 {
			hp.record(hp.take())
		} else {
			hp.take()
		}
		var d float64
		if fake != nil {
			req["bench_direct"] = true
			directBody, _ := json.Marshal(req)
			if d, _, err = post(client, hp.url+"/v1/chat/completions", directBody, directHdr); err != nil {
				return fmt.Errorf("direct: %w", err)
			}
		}
		// The preloaded history lives in MegaContext "bench".
		c0 := cpuMs()
		v, reply, err := post(client, proxyURL+"/v1/chat/completions", body, map[string]string{"X-MegaContext-Id": key.Context})
		if err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
		cChat, hChat := cpuMs()-c0, lastOverhead
		if fake == nil {
			// The body the proxy forwarded, straight to the upstream.
			if d, _, err = post(client, hp.url+"/v1/chat/completions", hp.lastChatBody(), directHdr); err != nil {
				return fmt.Errorf("direct: %w", err)
			}
		}
		if responses {
			// The same conversation as Responses API input items.
			rbody, _ := json.Marshal(map[string]any{"model": "m", "input": msgs, "max_output_tokens": 256, "stream": stream, "bench_responses": true})
			c0 := cpuMs()
			vr, rreply, err := post(client, proxyURL+"/v1/responses", rbody, map[string]string{"X-MegaContext-Id": rkey.Context})
			if err != nil {
				return fmt.Errorf("proxy responses: %w", err)
			}
			cResp, hResp := cpuMs()-c0, lastOverhead
			if rreply != reply {
				return fmt.Errorf("responses answered %q where chat answered %q", rreply, reply)
			}
			if t >= 5 {
				viaResp, respOverhead, respMinusChat = append(viaResp, vr), append(respOverhead, vr-d), append(respMinusChat, vr-v)
				cpuChat, cpuResp, cpuDiff = append(cpuChat, cChat), append(cpuResp, cResp), append(cpuDiff, cResp-cChat)
				preChat, preResp = append(preChat, hChat), append(preResp, hResp)
			}
		}
		msgs = append(msgs, map[string]string{"role": "assistant", "content": reply})
		if t >= 5 { // warm-up turns are not counted
			direct, via, overhead = append(direct, d), append(via, v), append(overhead, v-d)
			before = append(before, hChat)
		}
		if len(msgs) > 60 { // a new chat now and then keeps direct requests inside n_ctx
			msgs = msgs[:1]
		}
	}
	// Prompt-cache reuse: the share of each forwarded prompt that repeats
	// the previous turn's prompt from its first token (what llama.cpp's
	// cache_prompt and vLLM's prefix caching skip recomputing).
	var cache []float64
	prev := ""
	var seen []fakellama.Request
	if fake != nil {
		seen = fake.Requests()
	}
	for _, rq := range seen {
		if bytes.Contains(rq.Body, []byte(`"bench_direct"`)) || bytes.Contains(rq.Body, []byte(`"bench_responses"`)) || rq.Prompt == "" {
			continue
		}
		if prev != "" {
			p := 0
			for p < len(prev) && p < len(rq.Prompt) && prev[p] == rq.Prompt[p] {
				p++
			}
			cache = append(cache, float64(fakellama.CountTokens(rq.Prompt[:p]))/float64(max(1, fakellama.CountTokens(rq.Prompt))))
			if showDiffs && len(cache)%20 == 0 {
				lo := max(0, p-80)
				fmt.Printf("--- diff at %d/%d\nprev: %q\ncur:  %q\n", p, len(rq.Prompt), prev[lo:min(len(prev), p+120)], rq.Prompt[lo:min(len(rq.Prompt), p+120)])
			}
		}
		prev = rq.Prompt
	}
	st, _ := eng.Stats(key)
	trips := hp.perTurnStats()
	res := map[string]any{
		"round_trips_per_turn": trips, "hop_delay_ms": float64(cfg.hopDelay.Microseconds()) / 1000,
		"prompt_cache_reuse_p50": pct(cache, 50),
		"history_tokens":         st.Tokens, "turns": turns, "stream": stream, "sync": sync, "preload_s": preload.Seconds(),
		"direct_ms_p50": pct(direct, 50), "direct_ms_p99": pct(direct, 99),
		"proxy_ms_p50": pct(via, 50), "proxy_ms_p99": pct(via, 99),
		"overhead_ms_p50": pct(overhead, 50), "overhead_ms_p99": pct(overhead, 99),
		"ratio_p50":             pct(via, 50) / pct(direct, 50),
		"before_forward_ms_p50": pct(before, 50), "before_forward_ms_p99": pct(before, 99),
	}
	if responses {
		res["responses_ms_p50"], res["responses_ms_p99"] = pct(viaResp, 50), pct(viaResp, 99)
		res["responses_overhead_ms_p50"], res["responses_overhead_ms_p99"] = pct(respOverhead, 50), pct(respOverhead, 99)
		res["responses_minus_chat_ms_p50"] = pct(viaResp, 50) - pct(via, 50)
		res["responses_minus_chat_paired_ms_p50"] = pct(respMinusChat, 50)
		res["cpu_chat_ms_p50"], res["cpu_responses_ms_p50"], res["cpu_responses_minus_chat_paired_ms_p50"] = pct(cpuChat, 50), pct(cpuResp, 50), pct(cpuDiff, 50)
		res["before_forward_chat_ms_p50"], res["before_forward_responses_ms_p50"] = pct(preChat, 50), pct(preResp, 50)
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("history %d tokens, %d turns (stream=%v, tokens: %s, sync: %s), preload %.1fs\n", st.Tokens, turns, stream, counter.Name(), sync, preload.Seconds())
	fmt.Printf("direct to upstream   p50 %6.2f ms  p99 %6.2f ms\n", pct(direct, 50), pct(direct, 99))
	fmt.Printf("through megacontext  p50 %6.2f ms  p99 %6.2f ms\n", pct(via, 50), pct(via, 99))
	fmt.Printf("added per request    p50 %6.2f ms  p99 %6.2f ms  (ratio p50 %.2fx)\n", pct(overhead, 50), pct(overhead, 99), pct(via, 50)/pct(direct, 50))
	fmt.Printf("before forwarding    p50 %6.2f ms  p99 %6.2f ms  (X-MegaContext-Overhead-Ms)\n", pct(before, 50), pct(before, 99))
	if fake != nil {
		fmt.Printf("prompt shared with the previous turn's prompt (prefix): p50 %.0f%%, p10 %.0f%%\n", 100*pct(cache, 50), 100*pct(cache, 10))
	}
	paths := make([]string, 0, len(trips))
	for p := range trips {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	fmt.Printf("proxy round trips to the upstream per turn (hop delay %v), mean / max:\n", cfg.hopDelay)
	for _, p := range paths {
		fmt.Printf("  %-28s %6.2f / %.0f\n", p, trips[p][0], trips[p][1])
	}
	if responses {
		fmt.Printf("/v1/responses        p50 %6.2f ms  p99 %6.2f ms  (added p50 %.2f ms, p99 %.2f ms)\n", pct(viaResp, 50), pct(viaResp, 99), pct(respOverhead, 50), pct(respOverhead, 99))
		fmt.Printf("responses - chat     p50 %+6.3f ms  (paired per turn: p50 %+.3f ms)\n", pct(viaResp, 50)-pct(via, 50), pct(respMinusChat, 50))
		fmt.Printf("CPU per request      chat p50 %.3f ms, responses p50 %.3f ms (paired per turn: p50 %+.3f ms)\n", pct(cpuChat, 50), pct(cpuResp, 50), pct(cpuDiff, 50))
		fmt.Printf("before forwarding    chat p50 %.3f ms, responses p50 %.3f ms (X-MegaContext-Overhead-Ms)\n", pct(preChat, 50), pct(preResp, 50))
	}
	return nil
}

// lastOverhead is the X-MegaContext-Overhead-Ms of the last answer post
// read: the proxy's own time before forwarding.
var lastOverhead float64

// post sends a chat or responses request and returns its latency in ms and
// the reply text.
func post(c *http.Client, url string, body []byte, hdr map[string]string) (float64, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err == nil {
		lastOverhead, _ = strconv.ParseFloat(resp.Header.Get("X-MegaContext-Overhead-Ms"), 64)
	}
	if err != nil {
		return 0, "", err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	ms := float64(time.Since(t0).Microseconds()) / 1000
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != 200 {
		return 0, "", fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	var reply string
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("data:")) || bytes.HasPrefix(bytes.TrimSpace(data), []byte("event:")) {
		for _, line := range strings.Split(string(data), "\n") {
			var chunk struct {
				Type    string `json:"type"`
				Delta   string `json:"delta"`
				Choices []struct {
					Delta struct{ Content string } `json:"delta"`
				} `json:"choices"`
			}
			if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &chunk) != nil {
				continue
			}
			if len(chunk.Choices) > 0 {
				reply += chunk.Choices[0].Delta.Content
			} else if chunk.Type == "response.output_text.delta" {
				reply += chunk.Delta
			}
		}
	} else {
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Output []struct {
				Content []struct{ Text string } `json:"content"`
			} `json:"output"`
		}
		if err := json.Unmarshal(data, &out); err != nil || len(out.Choices)+len(out.Output) == 0 {
			return 0, "", fmt.Errorf("bad response: %s", data)
		}
		if len(out.Choices) > 0 {
			reply = out.Choices[0].Message.Content
		} else if len(out.Output[0].Content) > 0 {
			reply = out.Output[0].Content[0].Text
		}
	}
	return ms, reply, nil
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}
