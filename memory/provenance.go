package memory

import "github.com/megacontext/megacontext/memory/store"

// provRecord is one provenance record: something that happened to a
// context beyond ingest (a fork, a merge, an erasure). It is stored as the
// bundle line it is exported as, so it never holds erased text.
type provRecord struct {
	// Type is recProvenance.
	Type string `json:"type"`
	// Seq numbers the context's provenance records from 0.
	Seq int64 `json:"seq"`
	// Kind is provFork, provMerge or provForget.
	Kind string `json:"kind"`
	// Time is when it happened (Unix ms); Caller who asked, Reason why.
	Time   int64  `json:"time"`
	Caller string `json:"caller,omitempty"`
	Reason string `json:"reason,omitempty"`
	// From is the other context: a fork's source, a merge's other side.
	From string `json:"from,omitempty"`
	// At is a fork's last message taken from the source.
	At *int64 `json:"at,omitempty"`
	// Messages are the messages concerned: merged in, or erased.
	Messages []int64 `json:"messages,omitempty"`
	// Salt is the random salt (hex) of an erasure's hashes.
	Salt string `json:"salt,omitempty"`
	// Hashes are "sha256:" and the hex SHA-256 of the salt and each
	// erased message's former text.
	Hashes []string `json:"hashes,omitempty"`
	// Match is the same hash of the literal an erasure matched.
	Match string `json:"match,omitempty"`
	// FirstBlock and LastBlock are the blocks added (merge) or rewritten
	// (forget), inclusive; FirstBlock is -1 for none.
	FirstBlock int `json:"first_block"`
	LastBlock  int `json:"last_block"`
}

// Provenance record kinds.
const (
	provFork   = "fork"
	provMerge  = "merge"
	provForget = "forget"
)

// provenanceKV numbers p as k's next provenance record and returns the
// store record to write with the change it records.
func (e *Engine) provenanceKV(k Key, p provRecord) (store.KV, error) {
	n := int64(0)
	if err := e.st.Scan(recordPrefix(kindProvenance, k), func(string, string) bool { n++; return true }); err != nil {
		return store.KV{}, err
	}
	p.Type, p.Seq = recProvenance, n
	return store.KV{Key: provKey(k, n), Value: mustJSON(p)}, nil
}
