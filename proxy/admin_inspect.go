package proxy

import (
	"encoding/json"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/policy"
	"github.com/megacontext/megacontext/proxy/auth"
	"github.com/megacontext/megacontext/proxy/ui"
)

// inspect serves the inspector's admin routes under contexts/{id}/:
//
//	GET    contexts/{id}/windows               the last kept windows, newest first, explained
//	GET    contexts/{id}/tree?level=L&from=I&limit=N   a range of one level of the gist tree (level -1: the top)
//	GET    contexts/{id}/pins                  the pins
//	POST   contexts/{id}/pins                  {"msg": SEQ} or {"first_block": A, "last_block": B}
//	DELETE contexts/{id}/pins/{pin}            unpin
//	GET    contexts/{id}/retention             every retention rule with what it would prune now
//	POST   contexts/{id}/retention/{rule}      apply a rule (prune)
//
// It reports whether it answered (rest names one of its routes).
func (s *Server) inspect(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key, rest []string) bool {
	route := rest[0]
	switch {
	case len(rest) == 1 && route == "windows" && ctx.IsGet():
		ws, err := s.eng.Windows(k, p.Scopes)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, map[string]any{"object": "list", "data": ws})
	case len(rest) == 1 && route == "tree" && ctx.IsGet():
		args := ctx.QueryArgs()
		level, from, limit := -1, 0, 256
		if v := args.Peek("level"); len(v) > 0 {
			level, _ = strconv.Atoi(string(v))
		}
		from, _ = strconv.Atoi(string(args.Peek("from")))
		if v, err := strconv.Atoi(string(args.Peek("limit"))); err == nil && v > 0 && v <= 4096 {
			limit = v
		}
		tv, err := s.eng.Tree(k, level, from, limit, p.Scopes)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, tv)
	case len(rest) == 1 && route == "pins" && ctx.IsGet():
		pins, err := s.eng.Pins(k)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, map[string]any{"object": "list", "data": nonNil(pins)})
	case len(rest) == 1 && route == "pins" && ctx.IsPost():
		var in struct {
			Msg   *int64 `json:"msg"`
			First *int   `json:"first_block"`
			Last  *int   `json:"last_block"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || (in.Msg == nil) == (in.First == nil || in.Last == nil) {
			writeError(ctx, badRequest("", "body must be {\"msg\": SEQ} or {\"first_block\": A, \"last_block\": B}"))
			return true
		}
		msg, first, last := int64(-1), 0, 0
		if in.Msg != nil {
			if msg = *in.Msg; msg < 0 {
				writeError(ctx, badRequest("msg", "msg must be a message sequence number"))
				return true
			}
		} else {
			first, last = *in.First, *in.Last
		}
		pin, err := s.eng.AddPin(k, msg, first, last)
		if errors.Is(err, memory.ErrBadPin) {
			writeError(ctx, badRequest("msg", "%s", err.Error()))
			return true
		}
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, pin)
	case len(rest) == 2 && route == "pins" && ctx.IsDelete():
		id, err := strconv.ParseInt(rest[1], 10, 64)
		if err != nil {
			writeError(ctx, badRequest("pin", "pin id must be an integer"))
			return true
		}
		if err := s.eng.RemovePin(k, id); err != nil {
			if errors.Is(err, memory.ErrNotFound) {
				writeError(ctx, &apiError{status: 404, message: "no such pin (or MegaContext)", typ: "invalid_request_error", code: "not_found"})
				return true
			}
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, map[string]any{"id": id, "deleted": true})
	case len(rest) == 1 && route == "retention" && ctx.IsGet():
		plans := []memory.PrunePlan{}
		for _, r := range s.eng.RetentionRules() {
			plan, err := s.eng.PreviewRetention(k, r.Name)
			if err != nil {
				s.adminError(ctx, err)
				return true
			}
			plans = append(plans, plan)
		}
		writeJSON(ctx, map[string]any{"object": "list", "rules": nonNil(s.eng.RetentionRules()), "data": plans})
	case len(rest) == 2 && route == "retention" && ctx.IsPost():
		name, err := url.PathUnescape(rest[1])
		if err != nil {
			writeError(ctx, badRequest("rule", "bad rule name escape"))
			return true
		}
		plan, err := s.eng.Prune(k, name, p.Tenant)
		if errors.Is(err, memory.ErrBadRule) {
			writeError(ctx, &apiError{status: 404, message: err.Error(), typ: "invalid_request_error", param: "rule", code: "not_found"})
			return true
		}
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, plan)
	case route == "windows" || route == "tree" || route == "pins" || route == "retention":
		writeError(ctx, methodNotAllowed())
	default:
		return false
	}
	return true
}

// inspectTenant serves the inspector's tenant-wide routes:
//
//	GET policy   the policy actions taken for the tenant since the process started, by rule (counts, never text)
//
// It reports whether it answered.
func (s *Server) inspectTenant(ctx *fasthttp.RequestCtx, p auth.Principal, parts []string) bool {
	if len(parts) != 1 || parts[0] != "policy" {
		return false
	}
	if !ctx.IsGet() {
		writeError(ctx, methodNotAllowed())
		return true
	}
	writeJSON(ctx, map[string]any{"object": "list", "data": s.actions.of(p.Tenant)})
	return true
}

// policyActions counts the policy actions taken, per tenant, rule and
// action (the inspector's policy view). mu guards counts.
type policyActions struct {
	mu     sync.Mutex
	counts map[string]map[policy.Hit]int
}

// PolicyCount is one rule's count of one action.
type PolicyCount struct {
	Rule   string `json:"rule"`
	Action string `json:"action"`
	Count  int    `json:"count"`
}

// add counts hits for tenant.
func (a *policyActions) add(tenant string, counts map[policy.Hit]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.counts == nil {
		a.counts = map[string]map[policy.Hit]int{}
	}
	if a.counts[tenant] == nil {
		a.counts[tenant] = map[policy.Hit]int{}
	}
	for h, n := range counts {
		a.counts[tenant][h] += n
	}
}

// of returns a tenant's counts, by rule then action.
func (a *policyActions) of(tenant string) []PolicyCount {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []PolicyCount{}
	for h, n := range a.counts[tenant] {
		out = append(out, PolicyCount{Rule: h.Rule, Action: h.Action, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Action < out[j].Action
	})
	return out
}

// serveUI serves the inspector's page and files (proxy/ui). They hold no
// data and need no key: the page signs in to the admin API itself.
func (s *Server) serveUI(ctx *fasthttp.RequestCtx, path string) {
	if !ctx.IsGet() && !ctx.IsHead() {
		writeError(ctx, methodNotAllowed())
		return
	}
	if path == "/megacontext/ui" {
		ctx.Redirect("/megacontext/ui/", fasthttp.StatusMovedPermanently)
		return
	}
	body, ct, ok := ui.File(strings.TrimPrefix(path, "/megacontext/ui/"))
	if !ok {
		writeError(ctx, &apiError{status: 404, message: "no such inspector file", typ: "invalid_request_error", code: "not_found"})
		return
	}
	for k, v := range ui.SecurityHeaders {
		ctx.Response.Header.Set(k, v)
	}
	ctx.SetContentType(ct)
	ctx.SetBody(body)
}
