package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/megacontext/megacontext/integration/fakellama"
	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy"
)

// resend measures what a chat UI costs the proxy: the client holds one
// conversation of `history` tokens and resends all of it every turn. The
// proxy's own time per request (X-MegaContext-Overhead-Ms: parse,
// reconcile, ingest of the new message, window assembly, rewrite) is
// compared, turn by turn, with the same client's requests on a short
// conversation (a dozen messages) in another MegaContext: the baseline of
// a request whose reconcile costs next to nothing, in the same run.
func resend(history, turns, nctx int, jsonOut, estimate bool, render string) error {
	rg, err := newRig(nctx, estimate, time.Minute, memory.Options{Render: render})
	if err != nil {
		return err
	}
	defer rg.Close()
	eng, counter := rg.eng, rg.counter
	// 1M tokens in short messages is more messages than limits.max_messages
	// lets through by default: lifted here, this measures the worst case.
	base, stop, err := rg.serve(proxy.Options{MaxMessages: 1 << 20})
	if err != nil {
		return err
	}
	defer stop()
	url := base + "/v1/chat/completions"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

	r := rand.New(rand.NewPCG(3, 4))
	long := []map[string]string{{"role": "system", "content": "You are a helpful assistant."}}
	have := 0
	for have < history {
		u, a := sentence(r, 20), sentence(r, 60)
		long = append(long, map[string]string{"role": "user", "content": u}, map[string]string{"role": "assistant", "content": a})
		have += fakellama.CountTokens(u) + fakellama.CountTokens(a)
	}
	short := append([]map[string]string(nil), long[:13]...)
	// The first request stores the whole history (what the earlier turns
	// of a real chat did one by one).
	long = append(long, map[string]string{"role": "user", "content": sentence(r, 30)})
	t0 := time.Now()
	first, reply, err := chatTurn(client, url, "resend-long", long)
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	firstWall := time.Since(t0)
	long = append(long, map[string]string{"role": "assistant", "content": reply})

	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	var viaLong, viaShort, bodyMB []float64
	for t := 0; t < turns+3; t++ {
		long = append(long, map[string]string{"role": "user", "content": sentence(r, 30)})
		short = append(short, map[string]string{"role": "user", "content": sentence(r, 30)})
		lo, lreply, err := chatTurn(client, url, "resend-long", long)
		if err != nil {
			return fmt.Errorf("long conversation: %w", err)
		}
		so, sreply, err := chatTurn(client, url, "resend-short", short)
		if err != nil {
			return fmt.Errorf("short conversation: %w", err)
		}
		long = append(long, map[string]string{"role": "assistant", "content": lreply})
		short = append(short, map[string]string{"role": "assistant", "content": sreply})
		if len(short) > 15 {
			short = append(short[:11], short[13:]...) // a sliding short chat: its size stays put
		}
		if t >= 3 { // warm-up turns are not counted
			viaLong, viaShort = append(viaLong, lo.overheadMs), append(viaShort, so.overheadMs)
			bodyMB = append(bodyMB, float64(lo.bodyBytes)/1e6)
		}
	}
	st, _ := eng.Stats(memory.Key{Tenant: "default", Context: "resend-long"})
	res := map[string]any{
		"history_tokens": st.Tokens, "messages": len(long), "body_mb": pct(bodyMB, 50), "turns": turns,
		"first_request_s": firstWall.Seconds(), "first_overhead_ms": first.overheadMs,
		"resend_overhead_ms_p50": pct(viaLong, 50), "resend_overhead_ms_p99": pct(viaLong, 99),
		"short_overhead_ms_p50": pct(viaShort, 50), "short_overhead_ms_p99": pct(viaShort, 99),
		"ratio_p50": pct(viaLong, 50) / pct(viaShort, 50),
	}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("resent history %d tokens in %d messages (%.1f MB body), %d turns (tokens: %s)\n", st.Tokens, len(long), pct(bodyMB, 50), turns, counter.Name())
	fmt.Printf("first request (stores the whole history) %.2f s, of which proxy %.0f ms\n", firstWall.Seconds(), first.overheadMs)
	fmt.Printf("proxy time, whole history resent  p50 %7.2f ms  p99 %7.2f ms\n", pct(viaLong, 50), pct(viaLong, 99))
	fmt.Printf("proxy time, short conversation    p50 %7.2f ms  p99 %7.2f ms\n", pct(viaShort, 50), pct(viaShort, 99))
	fmt.Printf("ratio p50 %.2fx\n", pct(viaLong, 50)/pct(viaShort, 50))
	return nil
}

// turnResult is what one proxied chat request reported.
type turnResult struct {
	overheadMs float64
	bodyBytes  int
}

// chatTurn sends msgs to the proxy in MegaContext id and returns the
// proxy's reported overhead and the reply text.
func chatTurn(c *http.Client, url, id string, msgs []map[string]string) (turnResult, string, error) {
	body, err := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": 256})
	if err != nil {
		return turnResult{}, "", err
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return turnResult{}, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-MegaContext-Id", id)
	resp, err := c.Do(req)
	if err != nil {
		return turnResult{}, "", err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return turnResult{}, "", err
	}
	if resp.StatusCode != 200 {
		return turnResult{}, "", fmt.Errorf("status %d: %s", resp.StatusCode, data)
	}
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
		return turnResult{}, "", fmt.Errorf("bad response: %s", data)
	}
	ms, err := strconv.ParseFloat(resp.Header.Get("X-MegaContext-Overhead-Ms"), 64)
	if err != nil {
		return turnResult{}, "", fmt.Errorf("no overhead header: %w", err)
	}
	return turnResult{overheadMs: ms, bodyBytes: len(body)}, out.Choices[0].Message.Content, nil
}
