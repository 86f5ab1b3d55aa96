package proxy

import (
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/jsondepth"
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
//
// and the sharing routes (admin_memory.go): export, import;
// and the inspector's routes (admin_inspect.go): windows, tree, ...
func (s *Server) admin(ctx *fasthttp.RequestCtx, p auth.Principal, rest string) {
	tenant := p.Tenant
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if s.inspectTenant(ctx, p, parts) {
		return
	}
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
		if len(parts) == 3 && s.sharing(ctx, p, k, parts[2]) {
			return
		}
		if len(parts) >= 3 && s.inspect(ctx, p, k, parts[2:]) {
			return
		}
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
			s.dryRun(ctx, k, p)
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

// dryRun answers what a chat request would send upstream now, without
// storing anything: it takes {"query": "..."} (one user message) or
// {"messages": [...]} as a chat request would, with "budget" (the prompt
// budget, as X-MegaContext-Budget-Tokens reports it), or "max_tokens" and
// "tools" to derive it as a live request does. It goes through the live
// path's plan: the same question at the same budget gives the same window,
// and "messages" is byte for byte what the upstream would receive.
func (s *Server) dryRun(ctx *fasthttp.RequestCtx, k memory.Key, p auth.Principal) {
	scopes := p.Scopes
	creq, budget, aerr := parseDryRun(ctx.PostBody())
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	x := s.chatExchange(creq, k, scopes)
	if x.mounts, aerr = s.mountsFor(ctx, p, k); aerr != nil {
		writeError(ctx, aerr)
		return
	}
	b := s.budgetFor(ctx, x.maxTokens, x.tools)
	if budget > 0 {
		b = b.withPrompt(budget)
	}
	if b.total < minPrompt {
		writeError(ctx, badRequest("budget", "a budget of %d tokens leaves no room for a window: the least is %d", b.prompt(), minPrompt+b.fixed))
		return
	}
	w, upBody, _, aerr := s.plan(x, b, true)
	if aerr != nil {
		writeError(ctx, aerr)
		return
	}
	entries := w.Entries
	if entries == nil {
		entries = []memory.EntryInfo{}
	}
	out, err := json.Marshal(map[string]any{
		"budget": b.prompt(), "window_tokens": w.Tokens + b.fixed, "memory_tokens": w.MemoryTokens, "history_tokens": w.HistoryTokens,
		"expanded": w.Expanded, "omitted_blocks": w.Omitted, "new_messages": w.NewMessages, "entries": entries, "memory": w.Memory,
		"omitted_matches": nonNil(w.OmittedMatches),
	})
	if err == nil {
		// Set raw: byte for byte what the upstream would receive (Marshal
		// would compact and escape it).
		out, err = sjson.SetRawBytes(out, "messages", []byte(gjson.GetBytes(upBody, "messages").Raw))
	}
	if err != nil {
		writeError(ctx, &apiError{status: 500, message: err.Error(), typ: "server_error", code: "internal_error"})
		return
	}
	setWindowHeaders(ctx, k, w, b, 0)
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

// dryRunUsage is the dry run's answer to a body it cannot read.
const dryRunUsage = "body must be {\"query\": \"...\", \"budget\": N} or {\"messages\": [...], \"budget\": N}"

// parseDryRun reads a dry run's body: the chat request it stands for (one
// user message for "query", else its "messages", with its "max_tokens",
// "max_completion_tokens" and "tools") and its "budget" (0 when absent).
func parseDryRun(body []byte) (*chatRequest, int, *apiError) {
	if !jsondepth.Valid(body) {
		return nil, 0, badRequest("", dryRunUsage)
	}
	in := gjson.ParseBytes(body)
	if !in.IsObject() {
		return nil, 0, badRequest("", dryRunUsage)
	}
	req := map[string]any{}
	switch q, msgs := in.Get("query"), in.Get("messages"); {
	case msgs.Exists():
		req["messages"] = json.RawMessage(msgs.Raw)
	case q.Type == gjson.String && q.Str != "":
		type message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		}
		req["messages"] = []message{{"user", q.Str}}
	default:
		return nil, 0, badRequest("query", dryRunUsage)
	}
	for _, f := range []string{"max_tokens", "max_completion_tokens", "tools"} {
		if v := in.Get(f); v.Exists() {
			req[f] = json.RawMessage(v.Raw)
		}
	}
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, 0, badRequest("messages", "%s", err.Error())
	}
	creq, aerr := parseChatRequest(raw)
	if aerr != nil {
		return nil, 0, aerr
	}
	budget := 0
	if v := in.Get("budget"); v.Exists() {
		if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) || v.Num < 1 || v.Num > 1<<30 {
			return nil, 0, badRequest("budget", "'budget' must be a positive integer")
		}
		budget = int(v.Num)
	}
	return creq, budget, nil
}

func (s *Server) adminError(ctx *fasthttp.RequestCtx, err error) {
	if e, ok := sharingError(err); ok {
		writeError(ctx, e)
		return
	}
	switch {
	case errors.Is(err, memory.ErrConflict):
		writeError(ctx, &apiError{status: 409, message: "the memory changed meanwhile (another replica wrote to it): retry", typ: "invalid_request_error", code: "conflict"})
	case errors.Is(err, memory.ErrNotFound):
		// The context, or what the call names in it: a message, a block, a
		// pin or a mounted memory, which the engine's error names.
		msg := "no such MegaContext"
		if what, ok := strings.CutPrefix(err.Error(), memory.ErrNotFound.Error()+": "); ok {
			msg = "not found: " + what
		}
		writeError(ctx, &apiError{status: 404, message: msg, typ: "invalid_request_error", code: "not_found"})
	case errors.Is(err, memory.ErrForbidden):
		writeError(ctx, &apiError{status: 403, message: err.Error(), typ: "permission_error", param: "tags", code: "insufficient_scope"})
	case errors.Is(err, memory.ErrBadKey), errors.Is(err, memory.ErrBadTag):
		writeError(ctx, badRequest("id", "%s", err.Error()))
	case errors.Is(err, memory.ErrTooLong):
		writeError(ctx, badRequest("budget", "budget too small for the query"))
	case errors.Is(err, memory.ErrTokenizerUnavailable):
		writeError(ctx, &apiError{status: 503, message: err.Error(), typ: "server_error", code: "tokenizer_unavailable"})
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

// nonNil returns s, or an empty slice for nil (JSON [] rather than null).
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
