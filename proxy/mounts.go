package proxy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy/auth"
)

// MountHeader names memories a request draws on besides its own,
// read-only: "X-MegaContext-Mount: team-handbook, product-faq".
const MountHeader = "X-MegaContext-Mount"

// mountsFor returns the memories a request of p for the context k mounts:
// its key's mounts (else Options.Mounts) and those the request names in
// MountHeader, in that order, without repeats and without k itself. A key
// with mounts of its own may mount no other: naming one is a 403, never a
// silent skip. Every mount is of p's tenant (memory.Key scopes it); one
// that does not exist is the engine's 404.
func (s *Server) mountsFor(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key) ([]string, *apiError) {
	base := s.opts.Mounts
	if p.MountsSet {
		base = p.Mounts
	}
	out := make([]string, 0, len(base))
	add := func(m string) {
		if m != "" && m != k.Context && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	for _, m := range base {
		add(m)
	}
	for _, v := range ctx.Request.Header.PeekAll(MountHeader) {
		for _, m := range strings.Split(string(v), ",") {
			m = strings.TrimSpace(m)
			if p.MountsSet && m != "" && !slices.Contains(p.Mounts, m) {
				return nil, &apiError{status: 403, message: fmt.Sprintf("this key may not mount %q: its mounts are %v", m, p.Mounts),
					typ: "permission_error", param: MountHeader, code: "mount_forbidden"}
			}
			add(m)
		}
	}
	return out, nil
}
