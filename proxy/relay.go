package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// relay copies an upstream response to the client: event streams chunk by
// chunk as they arrive, other bodies whole. done, when set, receives the
// assembled assistant message before the answer's last bytes go out (the
// plain body, or a stream's [DONE]); complete is false for a stream cut
// before its end. When done fails (the reply could not be stored), the
// client gets an error instead of those last bytes. A stream the upstream
// cuts ends with an error event that the OpenAI SDKs raise. stop releases
// the client watcher.
func (s *Server) relay(ctx *fasthttp.RequestCtx, resp *upstream.Response, stop func(), done func(msg upstream.Message, complete bool) error) {
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
			s.relayStream(bw, resp, done)
		})
		return
	}
	defer stop()
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedBody+1))
	if err != nil {
		s.transportError(ctx, err)
		return
	}
	if len(body) > maxBufferedBody {
		s.m.upstreamErrors.WithLabelValues("too_large").Inc()
		s.log.Warn("upstream answer too large", "limit_bytes", maxBufferedBody)
		writeError(ctx, &apiError{status: 502, message: fmt.Sprintf("the upstream model server's answer exceeds %d MiB", maxBufferedBody>>20), typ: "server_error", code: upstream.CodeUpstreamError})
		return
	}
	if resp.Status >= 400 {
		s.m.upstreamErrors.WithLabelValues(strconv.Itoa(resp.Status)).Inc()
		ctx.SetContentType("application/json")
		ctx.SetBody(upstream.OpenAIError(resp.Status, body))
		return
	}
	if done != nil {
		msg, err := upstream.FromCompletion(body)
		switch {
		case msg.Error != "":
			s.m.upstreamErrors.WithLabelValues("error_body").Inc()
			writeError(ctx, &apiError{status: 502, message: "the upstream model server answered with an error: " + msg.Error, typ: "server_error", code: upstream.CodeUpstreamError})
			return
		case err != nil && !jsondepth.Valid(body):
			s.m.upstreamErrors.WithLabelValues("invalid_json").Inc()
			s.log.Warn("upstream answer is not JSON", "err", err)
			writeError(ctx, &apiError{status: 502, message: "the upstream model server's answer is not valid JSON", typ: "server_error", code: upstream.CodeUpstreamError})
			return
		case err == nil:
			if err := done(msg, msg.FinishReason != ""); err != nil {
				writeError(ctx, storeFailure(err))
				return
			}
		}
	}
	ctx.SetBody(body)
}

// relayStream copies an event stream as it arrives, holding back only its
// [DONE] until done has stored the reply.
func (s *Server) relayStream(bw *bufio.Writer, resp *upstream.Response, done func(msg upstream.Message, complete bool) error) {
	clientGone := false
	write := func(b []byte) {
		if clientGone {
			return
		}
		if _, err := bw.Write(b); err != nil || bw.Flush() != nil {
			clientGone = true
		}
	}
	rd := upstream.NewSSEReader(resp.Body)
	var (
		acc     upstream.Accumulator
		final   []byte // the [DONE] event, sent once the reply is stored
		readErr error
	)
	for !clientGone {
		ev, err := rd.Next()
		if len(ev.Raw) > 0 {
			_ = acc.AddEvent(ev)
			if acc.Done() {
				final = append([]byte(nil), ev.Raw...)
				break
			}
			write(ev.Raw)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
				s.log.Warn("stream from upstream ended with an error", "err", err)
				s.m.upstreamErrors.WithLabelValues("stream").Inc()
			}
			break
		}
	}
	msg := acc.Message()
	complete := !clientGone && (msg.Done || msg.FinishReason != "")
	var storeErr error
	if done != nil {
		storeErr = done(msg, complete)
	}
	switch {
	case clientGone:
	case storeErr != nil:
		write(sseError(storeFailure(storeErr)))
	case !complete && msg.Error == "":
		// The upstream went away mid-answer. Without an error event the
		// client would take the truncated text for the whole reply.
		if readErr == nil {
			s.m.upstreamErrors.WithLabelValues("stream").Inc()
		}
		write(sseError(streamCut(readErr)))
	case final != nil:
		write(final)
	}
	if final != nil {
		drainUpstream(resp.Body)
	}
}

// What an upstream may still send after its stream's [DONE] (normally only
// the end of its chunked body, already on its way) for drainUpstream to
// read before the connection is closed instead.
const (
	afterDoneWait  = 100 * time.Millisecond
	afterDoneBytes = 64 << 10
)

// drainUpstream reads what is left of an upstream stream after its [DONE],
// so that closing the body returns the connection to the pool: a body
// closed before its end closes the connection, and the next request to the
// upstream pays a new dial (on loopback, a tenth of a millisecond and more
// of the proxy's CPU, as much as translating a whole /v1/responses stream).
// The reply is stored and its last event written before: the wait is
// normally over by then. An upstream that sends more than afterDoneBytes,
// or nothing for afterDoneWait, has its connection closed as before.
func drainUpstream(body io.ReadCloser) {
	t := time.AfterFunc(afterDoneWait, func() { _ = body.Close() })
	defer t.Stop()
	_, _ = io.CopyN(io.Discard, body, afterDoneBytes)
}

// streamCut is the error event of a stream the upstream did not finish.
func streamCut(err error) *apiError {
	e := &apiError{status: 502, message: "the upstream model server's stream ended before the reply was complete", typ: "server_error", code: upstream.CodeUpstreamError}
	if err != nil {
		e.message += ": " + err.Error()
		if status, _ := upstream.FromTransportError(err); status == 504 {
			e.code = upstream.CodeUpstreamTimeout
		}
	}
	return e
}

// sseError renders an error as the event OpenAI's SDKs raise mid-stream:
// data: {"error": {...}}.
func sseError(e *apiError) []byte {
	var code any
	if e.code != "" {
		code = e.code
	}
	return append(append([]byte("data: "), upstream.ErrorJSON(e.message, e.typ, e.param, code)...), '\n', '\n')
}
