package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy/auth"
)

// inspect serves the inspector's admin routes under contexts/{id}/:
//
//	GET contexts/{id}/windows   the last kept windows, newest first, explained
//
// It reports whether it answered (rest names one of its routes).
func (s *Server) inspect(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key, rest []string) bool {
	switch {
	case len(rest) == 1 && rest[0] == "windows":
		if !ctx.IsGet() {
			writeError(ctx, methodNotAllowed())
			return true
		}
		ws, err := s.eng.Windows(k, p.Scopes)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, map[string]any{"object": "list", "data": ws})
		return true
	}
	return false
}
