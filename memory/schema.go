package memory

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/megacontext/megacontext/memory/store"
)

// The record schema: every key the engine writes is built here and nowhere
// else, so that a new kind of record cannot be forgotten by Delete.
//
//	c:TENANT:CONTEXT                 the context header (ctxRecord)
//	m:TENANT:CONTEXT:SEQ             a message (msgRecord), SEQ zero-padded to 12 digits
//	n:TENANT:CONTEXT:LEVEL:INDEX     a tree node (tree.Node), 2 and 10 digits
//	v:TENANT:CONTEXT:BLOCK           a block's embedding (qvec), 10 digits
//	r:TENANT:CONTEXT:ID              a served response kept for retrieval (ResponseRecord)
//	ri:TENANT:ID                     the index from a response id to its CONTEXT
//	p:TENANT:CONTEXT:SEQ             a provenance record (ProvenanceRecord), 12 digits
//	i:TENANT:CONTEXT                 a new context being written (an import, a
//	                                 fork): its records are not a context yet
//	s:TENANT:CONTEXT                 local snapshot facts (snapshotRecord): the
//	                                 root it was imported from, the last export
//	f:TENANT:CONTEXT:LEVEL:INDEX     a node's focus telemetry (NodeFocus), 2 and 10 digits
//	k:TENANT:CONTEXT                 the context's pins (pinsRecord)
//
// Parts are escaped by store.Key, so no id can forge another's boundary, and
// the zero padding makes key order the records' natural order for scans.
const (
	kindContext = "c"
	kindMessage = "m"
	kindNode    = "n"
	kindVector  = "v"
	// kindResponse records live under their context; kindResponseIndex
	// finds them from the id alone (GET /v1/responses/{id}).
	kindResponse      = "r"
	kindResponseIndex = "ri"
	// kindProvenance records forks, merges and erasures; exported in bundles.
	kindProvenance = "p"
	// kindImport marks a new context being written (storeNew); Open removes
	// what a crash left.
	kindImport = "i"
	// kindSnapshot holds this store's own facts about snapshots of the
	// context (never exported: a round trip keeps the root).
	kindSnapshot = "s"
	// kindFocus is a node's focus telemetry, written off the request path.
	kindFocus = "f"
	// kindPins holds a context's pins: what every window keeps.
	kindPins = "k"
)

// recordKinds lists every kind of record stored under a context besides its
// header. Delete removes each; a new kind goes here.
var recordKinds = []string{kindMessage, kindNode, kindVector, kindResponse, kindProvenance, kindFocus}

// singleKinds lists the kinds with one record per context, keyed like the
// header. Delete removes each; a new kind goes here.
var singleKinds = []string{kindContext, kindImport, kindSnapshot, kindPins}

// headerKey is the key of a context's header record.
func headerKey(k Key) string { return singleKey(kindContext, k) }

// singleKey is the key of a context's record of a single kind.
func singleKey(kind string, k Key) string { return store.Key(kind, k.Tenant, k.Context) }

// parseSingleKey returns the context a single-kind key names.
func parseSingleKey(key string) (Key, bool) {
	parts := strings.Split(key, ":")
	if len(parts) != 3 {
		return Key{}, false
	}
	t, err1 := url.QueryUnescape(parts[1])
	c, err2 := url.QueryUnescape(parts[2])
	return Key{Tenant: t, Context: c}, err1 == nil && err2 == nil
}

// singlePrefix is the prefix of every record of a single kind.
func singlePrefix(kind string) string { return kind + ":" }

// headerPrefix is the prefix of every context header of a tenant.
func headerPrefix(tenant string) string { return store.Prefix(kindContext, tenant) }

// recordPrefix is the prefix of a context's records of one kind.
func recordPrefix(kind string, k Key) string { return store.Prefix(kind, k.Tenant, k.Context) }

func msgKey(k Key, seq int64) string {
	return store.Key(kindMessage, k.Tenant, k.Context, fmt.Sprintf("%012d", seq))
}

func nodeKey(k Key, level, index int) string {
	return store.Key(kindNode, k.Tenant, k.Context, fmt.Sprintf("%02d", level), fmt.Sprintf("%010d", index))
}

func focusKey(k Key, level, index int) string {
	return store.Key(kindFocus, k.Tenant, k.Context, fmt.Sprintf("%02d", level), fmt.Sprintf("%010d", index))
}

// parseFocusKey returns the node a focus telemetry key names.
func parseFocusKey(key string) (level, index int, ok bool) {
	i := strings.LastIndexByte(key, ':')
	j := strings.LastIndexByte(key[:max(i, 0)], ':')
	if i < 0 || j < 0 {
		return 0, 0, false
	}
	l, err1 := strconv.Atoi(key[j+1 : i])
	n, err2 := strconv.Atoi(key[i+1:])
	return l, n, err1 == nil && err2 == nil
}

func vecKey(k Key, block int) string {
	return store.Key(kindVector, k.Tenant, k.Context, fmt.Sprintf("%010d", block))
}

func responseKey(k Key, id string) string { return store.Key(kindResponse, k.Tenant, k.Context, id) }

func responseIndexKey(tenant, id string) string { return store.Key(kindResponseIndex, tenant, id) }

func provKey(k Key, seq int64) string {
	return store.Key(kindProvenance, k.Tenant, k.Context, fmt.Sprintf("%012d", seq))
}

// deleteContext removes a context's header, every record of every kind and
// the index entries of its responses, in one transaction. The caller holds
// the context's lock, so no response is stored in between.
func (e *Engine) deleteContext(k Key) error {
	prefixes := make([]string, len(recordKinds))
	for i, kind := range recordKinds {
		prefixes[i] = recordPrefix(kind, k)
	}
	exact := make([]string, len(singleKinds))
	for i, kind := range singleKinds {
		exact[i] = singleKey(kind, k)
	}
	rp := recordPrefix(kindResponse, k)
	err := e.st.Scan(rp, func(key, _ string) bool {
		if id, err := url.QueryUnescape(key[len(rp):]); err == nil {
			exact = append(exact, responseIndexKey(k.Tenant, id))
		}
		return true
	})
	if err != nil {
		return err
	}
	_, err = e.st.Delete(exact, prefixes)
	return err
}
