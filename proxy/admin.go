package proxy

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/proxy/auth"
)

// admin serves the inspection API under /megacontext/v1/:
//
//	GET    contexts                 list the tenant's MegaContexts
//	GET    contexts/{id}            statistics of one
//	POST   contexts/{id}/window     dry-run a window: {"query": "...", "budget": N}
//	DELETE contexts/{id}            delete one and everything in it
//	GET    contexts/{id}/messages   stored messages (?from=SEQ&limit=N)
//	POST   contexts/{id}/messages/{seq}/tags  {"add": [RULE], "remove": [RULE]}
func (s *Server) admin(ctx *fasthttp.RequestCtx, p auth.Principal, rest string) {
	tenant := p.Tenant
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if len(parts) == 0 || parts[0] != "contexts" {
		writeError(ctx, &apiError{status: 404, message: "unknown admin route", typ: "invalid_request_error", code: "not_found"})
		return
	}
	switch {
	case len(parts) == 1 && ctx.IsGet():
		list, err := s.eng.List(tenant)
		if err != nil {
			s.adminError(ctx, err)
			return
		}
		if list == nil {
			list = []memory.ContextInfo{}
		}
		writeJSON(ctx, map[string]any{"object": "list", "data": list})
	case len(parts) >= 2:
		id, err := url.PathUnescape(parts[1])
		if err != nil {
			writeError(ctx, badRequest("id", "bad context id escape"))
			return
		}
		k := memory.Key{Tenant: tenant, Context: id}
		switch {
		case len(parts) == 2 && ctx.IsGet():
			st, err := s.eng.Stats(k)
			if err != nil {
				s.adminError(ctx, err)
				return
			}
			writeJSON(ctx, st)
		case len(parts) == 2 && ctx.IsDelete():
			if err := s.eng.Delete(k); err != nil {
				s.adminError(ctx, err)
				return
			}
			writeJSON(ctx, map[string]any{"id": id, "deleted": true})
		case len(parts) == 3 && parts[2] == "window" && ctx.IsPost():
			s.dryRun(ctx, k, p.Scopes)
		case len(parts) == 3 && parts[2] == "messages" && ctx.IsGet():
			from, _ := strconv.ParseInt(string(ctx.QueryArgs().Peek("from")), 10, 64)
			limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
			if limit <= 0 || limit > 1000 {
				limit = 100
			}
			msgs, err := s.eng.Messages(k, from, limit, p.Scopes)
			if err != nil {
				s.adminError(ctx, err)
				return
			}
			if msgs == nil {
				msgs = []memory.MessageInfo{}
			}
			writeJSON(ctx, map[string]any{"object": "list", "data": msgs})
		case len(parts) == 5 && parts[2] == "messages" && parts[4] == "tags" && ctx.IsPost():
			seq, err := strconv.ParseInt(parts[3], 10, 64)
			if err != nil {
				writeError(ctx, badRequest("seq", "message sequence number must be an integer"))
				return
			}
			var in struct {
				Add    []string `json:"add"`
				Remove []string `json:"remove"`
			}
			if err := json.Unmarshal(ctx.PostBody(), &in); err != nil {
				writeError(ctx, badRequest("", "body must be {\"add\": [...], \"remove\": [...]}"))
				return
			}
			tags, err := s.eng.Tag(k, seq, in.Add, in.Remove, p.Scopes)
			if err != nil {
				s.adminError(ctx, err)
				return
			}
			if tags == nil {
				tags = []string{}
			}
			writeJSON(ctx, map[string]any{"seq": seq, "tags": tags})
		default:
			writeError(ctx, methodNotAllowed())
		}
	default:
		writeError(ctx, methodNotAllowed())
	}
}

func (s *Server) dryRun(ctx *fasthttp.RequestCtx, k memory.Key, scopes []string) {
	var in struct {
		Query  string `json:"query"`
		Budget int    `json:"budget"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || in.Query == "" {
		writeError(ctx, badRequest("query", "body must be {\"query\": \"...\", \"budget\": N}"))
		return
	}
	b := s.budgetFor(ctx, 0, "")
	if in.Budget > 0 {
		b.total = in.Budget
	}
	w, err := s.eng.Prepare(memory.Request{Key: k, Messages: []memory.Message{{Role: "user", Text: in.Query}}, Budget: b.total, PerMessage: b.perMessage, TailPercent: s.opts.TailPercent, DryRun: true, Scopes: scopes})
	if err != nil {
		s.adminError(ctx, err)
		return
	}
	entries := w.Entries
	if entries == nil {
		entries = []memory.EntryInfo{}
	}
	writeJSON(ctx, map[string]any{
		"budget": b.total, "window_tokens": w.Tokens, "memory_tokens": w.MemoryTokens, "history_tokens": w.HistoryTokens,
		"expanded": w.Expanded, "omitted_blocks": w.Omitted, "entries": entries, "memory": w.Memory,
	})
}

func (s *Server) adminError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, memory.ErrNotFound):
		writeError(ctx, &apiError{status: 404, message: "no such MegaContext", typ: "invalid_request_error", code: "not_found"})
	case errors.Is(err, memory.ErrForbidden):
		writeError(ctx, &apiError{status: 403, message: err.Error(), typ: "permission_error", param: "tags", code: "insufficient_scope"})
	case errors.Is(err, memory.ErrBadKey), errors.Is(err, memory.ErrBadTag):
		writeError(ctx, badRequest("id", "%s", err.Error()))
	case errors.Is(err, memory.ErrTooLong):
		writeError(ctx, badRequest("budget", "budget too small for the query"))
	default:
		s.log.Error("admin", "err", err)
		writeError(ctx, storeFailure(err))
	}
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, &apiError{status: 500, message: err.Error(), typ: "server_error"})
		return
	}
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
