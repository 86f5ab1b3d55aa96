package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// Template costs assumed when the upstream cannot measure its template.
const (
	defaultPerMessage    = 8
	defaultTemplateFixed = 16
	// maxBufferedBody bounds a non-streamed upstream body.
	maxBufferedBody = 64 << 20
)

// exchange is one client request on its way through memory to the
// upstream: what the chat and responses endpoints hand to forward, which
// does the rest the same way for both.
type exchange struct {
	// key is the MegaContext (and thread hint) of the request.
	key memory.Key
	// scopes are the caller's policy clearances.
	scopes []string
	// messages is the whole conversation as memory sees it.
	messages []memory.Message
	// decode, when set, decodes the messages that arrive undecoded (see
	// memory.Request.Decode).
	decode memory.Decoder
	// maxTokens is the client's output limit; 0 when it set none.
	maxTokens int
	// maxTokensField names the body field that limits output; when the
	// client set no limit, forward sets it to the budget's reservation.
	maxTokensField string
	// tools is the JSON text of the tool schemas, charged to the budget.
	tools string
	// extra is tokens the rendered body adds beyond the window, taken off
	// the budget.
	extra int
	// path is the upstream path the rendered body is posted to.
	path string
	// mounts are the memories the window also draws on (mountsFor).
	mounts []string
	// keep, set by forward, hands the window sent to the engine's keeper
	// (kept windows, focus telemetry); finish runs it once the answer is
	// relayed, so that the keeper's work never overlaps the exchange.
	keep func()
	// render builds the upstream body from an assembled window; it also
	// returns the policy actions taken on the live turn.
	render func(w *memory.Window) ([]byte, []policy.Hit, error)
}

// resolveKey picks the MegaContext: the first configured header with a
// value, else the request's user field, else "default". explicit is false
// for the default.
func (s *Server) resolveKey(ctx *fasthttp.RequestCtx, tenant, user string) (k memory.Key, explicit bool) {
	k = memory.Key{Tenant: tenant, Context: "default"}
	for _, h := range s.opts.ContextHeaders {
		if v := strings.TrimSpace(string(ctx.Request.Header.Peek(h))); v != "" {
			k.Context, explicit = v, true
			break
		}
	}
	if !explicit && user != "" {
		k.Context, explicit = user, true
	}
	for _, h := range s.opts.ThreadHeaders {
		if v := strings.TrimSpace(string(ctx.Request.Header.Peek(h))); v != "" {
			k.Thread = v
			break
		}
	}
	return k, explicit
}

// errNoContextID answers a request that names no MegaContext while
// memory.require_id is on.
var errNoContextID = &apiError{status: 400, message: "no MegaContext id: send the X-MegaContext-Id header or the request's user field (this proxy sets memory.require_id, so requests do not share the default memory)", typ: "invalid_request_error", param: "X-MegaContext-Id", code: "missing_context_id"}

// budget is the token budget of one request. Its public figure, prompt(),
// is the one number a budget means everywhere: the
// X-MegaContext-Budget-Tokens header, a 400's message and the dry run's
// {"budget": N}.
type budget struct {
	// nctx is the model's context size.
	nctx int
	// reserve is the output reservation (max_tokens or the default).
	reserve int
	// tools is the tool schemas' cost.
	tools int
	// fixed is the chat template's fixed cost, charged once per prompt.
	fixed int
	// perMessage is the template's cost per message.
	perMessage int
	// total is what the engine may spend on messages: prompt() - fixed.
	total int
}

// prompt is the budget as reported: the tokens the whole prompt may use,
// the template's fixed cost included (n_ctx - reserve - tools - margin).
func (b budget) prompt() int { return b.total + b.fixed }

// withPrompt is b with its public figure set to n (a dry run's budget).
func (b budget) withPrompt(n int) budget {
	b.total = n - b.fixed
	return b
}

// minPrompt is the least budget, as the engine counts it, worth
// assembling a window for.
const minPrompt = 64

// budgetFor computes the prompt budget of a request that reserves
// maxTokens for output (0: the default) and sends the given tool schemas.
func (s *Server) budgetFor(ctx context.Context, maxTokens int, tools string) budget {
	info := s.upstreamInfo(ctx)
	b := budget{nctx: s.opts.NCtx, reserve: maxTokens, perMessage: info.TemplateOverhead.PerMessage, fixed: info.TemplateOverhead.Fixed}
	if b.nctx <= 0 {
		b.nctx = info.NCtx
	}
	if b.nctx <= 0 {
		b.nctx = s.opts.DefaultNCtx
	}
	full := s.learned.effective(b.nctx, 0)
	if b.reserve <= 0 {
		b.reserve = min(s.opts.DefaultMaxTokens, full/4)
	}
	// A request's share of a KV pool its slots share, but never less than
	// the least a window needs.
	b.nctx = max(s.learned.effective(b.nctx, info.Slots), min(full, b.reserve+defaultTemplateFixed+s.opts.SafetyMargin+minPrompt))
	if b.perMessage <= 0 {
		b.perMessage = defaultPerMessage
	}
	if b.fixed <= 0 {
		b.fixed = defaultTemplateFixed
	}
	if tools != "" {
		b.tools = s.eng.Counter().Count(tools) + 16
	}
	b.total = b.nctx - b.reserve - b.tools - b.fixed - s.opts.SafetyMargin
	return b
}

// forward assembles the exchange's window and posts the rendered body
// upstream, once more with a smaller window when the upstream answers
// that the prompt did not fit. It returns the upstream response (any
// status) and the window it was given; on failure it has answered the
// client itself and returns a nil response.
func (s *Server) forward(ctx *fasthttp.RequestCtx, cctx context.Context, start time.Time, x *exchange) (*upstream.Response, *memory.Window) {
	release := s.learned.track()
	b := s.budgetFor(cctx, x.maxTokens, x.tools)
	b.total -= x.extra
	if b.total < minPrompt {
		release()
		writeError(ctx, errNoRoom(b))
		return nil, nil
	}
	for try := 1; ; try++ {
		resp, w, refusal, aerr := s.attempt(ctx, cctx, start, x, b, try == 1, try < maxContextAttempts)
		if aerr != nil {
			release()
			s.logWindow(x.key, b, w, start, aerr.status)
			writeError(ctx, aerr)
			return nil, nil
		}
		if resp != nil {
			s.logWindow(x.key, b, w, start, resp.Status)
			meta := memory.WindowMeta{Budget: b.prompt(), Tokens: w.Tokens + b.fixed, Status: resp.Status}
			x.keep = func() { s.eng.KeepWindow(w, meta) }
			s.m.windowTokens.Observe(float64(w.Tokens))
			s.m.historyTokens.Observe(float64(w.HistoryTokens))
			s.m.expansions.Add(float64(w.Expanded))
			resp.Body = releasing{resp.Body, release}
			return resp, w
		}
		// The window did not fit. Learn what the refusal says about the
		// context (a smaller n_ctx, a shared KV pool) and budget again; if
		// it says nothing new, the upstream counted more than we did:
		// shrink by the overshoot it reports, at least a quarter.
		s.m.retries.Inc()
		prev := b
		s.learn(cctx, refusal, prev.nctx)
		b = s.budgetFor(cctx, x.maxTokens, x.tools)
		if b.total >= prev.total {
			b = prev
			b.total -= max(prev.total/4, s.overshoot(refusal, prev))
		}
		s.log.Info("upstream context exceeded; retrying with a smaller window", "context", x.key.Context, "budget", b.prompt(), "n_ctx", b.nctx)
		if b.total < minPrompt {
			release()
			writeError(ctx, &apiError{status: 400, message: fmt.Sprintf("the conversation does not fit the model's context even after shrinking the window to a budget of %d tokens", b.prompt()), typ: "invalid_request_error", param: "messages", code: "context_length_exceeded"})
			return nil, nil
		}
	}
}

// overshoot is how many tokens a refused window was over, by llama.cpp's
// n_prompt_tokens and n_ctx, with the output reservation and the margin;
// 0 when the refusal does not say.
func (s *Server) overshoot(refusal []byte, b budget) int {
	np, nc := gjson.GetBytes(refusal, "error.n_prompt_tokens").Int(), gjson.GetBytes(refusal, "error.n_ctx").Int()
	if np <= 0 || nc <= 0 {
		return 0
	}
	return int(np-nc) + b.reserve + s.opts.SafetyMargin
}

// errNoRoom answers a request whose output reservation leaves no budget.
func errNoRoom(b budget) *apiError {
	return &apiError{status: 400, message: fmt.Sprintf("max_tokens (%d) leaves no room for the prompt in the model's context of %d tokens (budget %d tokens)", b.reserve, b.nctx, b.prompt()), typ: "invalid_request_error", param: "max_tokens", code: "context_length_exceeded"}
}

// logWindow writes the debug line of one request: what the window held and
// cost, never text.
func (s *Server) logWindow(k memory.Key, b budget, w *memory.Window, start time.Time, status int) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"tenant", k.Tenant, "context", k.Context, "budget", b.prompt()}
	if w != nil {
		attrs = append(attrs, "window_tokens", w.Tokens+b.fixed, "memory_tokens", w.MemoryTokens, "history_tokens", w.HistoryTokens,
			"expanded", w.Expanded, "omitted_blocks", w.Omitted, "new_messages", w.NewMessages)
	}
	attrs = append(attrs, "overhead_ms", float64(time.Since(start).Microseconds())/1000, "upstream_status", status)
	s.log.Debug("window", attrs...)
}

// plan is the one way from an exchange to what the upstream receives, for
// live requests and dry runs alike: assemble the window within b, then
// render the body. A dry run stores nothing (it ingests the exchange's new
// messages in memory only, exactly as the live request would).
func (s *Server) plan(x *exchange, b budget, dry bool) (*memory.Window, []byte, []policy.Hit, *apiError) {
	w, err := s.eng.Prepare(memory.Request{Key: x.key, Messages: x.messages, Decode: x.decode, Budget: b.total, PerMessage: b.perMessage, TailPercent: s.opts.TailPercent, Scopes: x.scopes, DryRun: dry, AsLive: dry, Explain: dry, Mounts: x.mounts})
	if err != nil {
		return nil, nil, nil, s.memoryError(err, b)
	}
	body, liveHits, err := x.render(w)
	if err == nil && x.maxTokens == 0 && x.maxTokensField != "" {
		// The budget reserved this much for the reply: without a limit a
		// local model may generate until its whole context is full.
		body, err = sjson.SetBytes(body, x.maxTokensField, b.reserve)
	}
	if err != nil {
		var aerr *apiError
		if errors.As(err, &aerr) {
			return w, nil, nil, aerr
		}
		s.log.Error("rewrite request", "err", err)
		return w, nil, nil, &apiError{status: 500, message: "internal error rewriting the request (the proxy's log says why)", typ: "server_error", code: "internal_error"}
	}
	return w, body, liveHits, nil
}

// attempt is one try of forward (first: the first one): assemble the
// window within b, render, post. It returns the response to relay, or (nil
// response, nil error) with the upstream's error body when it refused the
// prompt as too long (only when canRetry: otherwise the refusal is
// relayed), or the error to answer. A llama.cpp stream whose first event is
// that refusal counts as one. Whatever it does not return it has closed.
func (s *Server) attempt(ctx *fasthttp.RequestCtx, cctx context.Context, start time.Time, x *exchange, b budget, first, canRetry bool) (*upstream.Response, *memory.Window, []byte, *apiError) {
	w, body, liveHits, aerr := s.plan(x, b, false)
	if aerr != nil {
		return nil, w, nil, aerr
	}
	if first {
		s.m.ingested.Add(float64(w.NewMessages))
		s.audit(x.key, append(liveHits, w.Hits...))
		s.m.overhead.Observe(time.Since(start).Seconds())
	}
	setWindowHeaders(ctx, x.key, w, b, time.Since(start))
	resp, err := s.up.Do(cctx, "POST", x.path, s.forwardHeaders(ctx), body)
	if err != nil {
		aerr := s.upstreamFailure(err)
		return nil, w, nil, aerr
	}
	if !canRetry || resp.Status < 400 {
		if canRetry && resp.IsEventStream() && s.upstreamInfo(cctx).Kind == upstream.KindLlamaCpp {
			refusal, replay := firstEventRefusal(resp)
			if refusal != nil {
				return nil, w, refusal, nil
			}
			resp = replay
		}
		return resp, w, nil, nil
	}
	errBody, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if !upstream.IsContextLengthError(resp.Status, errBody) {
		return &upstream.Response{Status: resp.Status, Header: resp.Header, Body: io.NopCloser(strings.NewReader(string(errBody)))}, w, nil, nil
	}
	return nil, w, errBody, nil
}

// storeReply returns the callback that stores an upstream reply to the
// window's last message in memory. relay calls it before the reply's last
// bytes go out (the plain body, or a stream's [DONE]), so a client that has
// the whole answer can count on memory having it too; when it fails, the
// client gets an error instead of those bytes. If the client's next turn
// already stored the same message, it is a no-op.
func (s *Server) storeReply(key memory.Key, w *memory.Window) func(msg upstream.Message, complete bool) error {
	parent, since := w.LastSeq, w.NextSeq
	return func(msg upstream.Message, complete bool) error {
		if msg.Error != "" && upstream.IsSharedPoolExhausted([]byte(msg.Error)) {
			// Generation overflowed a KV pool shared with other requests.
			s.learnSharedPool()
		}
		if parent < 0 || (msg.Content == "" && len(msg.ToolCalls) == 0) {
			return nil
		}
		m, err := responseMessage(msg)
		if err != nil {
			s.log.Error("response not stored", "context", key.Context, "err", err)
			return err
		}
		s.ingesting.RLock()
		defer s.ingesting.RUnlock()
		if err := s.eng.AppendResponse(key, parent, since, m, !complete); err != nil {
			s.log.Error("store response", "context", key.Context, "err", err)
			return err
		}
		s.m.ingested.Inc()
		return nil
	}
}

func (s *Server) memoryError(err error, b budget) *apiError {
	var aerr *apiError
	switch {
	case errors.As(err, &aerr): // a message that did not decode
		return aerr
	case errors.Is(err, memory.ErrTooLong):
		return &apiError{status: 400, message: fmt.Sprintf("the latest message is too long for the model's context: a budget of %d tokens for the prompt (context %d, reserved output %d)", b.prompt(), b.nctx, b.reserve), typ: "invalid_request_error", param: "messages", code: "context_length_exceeded"}
	case errors.Is(err, memory.ErrMountNotFound):
		return &apiError{status: 404, message: strings.TrimPrefix(err.Error(), "memory: "), typ: "invalid_request_error", param: MountHeader, code: "mount_not_found"}
	case errors.Is(err, memory.ErrNotFound):
		return &apiError{status: 404, message: "no such MegaContext", typ: "invalid_request_error", code: "not_found"}
	case errors.Is(err, memory.ErrBadKey):
		return &apiError{status: 400, message: err.Error(), typ: "invalid_request_error", param: "X-MegaContext-Id", code: "invalid_value"}
	case errors.Is(err, memory.ErrBadMessage):
		return badRequest("messages", "%s", strings.TrimPrefix(err.Error(), "memory: "))
	default:
		s.log.Error("memory", "err", err)
		return storeFailure(err)
	}
}

// storeFailure is the answer when memory could not be read or written. It
// names the cause (a full disk) but never the data path or storage keys,
// which the log has.
func storeFailure(err error) *apiError {
	if errors.Is(err, memory.ErrStoreTimeout) {
		// The database answered too slowly, which is not the same advice
		// as a database that is down: the write may have been committed,
		// and a resend is matched to it, never stored twice.
		return &apiError{status: 503, message: "the memory store did not answer in time (its database is overloaded or locked): this turn may not have been stored; resend it shortly (a stored turn is never stored twice)", typ: "server_error", code: "store_unavailable"}
	}
	if errors.Is(err, memory.ErrUnavailable) {
		return &apiError{status: 503, message: "the memory store is unavailable (its database cannot be reached): this turn was not stored; retry shortly", typ: "server_error", code: "store_unavailable"}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &apiError{status: 507, message: "the memory store is out of disk space: this turn was not stored", typ: "server_error", code: "insufficient_storage"}
	}
	return &apiError{status: 500, message: "the memory store failed: this turn was not stored (the proxy's log says why)", typ: "server_error", code: "store_error"}
}

func setWindowHeaders(ctx *fasthttp.RequestCtx, k memory.Key, w *memory.Window, b budget, overhead time.Duration) {
	h := &ctx.Response.Header
	h.Set("X-MegaContext-Id", k.Context)
	h.Set("X-MegaContext-History-Tokens", strconv.Itoa(w.HistoryTokens))
	h.Set("X-MegaContext-Window-Tokens", strconv.Itoa(w.Tokens+b.fixed))
	h.Set("X-MegaContext-Budget-Tokens", strconv.Itoa(b.prompt()))
	h.Set("X-MegaContext-Memory-Tokens", strconv.Itoa(w.MemoryTokens))
	h.Set("X-MegaContext-Expanded", strconv.Itoa(w.Expanded))
	h.Set("X-MegaContext-Omitted-Blocks", strconv.Itoa(w.Omitted))
	h.Set("X-MegaContext-New-Messages", strconv.Itoa(w.NewMessages))
	h.Set("X-MegaContext-Overhead-Ms", strconv.FormatFloat(float64(overhead.Microseconds())/1000, 'f', 3, 64))
}

// windowHeaders names the response headers setWindowHeaders sets, for
// CORS to expose.
var windowHeaders = []string{"X-MegaContext-Id", "X-MegaContext-History-Tokens", "X-MegaContext-Window-Tokens",
	"X-MegaContext-Budget-Tokens", "X-MegaContext-Memory-Tokens", "X-MegaContext-Expanded",
	"X-MegaContext-Omitted-Blocks", "X-MegaContext-New-Messages", "X-MegaContext-Overhead-Ms"}

// finish returns stop extended with the exchange's keep: what relay runs
// when the answer is out.
func (x *exchange) finish(stop func()) func() {
	return func() {
		stop()
		if x.keep != nil {
			x.keep()
		}
	}
}
