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

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy"
)

// focusCost measures what the focus telemetry, the kept windows and a pin
// add to a request: two proxies over the same preloaded history, one with
// memory.keep_windows -1 (all off) and no pin, one with the default and a
// pinned message, get the same turns, interleaved with the direct request
// turn by turn.
func focusCost(history, turns, nctx int, jsonOut bool) error {
	key := memory.Key{Tenant: "default", Context: "bench"}
	var urls [2]string
	var fakeURL string
	for i, keep := range []int{-1, memory.DefaultKeepWindows} {
		rg, err := newRig(nctx, true, 5*time.Second, memory.Options{KeepWindows: keep})
		if err != nil {
			return err
		}
		defer rg.Close()
		if err := preloadHistory(rg.eng, []memory.Key{key}, history, rand.New(rand.NewPCG(1, 2))); err != nil {
			return err
		}
		if keep > 0 {
			// A pinned message, so that pins are measured too.
			if _, err := rg.eng.AddPin(key, 1, 0, 0); err != nil {
				return err
			}
		}
		url, stop, err := rg.serve(proxy.Options{})
		if err != nil {
			return err
		}
		defer stop()
		if rg.fake == nil {
			return fmt.Errorf("--focus runs on the fakellama fixture, not --upstream")
		}
		urls[i], fakeURL = url, rg.fake.URL()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	r := rand.New(rand.NewPCG(3, 4))
	var added, own [2][]float64
	var msgs []map[string]string
	for t := 0; t < turns+5; t++ {
		msgs = append(msgs, map[string]string{"role": "user", "content": sentence(r, 50)})
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": msgs, "max_tokens": 256})
		d, reply, err := post(client, fakeURL+"/v1/chat/completions", body, nil)
		if err != nil {
			return fmt.Errorf("direct: %w", err)
		}
		var via [2]float64
		for i := range urls {
			// Alternate which proxy goes first, so that neither always
			// follows the other's background work.
			j := (i + t) % 2
			var ms float64
			if via[j], ms, err = postOverhead(client, urls[j]+"/v1/chat/completions", body, key.Context); err != nil {
				return fmt.Errorf("proxy: %w", err)
			}
			if t >= 5 {
				own[j] = append(own[j], ms)
			}
		}
		msgs = append(msgs, map[string]string{"role": "assistant", "content": reply})
		if t >= 5 {
			for i := range via {
				added[i] = append(added[i], via[i]-d)
			}
		}
		if len(msgs) > 60 {
			msgs = msgs[:0]
		}
	}
	off, on := pct(added[0], 50), pct(added[1], 50)
	ownOff, ownOn := pct(own[0], 50), pct(own[1], 50)
	res := map[string]any{"history_tokens": history, "turns": turns, "added_ms_p50_off": off, "added_ms_p50_on": on, "focus_cost_ms_p50": on - off,
		"overhead_ms_p50_off": ownOff, "overhead_ms_p50_on": ownOn, "focus_overhead_cost_ms_p50": ownOn - ownOff,
		"added_ms_p99_off": pct(added[0], 99), "added_ms_p99_on": pct(added[1], 99)}
	if jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("history %d tokens, %d turns\n", history, turns)
	fmt.Printf("added per request, telemetry, kept windows, pins off  p50 %6.3f ms  p99 %6.3f ms\n", off, pct(added[0], 99))
	fmt.Printf("added per request, on (keep_windows %d, one pin)      p50 %6.3f ms  p99 %6.3f ms\n", memory.DefaultKeepWindows, on, pct(added[1], 99))
	fmt.Printf("focus telemetry cost, whole request                p50 %+6.3f ms\n", on-off)
	fmt.Printf("X-MegaContext-Overhead-Ms (before forwarding)      p50 off %.3f ms, on %.3f ms: %+6.3f ms\n", ownOff, ownOn, ownOn-ownOff)
	return nil
}

// postOverhead posts a chat request to a proxy and returns its latency and
// the X-MegaContext-Overhead-Ms it reported, in ms.
func postOverhead(c *http.Client, url string, body []byte, id string) (float64, float64, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-MegaContext-Id", id)
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ms := float64(time.Since(t0).Microseconds()) / 1000
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	own, _ := strconv.ParseFloat(resp.Header.Get("X-MegaContext-Overhead-Ms"), 64)
	return ms, own, err
}
