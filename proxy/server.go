// Package proxy is MegaContext's OpenAI-compatible HTTP front end on
// fasthttp: it rewrites each chat request's messages into a working window
// from memory, forwards it upstream, relays the answer (streams as they
// come) and ingests the response.
package proxy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// Options configure a Server.
type Options struct {
	Engine   *memory.Engine
	Upstream *upstream.Client
	Logger   *slog.Logger
	// NCtx overrides the upstream's context size when > 0.
	NCtx int
	// DefaultNCtx is used when discovery finds no context size.
	DefaultNCtx int
	// DefaultMaxTokens is reserved for output when a request sets no limit.
	DefaultMaxTokens int
	// SafetyMargin is kept free on top of the output reservation.
	SafetyMargin int
	// TailPercent caps the verbatim tail as a share of the budget.
	TailPercent int
	// MaxBodyBytes bounds request bodies; default 16 MiB.
	MaxBodyBytes int
	// MaxMessages bounds the messages of one chat request; default
	// DefaultMaxMessages.
	MaxMessages int
	// ContextHeaders name headers whose first non-empty value selects the MegaContext.
	ContextHeaders []string
	// ThreadHeaders name headers whose value separates threads (chat ids).
	ThreadHeaders []string
	// Keyring authenticates clients; nil or empty runs open as auth.DefaultTenant.
	Keyring *auth.Keyring
	// Policy filters sensitive spans of the live turn (memory is filtered by
	// the engine's own policy, which should be the same).
	Policy *policy.Policy
	// PassThrough forwards the client's Authorization header upstream.
	PassThrough bool
	// Responses is how /v1/responses reaches the upstream: ResponsesAuto
	// (the default: native when the upstream has it), ResponsesNative or
	// ResponsesTranslate.
	Responses string
	// CORSOrigins are the browser origins allowed to call the proxy
	// (exact "https://host[:port]", or "*" for any); none by default.
	CORSOrigins []string
	// Mounts are the memories every request draws on besides its own
	// (memory.mounts), unless its key has mounts of its own; none by default.
	Mounts []string
	// SigningKey, when set, signs exported snapshots (provenance.signing_key).
	SigningKey ed25519.PrivateKey
	// TrustedKeys, when not empty, are the only signers whose snapshots
	// import (provenance.trusted_keys); empty imports unsigned ones too.
	TrustedKeys []ed25519.PublicKey
	// RequireID refuses memory requests that name no MegaContext (no
	// context header, no user field) instead of using "default"; off by
	// default.
	RequireID bool
}

// DefaultMaxMessages is Options.MaxMessages's default: ten times a very long
// agent session, a tenth of what made one request take seconds.
const DefaultMaxMessages = 10000

// Server is the proxy.
type Server struct {
	opts Options
	eng  *memory.Engine
	up   *upstream.Client
	log  *slog.Logger
	m    *metrics
	srv  *fasthttp.Server
	prom fasthttp.RequestHandler

	infoMu sync.Mutex
	info   upstream.Info
	known  bool

	// learned is what the upstream's refusals taught about its context.
	learned learned
	// actions counts policy actions per tenant (the inspector's policy view).
	actions policyActions

	// ingesting is held shared while a reply is being stored (a stream's
	// writer may still be storing the partial reply of a client that left);
	// taking it exclusively waits for them all (a WaitGroup may not be
	// waited on while new work is added).
	ingesting sync.RWMutex
}

// New returns a server; call Discover (optional) then Serve.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DefaultNCtx <= 0 {
		o.DefaultNCtx = 4096
	}
	if o.DefaultMaxTokens <= 0 {
		o.DefaultMaxTokens = 512
	}
	if o.TailPercent <= 0 {
		o.TailPercent = 40
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxMessages <= 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	s := &Server{opts: o, eng: o.Engine, up: o.Upstream, log: o.Logger, m: newMetrics()}
	s.m.watchStore(o.Engine)
	if o.Engine != nil {
		s.m.watchEngine(o.Engine)
		s.m.registerFocus(o.Engine)
	}
	s.prom = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
	s.srv = &fasthttp.Server{
		Handler:               s.handle,
		Name:                  "megacontext",
		MaxRequestBodySize:    o.MaxBodyBytes,
		ReadBufferSize:        maxHeaderBytes,
		SecureErrorLogMessage: true,
		ReadTimeout:           2 * time.Minute,
		IdleTimeout:           2 * time.Minute,
		NoDefaultServerHeader: false,
		NoDefaultContentType:  true,
		ErrorHandler:          s.handleServerError,
		Logger:                fasthttpLogger{o.Logger},
	}
	return s
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
}

// Discover asks the upstream for its model and context size. Failures are
// logged and retried lazily on later requests.
func (s *Server) Discover(ctx context.Context) (upstream.Info, error) {
	info, err := s.up.Discover(ctx)
	if err != nil {
		return info, err
	}
	s.infoMu.Lock()
	s.info, s.known = info, true
	s.infoMu.Unlock()
	s.learned.discovered(info.NCtx)
	return info, nil
}

// upstreamInfo returns the discovered info, discovering it when unknown.
func (s *Server) upstreamInfo(ctx context.Context) upstream.Info {
	s.infoMu.Lock()
	info, known := s.info, s.known
	s.infoMu.Unlock()
	if known {
		return info
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := s.Discover(dctx)
	if err != nil {
		s.log.Debug("upstream discovery failed", "err", err)
	}
	return info
}

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.srv.Serve(ln) }

// Shutdown stops accepting connections and waits for open ones to finish
// and for their responses to be stored.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.ShutdownWithContext(ctx)
	s.settle()
	return err
}

// maxHeaderBytes bounds a request's line and headers (fasthttp's read
// buffer): room for large cookies and tokens.
const maxHeaderBytes = 16 << 10

// handleServerError answers requests fasthttp could not read. The answer
// never echoes the request: fasthttp's error text may quote its headers,
// Authorization included.
func (s *Server) handleServerError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge) || strings.Contains(err.Error(), "body size exceeds"):
		writeError(ctx, &apiError{status: 413, message: fmt.Sprintf("request body exceeds the limit of %d bytes", s.opts.MaxBodyBytes), typ: "invalid_request_error", code: "request_too_large"})
	case errors.As(err, &small):
		writeError(ctx, &apiError{status: 431, message: fmt.Sprintf("request headers exceed the limit of %d bytes", maxHeaderBytes), typ: "invalid_request_error", code: "request_headers_too_large"})
	default:
		writeError(ctx, &apiError{status: 400, message: "malformed HTTP request", typ: "invalid_request_error", code: "bad_request"})
	}
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := string(ctx.Path())
	route := path
	// Registered first, so it runs last: errors, a panic's too, reach the
	// browser.
	if origin := s.corsOrigin(ctx); origin != "" {
		defer s.exposeCORS(ctx, origin)
	}
	// A bug must cost one request, not the process and every stream in it.
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic serving a request", "route", route, "panic", v, "stack", string(debug.Stack()))
			s.m.panics.Inc()
			writeError(ctx, &apiError{status: 500, message: "internal error (the proxy's log says why)", typ: "server_error", code: "internal_error"})
		}
	}()
	switch {
	case ctx.IsOptions():
		route = "OPTIONS"
		s.preflight(ctx)
	case path == "/v1/responses" || strings.HasPrefix(path, "/v1/responses/") || path == "/responses" || strings.HasPrefix(path, "/responses/"):
		route = "/v1/responses"
		if path != "/v1/responses" && path != "/responses" {
			route = "/v1/responses/{id}"
		}
		s.responsesRoute(ctx, start, strings.TrimPrefix(path, "/v1"))
	case path == "/v1/chat/completions" || path == "/chat/completions":
		route = "/v1/chat/completions"
		if !ctx.IsPost() {
			writeError(ctx, methodNotAllowed())
			break
		}
		if p, ok := s.authenticate(ctx); ok {
			s.chat(ctx, start, p)
		}
	case path == "/v1/completions" || path == "/v1/embeddings" || path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		if strings.HasPrefix(path, "/v1/models/") {
			route = "/v1/models/{id}"
		}
		if p, ok := s.authenticate(ctx); ok {
			s.passthrough(ctx, path, p)
		}
	case path == "/healthz":
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"ok"}`)
	case path == "/readyz":
		s.ready(ctx)
	case path == "/metrics":
		s.prom(ctx)
	case path == "/megacontext/ui" || strings.HasPrefix(path, "/megacontext/ui/"):
		route = "/megacontext/ui"
		s.serveUI(ctx, path)
	case strings.HasPrefix(string(ctx.URI().PathOriginal()), "/megacontext/v1/"):
		// On the raw path: the normalized one resolves a context id's
		// escaped "../" segments, which would take it out of its route.
		route = "/megacontext/v1"
		p, ok := s.authenticate(ctx)
		if !ok {
			break
		}
		// Read-your-writes: responses still being stored land first.
		s.settle()
		if !s.opts.Keyring.Open() && !p.Has(AdminScope) {
			writeError(ctx, &apiError{status: 403, message: "the admin API needs a key with the \"admin\" scope", typ: "permission_error", code: "insufficient_scope"})
			break
		}
		// Route on the raw path so that an escaped '/' in a context id stays
		// inside its segment (admin unescapes each segment).
		s.admin(ctx, p, strings.TrimPrefix(string(ctx.URI().PathOriginal()), "/megacontext/v1/"))
	default:
		route = "other"
		writeError(ctx, &apiError{status: 404, message: fmt.Sprintf("unknown route %s %s", ctx.Method(), path), typ: "invalid_request_error", code: "not_found"})
	}
	s.m.requests.WithLabelValues(route, fmt.Sprint(ctx.Response.StatusCode())).Inc()
	s.m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// settle waits until the responses being stored have landed.
func (s *Server) settle() {
	s.ingesting.Lock()
	s.ingesting.Unlock()
}

// AdminScope opens the admin API when keys are configured.
const AdminScope = "admin"

// authenticate resolves the caller from the Authorization header; on
// failure it answers 401 and returns false.
func (s *Server) authenticate(ctx *fasthttp.RequestCtx) (auth.Principal, bool) {
	p, err := s.opts.Keyring.Authenticate(string(ctx.Request.Header.Peek("Authorization")))
	if err != nil {
		msg := "invalid API key"
		if errors.Is(err, auth.ErrMissingKey) {
			msg = "missing API key: send Authorization: Bearer KEY"
		}
		writeError(ctx, &apiError{status: 401, message: msg, typ: "invalid_request_error", code: "invalid_api_key"})
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="megacontext"`)
		return auth.Principal{}, false
	}
	return p, true
}

func methodNotAllowed() *apiError {
	return &apiError{status: 405, message: "method not allowed", typ: "invalid_request_error", code: "method_not_allowed"}
}

func (s *Server) ready(ctx *fasthttp.RequestCtx) {
	rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ctx.SetContentType("application/json")
	if err := s.eng.Ready(rctx); err != nil {
		s.log.Warn("not ready: memory store", "err", err)
		ctx.SetStatusCode(503)
		ctx.SetBodyString(string(upstream.ErrorJSON("memory store not ready: its database cannot be reached", "server_error", "", "store_unavailable")))
		return
	}
	if err := s.up.Ready(rctx); err != nil {
		ctx.SetStatusCode(503)
		ctx.SetBodyString(string(upstream.ErrorJSON("upstream not ready: "+err.Error(), "server_error", "", "upstream_unavailable")))
		return
	}
	ctx.SetBodyString(`{"status":"ready"}`)
}

func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.Response.Reset()
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	if e.raw != nil {
		ctx.SetBody(e.raw)
		return
	}
	var code any
	if e.code != "" {
		code = e.code
	}
	ctx.SetBody(upstream.ErrorJSON(e.message, e.typ, e.param, code))
}

// forwardHeaders copies the client headers worth passing upstream. The
// client's Authorization goes along only with pass-through configured.
func (s *Server) forwardHeaders(ctx *fasthttp.RequestCtx) http.Header {
	h := http.Header{}
	names := []string{"Content-Type", "Accept", "User-Agent", "OpenAI-Organization", "OpenAI-Project"}
	if s.opts.PassThrough {
		names = append(names, "Authorization")
	}
	for _, k := range names {
		if v := ctx.Request.Header.Peek(k); len(v) > 0 {
			h.Set(k, string(v))
		}
	}
	return h
}

// watchClient returns a context cancelled when the client's connection
// closes (checked every 100 ms without consuming input) or stop is called.
func watchClient(conn net.Conn) (context.Context, func()) {
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done); cancel() }) }
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if peerClosed(conn) {
					cancel()
					return
				}
			}
		}
	}()
	return cctx, stop
}

// passthroughTextFields are the fields of completions and embeddings
// bodies that carry text to filter.
var passthroughTextFields = []string{"prompt", "suffix", "input", "user"}

// passthrough relays a request upstream unchanged but for the policy: the
// text a completions or embeddings body sends ("prompt", "suffix",
// "input", "user") is filtered for the caller's scopes like a chat
// message.
func (s *Server) passthrough(ctx *fasthttp.RequestCtx, path string, p auth.Principal) {
	body := ctx.PostBody()
	if len(body) > 0 && gjson.ValidBytes(body) {
		var hits []policy.Hit
		var err error
		body, hits, err = filterFields(body, passthroughTextFields, s.opts.Policy, p.Scopes)
		if err != nil {
			writeError(ctx, &apiError{status: 500, message: "filter request: " + err.Error(), typ: "server_error", code: "internal_error"})
			return
		}
		s.audit(memory.Key{Tenant: p.Tenant}, hits)
	}
	if q := ctx.URI().QueryString(); len(q) > 0 {
		path += "?" + string(q)
	}
	cctx, stop := watchClient(ctx.Conn())
	resp, err := s.up.Do(cctx, string(ctx.Method()), path, s.forwardHeaders(ctx), body)
	if err != nil {
		stop()
		s.transportError(ctx, err)
		return
	}
	s.relay(ctx, resp, stop, nil)
}

func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	writeError(ctx, s.upstreamFailure(err))
}

// upstreamFailure counts and logs a transport error talking to the
// upstream and returns the answer for the client.
func (s *Server) upstreamFailure(err error) *apiError {
	status, body := upstream.FromTransportError(err)
	s.m.upstreamErrors.WithLabelValues("transport").Inc()
	s.log.Warn("upstream request failed", "err", err)
	return &apiError{status: status, raw: body}
}
