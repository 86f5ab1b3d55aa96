package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
	"github.com/megacontext/megacontext/memory/bundle"
	"github.com/megacontext/megacontext/proxy/auth"
)

// sharing serves the admin routes that move and reshape memories:
//
//	GET  contexts/{id}/export          the context as a .mcx bundle, its root in X-MegaContext-Root
//	POST contexts/{id}/import          a .mcx bundle (optionally gzip) into the new context {id}
//	POST contexts/{id}/fork            {"to": "new-id", "at": SEQ}: a branch of {id} up to message SEQ
//	GET  contexts/{id}/diff?with=OTHER what each side holds that the other lacks (&limit=N listed)
//	POST contexts/{id}/merge           {"from": "other"}: other's messages {id} lacks, as a thread
//	POST contexts/{id}/forget          {"messages": [SEQ...]} or {"match": "literal"}, "reason": erase for good
//	GET  contexts/{id}/provenance?block=N  where block N came from: message, thread, origin, Merkle path, snapshot
//
// It reports whether it handled the request.
func (s *Server) sharing(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key, op string) bool {
	switch {
	case op == "export" && ctx.IsGet():
		s.exportContext(ctx, p, k)
	case op == "import" && ctx.IsPost():
		s.importContext(ctx, p, k)
	case op == "fork" && ctx.IsPost():
		var in struct {
			To string `json:"to"`
			At *int64 `json:"at"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || in.To == "" {
			writeError(ctx, badRequest("to", `body must be {"to": "new-id", "at": SEQ} ("at" optional: all messages)`))
			return true
		}
		at := int64(-1)
		if in.At != nil {
			if *in.At < 0 {
				writeError(ctx, badRequest("at", "at must be a message sequence number (>= 0)"))
				return true
			}
			at = *in.At
		}
		res, err := s.eng.Fork(k, in.To, at, p.Caller())
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		ctx.SetStatusCode(fasthttp.StatusCreated)
		writeJSON(ctx, res)
	case op == "diff" && ctx.IsGet():
		with := string(ctx.QueryArgs().Peek("with"))
		if with == "" {
			writeError(ctx, badRequest("with", "diff needs ?with=OTHER-ID"))
			return true
		}
		limit, _ := strconv.Atoi(string(ctx.QueryArgs().Peek("limit")))
		if limit <= 0 || limit > 1000 {
			limit = 100
		}
		d, err := s.eng.Diff(k, with, limit, p.Scopes)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, d)
	case op == "merge" && ctx.IsPost():
		var in struct {
			From string `json:"from"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || in.From == "" {
			writeError(ctx, badRequest("from", `body must be {"from": "other-id"}`))
			return true
		}
		res, err := s.eng.Merge(k, in.From, p.Caller())
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, res)
	case op == "forget" && ctx.IsPost():
		var in struct {
			Messages []int64 `json:"messages"`
			Match    string  `json:"match"`
			Reason   string  `json:"reason"`
		}
		if err := json.Unmarshal(ctx.PostBody(), &in); err != nil || (len(in.Messages) == 0) == (in.Match == "") {
			writeError(ctx, badRequest("", `body must be {"messages": [SEQ, ...]} or {"match": "literal text"}, with an optional "reason"`))
			return true
		}
		res, err := s.eng.Erase(k, memory.EraseRequest{Messages: in.Messages, Match: in.Match, Reason: in.Reason, Caller: p.Caller()})
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		writeJSON(ctx, res)
	case op == "provenance" && ctx.IsGet():
		block, err := strconv.Atoi(string(ctx.QueryArgs().Peek("block")))
		if err != nil || block < 0 {
			writeError(ctx, badRequest("block", "provenance needs ?block=N, a block number (windows list them as first_block/last_block)"))
			return true
		}
		// ?mount=NAME traces a block of a memory the context mounts, as a
		// window's entry naming that memory quotes it.
		mount := string(ctx.QueryArgs().Peek("mount"))
		from := k
		if mount != "" {
			mounts, aerr := s.mountsFor(ctx, p, k)
			if aerr != nil {
				writeError(ctx, aerr)
				return true
			}
			if p.MountsSet && !slices.Contains(mounts, mount) {
				writeError(ctx, &apiError{status: 403, message: fmt.Sprintf("this key may not mount %q", mount), typ: "permission_error", param: "mount", code: "mount_forbidden"})
				return true
			}
			from = memory.Key{Tenant: k.Tenant, Context: mount}
		}
		sp, err := s.eng.Provenance(from, block, p.Scopes)
		if err != nil {
			s.adminError(ctx, err)
			return true
		}
		if mount != "" {
			sp.Origin = memory.SpanOrigin{Kind: "mounted", From: mount, Merged: sp.Origin.Merged}
		}
		writeJSON(ctx, sp)
	default:
		return false
	}
	return true
}

// SnapshotContentType is the media type of .mcx bundles.
const SnapshotContentType = "application/x-megacontext-snapshot"

// exportContext writes the bundle to an unnamed temporary file first: the
// root goes in a header, which must precede the body, and the context is
// locked only while the file is written, never while a slow client reads.
func (s *Server) exportContext(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key) {
	f, err := os.CreateTemp("", "megacontext-export-*.mcx")
	if err != nil {
		s.adminError(ctx, err)
		return
	}
	tmp := &tempFile{File: f}
	root, err := s.eng.ExportBundle(k, f, memory.ExportOptions{SigningKey: s.opts.SigningKey, Scopes: p.Scopes, Caller: p.Caller()})
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		if errors.Is(err, memory.ErrForbidden) {
			writeError(ctx, &apiError{status: 403, message: err.Error(), typ: "permission_error", code: "insufficient_scope"})
			return
		}
		s.adminError(ctx, err)
		return
	}
	ctx.SetContentType(SnapshotContentType)
	ctx.Response.Header.Set("X-MegaContext-Root", root.String())
	if signer := root.SignerString(); signer != "" {
		ctx.Response.Header.Set("X-MegaContext-Signed-By", signer)
	}
	ctx.Response.Header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename*=UTF-8''%s.mcx`, url.PathEscape(k.Context)))
	ctx.SetBodyStream(tmp, int(root.Bytes))
}

// tempFile is a temporary file removed when closed.
type tempFile struct{ *os.File }

func (t *tempFile) Close() error {
	err := t.File.Close()
	os.Remove(t.Name())
	return err
}

func (s *Server) importContext(ctx *fasthttp.RequestCtx, p auth.Principal, k memory.Key) {
	var body io.Reader = bytes.NewReader(ctx.PostBody())
	if bytes.EqualFold(ctx.Request.Header.ContentEncoding(), []byte("gzip")) {
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeError(ctx, badRequest("", "Content-Encoding gzip: %v", err))
			return
		}
		body = zr
	}
	res, err := s.eng.ImportBundle(k, body, memory.ImportOptions{Trusted: s.opts.TrustedKeys, Caller: p.Caller()})
	if err != nil {
		s.adminError(ctx, err)
		return
	}
	ctx.Response.Header.Set("X-MegaContext-Root", res.Root.String())
	ctx.SetStatusCode(fasthttp.StatusCreated)
	writeJSON(ctx, map[string]any{
		"id": k.Context, "root": res.Root.String(), "signed_by": res.Root.SignerString(), "bytes": res.Root.Bytes,
		"messages": res.Messages, "blocks": res.Blocks, "rebuilt": res.Rebuilt, "why": res.Why,
	})
}

// sharingError maps the errors of the sharing routes; ok is false for
// others.
func sharingError(err error) (*apiError, bool) {
	switch {
	case errors.Is(err, memory.ErrBadErase):
		return badRequest("", "%s", err.Error()), true
	case errors.Is(err, memory.ErrExists):
		return &apiError{status: 409, message: err.Error(), typ: "invalid_request_error", code: "context_exists"}, true
	case errors.Is(err, bundle.ErrSignature):
		return &apiError{status: 400, message: "snapshot rejected: " + err.Error(), typ: "invalid_request_error", code: "snapshot_signature"}, true
	case errors.Is(err, bundle.ErrTampered), errors.Is(err, bundle.ErrTruncated), errors.Is(err, bundle.ErrFormat),
		errors.Is(err, memory.ErrBadSnapshot), errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader),
		errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{status: 400, message: "snapshot rejected, nothing was stored: " + err.Error(), typ: "invalid_request_error", code: "invalid_snapshot"}, true
	}
	return nil, false
}
