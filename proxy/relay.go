package proxy

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/proxy/upstream"
)

// relay copies an upstream response to the client: event streams chunk by
// chunk as they arrive, other bodies whole. done, when set, receives the
// assembled assistant message after the body ends (complete is false for a
// stream cut before its end). stop releases the client watcher.
func (s *Server) relay(ctx *fasthttp.RequestCtx, resp *upstream.Response, stop func(), done func(msg upstream.Message, complete bool)) {
	for k, vs := range resp.Header {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Server") || strings.EqualFold(k, "Date") {
			continue
		}
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
	ctx.SetStatusCode(resp.Status)
	if resp.IsEventStream() && resp.Status < 400 {
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set("X-Accel-Buffering", "no")
		ctx.SetBodyStreamWriter(func(bw *bufio.Writer) {
			defer stop()
			defer resp.Body.Close()
			rd := upstream.NewSSEReader(resp.Body)
			var acc upstream.Accumulator
			clientGone := false
			for {
				ev, err := rd.Next()
				if len(ev.Raw) > 0 {
					if _, werr := bw.Write(ev.Raw); werr == nil {
						werr = bw.Flush()
						if werr != nil {
							clientGone = true
						}
					} else {
						clientGone = true
					}
					_ = acc.AddEvent(ev)
				}
				if err != nil || clientGone {
					if err != nil && !errors.Is(err, io.EOF) {
						s.log.Warn("stream from upstream ended with an error", "err", err)
						s.m.upstreamErrors.WithLabelValues("stream").Inc()
					}
					break
				}
			}
			msg := acc.Message()
			if done != nil {
				done(msg, !clientGone && (msg.Done || msg.FinishReason != ""))
			}
		})
		return
	}
	defer stop()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedBody))
	if err != nil {
		s.transportError(ctx, err)
		return
	}
	if resp.Status >= 400 {
		s.m.upstreamErrors.WithLabelValues(strconv.Itoa(resp.Status)).Inc()
		ctx.SetContentType("application/json")
		ctx.SetBody(upstream.OpenAIError(resp.Status, body))
		return
	}
	ctx.SetBody(body)
	if done != nil {
		if msg, err := upstream.FromCompletion(body); err == nil {
			done(msg, msg.FinishReason != "")
		}
	}
}
