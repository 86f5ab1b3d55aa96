package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// directHeader marks the bench's direct requests at the hop: they are not
// the proxy's round trips.
const directHeader = "X-Bench-Direct"

// helperPaths is the summary key of all the proxy's requests other than
// the chat completion itself (tokenize, apply-template, props, ...).
const helperPaths = "helpers"

// hop is a loopback reverse proxy between MegaContext (and the direct
// requests) and the upstream. It counts the proxy's requests by path and
// adds a fixed latency to every request, as a network hop to a remote
// upstream would.
type hop struct {
	delay time.Duration
	srv   *http.Server
	url   string

	mu       sync.Mutex       // guards the fields below
	counts   map[string]int   // the proxy's requests by path since the last take
	lastChat []byte           // body of the proxy's last chat request
	perTurn  map[string][]int // requests by path, one entry per recorded turn
	turns    int              // recorded turns
}

// startHop listens on a loopback port and forwards to target.
func startHop(target string, delay time.Duration) (*hop, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hop{delay: delay, url: "http://" + ln.Addr().String(), counts: map[string]int{}, perTurn: map[string][]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // relay streams as they come
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(directHeader) == "" {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
			h.mu.Lock()
			h.counts[r.URL.Path]++
			if strings.HasSuffix(r.URL.Path, "/chat/completions") {
				h.lastChat = body
			}
			h.mu.Unlock()
		}
		r.Header.Del(directHeader)
		if h.delay > 0 {
			time.Sleep(h.delay) // the simulated network latency
		}
		rp.ServeHTTP(w, r)
	})}
	go h.srv.Serve(ln)
	return h, nil
}

// take returns and resets the proxy's request counts since the last take.
func (h *hop) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.counts
	h.counts = map[string]int{}
	return out
}

// lastChatBody returns the body of the proxy's last chat request.
func (h *hop) lastChatBody() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lastChat
}

// record adds one measured turn's counts (from take).
func (h *hop) record(c map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c[helperPaths] = 0
	for p, n := range c {
		if p != helperPaths && !strings.HasSuffix(p, "/chat/completions") {
			c[helperPaths] += n
		}
	}
	for p, n := range c {
		for len(h.perTurn[p]) < h.turns {
			h.perTurn[p] = append(h.perTurn[p], 0) // a path first seen now
		}
		h.perTurn[p] = append(h.perTurn[p], n)
	}
	h.turns++
	for p, xs := range h.perTurn {
		if len(xs) < h.turns {
			h.perTurn[p] = append(xs, 0)
		}
	}
}

// perTurnStats is, per path, the mean and the maximum requests per turn.
func (h *hop) perTurnStats() map[string][2]float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][2]float64{}
	for p, xs := range h.perTurn {
		sum, mx := 0, 0
		for _, x := range xs {
			sum += x
			mx = max(mx, x)
		}
		if len(xs) > 0 {
			out[p] = [2]float64{float64(sum) / float64(len(xs)), float64(mx)}
		}
	}
	return out
}

func (h *hop) close() { _ = h.srv.Close() }
