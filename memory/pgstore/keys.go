package pgstore

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/megacontext/megacontext/memory/store"
)

// The record kinds of memory/schema.go, each kept in its own table:
//
//	c:T:C          contexts (the header)
//	m:T:C:SEQ      messages and tags
//	n:T:C:L:I      blocks (L = 0) and nodes
//	v:T:C:B        vectors
//	f:T:C:L:I      telemetry
//	p:T:C:SEQ      provenance
//	r:T:C:ID       responses (ri:T:ID, the tenant's index of them, is the
//	               same rows looked up by id)
//	s:T:C          snapshots
//	i:T:C          a context being written: contexts without header
//	k:T:C          pins
const (
	kindContext       = "c"
	kindMessage       = "m"
	kindNode          = "n"
	kindVector        = "v"
	kindFocus         = "f"
	kindProvenance    = "p"
	kindResponse      = "r"
	kindResponseIndex = "ri"
	kindSnapshot      = "s"
	kindImport        = "i"
	kindPins          = "k"
)

// key is a parsed record key.
type key struct {
	kind, tenant, context string
	// a and b are the numbers after the context: a sequence number, a
	// block, or a node's level (a) and index (b).
	a, b int64
	// id is a response's id (r, ri).
	id string
}

// parseKey splits a record key into its parts.
func parseKey(k string) (key, error) {
	parts := strings.Split(k, ":")
	out := key{kind: parts[0]}
	unescape := func(i int) (string, error) {
		if i >= len(parts) {
			return "", fmt.Errorf("pgstore: record key %q is too short", k)
		}
		return url.QueryUnescape(parts[i])
	}
	num := func(i int) (int64, error) {
		if i >= len(parts) {
			return 0, fmt.Errorf("pgstore: record key %q is too short", k)
		}
		return strconv.ParseInt(parts[i], 10, 64)
	}
	var err error
	if out.tenant, err = unescape(1); err != nil {
		return out, err
	}
	want := 3
	switch out.kind {
	case kindResponseIndex:
		out.id, err = unescape(2)
	case kindContext, kindSnapshot, kindImport, kindPins:
		out.context, err = unescape(2)
	case kindMessage, kindVector, kindProvenance:
		want = 4
		if out.context, err = unescape(2); err == nil {
			out.a, err = num(3)
		}
	case kindNode, kindFocus:
		want = 5
		if out.context, err = unescape(2); err == nil {
			if out.a, err = num(3); err == nil {
				out.b, err = num(4)
			}
		}
	case kindResponse:
		want = 4
		if out.context, err = unescape(2); err == nil {
			out.id, err = unescape(3)
		}
	default:
		return out, fmt.Errorf("pgstore: no table for records of kind %q (key %q)", out.kind, k)
	}
	if err == nil && len(parts) != want {
		err = fmt.Errorf("pgstore: record key %q has %d parts, want %d", k, len(parts), want)
	}
	return out, err
}

// String builds the key back, as memory/schema.go does.
func (k key) String() string {
	switch k.kind {
	case kindResponseIndex:
		return store.Key(k.kind, k.tenant, k.id)
	case kindContext, kindSnapshot, kindImport, kindPins:
		return store.Key(k.kind, k.tenant, k.context)
	case kindMessage, kindProvenance:
		return store.Key(k.kind, k.tenant, k.context, fmt.Sprintf("%012d", k.a))
	case kindVector:
		return store.Key(k.kind, k.tenant, k.context, fmt.Sprintf("%010d", k.a))
	case kindNode, kindFocus:
		return store.Key(k.kind, k.tenant, k.context, fmt.Sprintf("%02d", k.a), fmt.Sprintf("%010d", k.b))
	case kindResponse:
		return store.Key(k.kind, k.tenant, k.context, k.id)
	}
	return ""
}

// scope is what a key prefix selects: the records of one kind of one
// context, the headers of a tenant, or every context being written.
type scope struct {
	kind, tenant, context string
	// tenantOnly: the prefix names a tenant, not a context (c:T:).
	tenantOnly bool
}

// parsePrefix reads a Scan or Delete prefix: "K:T:C:" (a context's records
// of kind K), "c:T:" (a tenant's headers) or "i:" (contexts being written).
func parsePrefix(p string) (scope, error) {
	parts := strings.Split(p, ":")
	if len(parts) < 2 || parts[len(parts)-1] != "" {
		return scope{}, fmt.Errorf("pgstore: cannot scan by the prefix %q (whole kinds of a context only)", p)
	}
	parts = parts[:len(parts)-1]
	s := scope{kind: parts[0]}
	var err error
	switch len(parts) {
	case 1:
		if s.kind != kindImport {
			return s, fmt.Errorf("pgstore: cannot scan every record of kind %q", s.kind)
		}
	case 2:
		if s.kind != kindContext {
			return s, fmt.Errorf("pgstore: cannot scan every record of kind %q of a tenant", s.kind)
		}
		s.tenantOnly = true
		s.tenant, err = url.QueryUnescape(parts[1])
	case 3:
		if s.tenant, err = url.QueryUnescape(parts[1]); err == nil {
			s.context, err = url.QueryUnescape(parts[2])
		}
	default:
		return s, fmt.Errorf("pgstore: cannot scan by the prefix %q", p)
	}
	return s, err
}
