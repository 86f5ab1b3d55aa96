package proxy

import (
	"slices"
	"strings"

	"github.com/valyala/fasthttp"
)

// corsMethods are the methods a browser may use.
const corsMethods = "GET, POST, DELETE, OPTIONS"

// corsMaxAge is how long (seconds) a browser may cache a preflight.
const corsMaxAge = "600"

// corsOrigin returns the request's Origin when the configuration allows
// it, else "".
func (s *Server) corsOrigin(ctx *fasthttp.RequestCtx) string {
	origin := string(ctx.Request.Header.Peek("Origin"))
	if origin == "" || len(s.opts.CORSOrigins) == 0 {
		return ""
	}
	if slices.Contains(s.opts.CORSOrigins, "*") || slices.ContainsFunc(s.opts.CORSOrigins, func(o string) bool {
		return strings.EqualFold(strings.TrimRight(o, "/"), origin)
	}) {
		return origin
	}
	return ""
}

// preflight answers an OPTIONS request: 204 with the allowed methods and
// headers for an allowed origin, 403 for a preflight from another origin,
// 204 with Allow otherwise.
func (s *Server) preflight(ctx *fasthttp.RequestCtx) {
	isPreflight := len(ctx.Request.Header.Peek("Origin")) > 0 && len(ctx.Request.Header.Peek("Access-Control-Request-Method")) > 0
	origin := s.corsOrigin(ctx)
	switch {
	case origin != "":
		h := &ctx.Response.Header
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", s.allowedHeaders(string(ctx.Request.Header.Peek("Access-Control-Request-Headers"))))
		h.Set("Access-Control-Max-Age", corsMaxAge)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case isPreflight:
		writeError(ctx, &apiError{status: 403, message: "this origin may not call the proxy: add it to server.cors_origins", typ: "permission_error", code: "cors_origin_not_allowed"})
	default:
		ctx.Response.Header.Set("Allow", corsMethods)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

// allowedHeaders lists the request headers a browser may send: the ones
// the proxy reads and every header the preflight asked for (the OpenAI
// SDKs send their own X-Stainless-* headers).
func (s *Server) allowedHeaders(requested string) string {
	names := []string{"Authorization", "Content-Type", "X-MegaContext-Id", "X-MegaContext-Thread", "OpenAI-Organization", "OpenAI-Project"}
	names = append(names, s.opts.ContextHeaders...)
	names = append(names, s.opts.ThreadHeaders...)
	for _, h := range strings.Split(requested, ",") {
		if h = strings.TrimSpace(h); h != "" && isToken(h) {
			names = append(names, h)
		}
	}
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if k := strings.ToLower(n); !seen[k] {
			seen[k] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// isToken reports whether s is an HTTP header name.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return len(s) > 0
}

// exposeCORS adds the headers that let an allowed origin read the answer,
// the X-MegaContext-* headers included. It runs after the handler, so
// errors get them too.
func (s *Server) exposeCORS(ctx *fasthttp.RequestCtx, origin string) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", strings.Join(windowHeaders, ", "))
}
