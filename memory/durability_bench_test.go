package memory

import (
	"math/rand/v2"
	"testing"

	"github.com/megacontext/megacontext/memory/store"
)

// BenchmarkStoreReply measures what a client's acknowledgement now waits
// for: storing the reply (AppendResponse, a reply of ~40 words) in a store
// on disk, under both durability policies. With "second" the record is
// written to the OS (kill -9 loses nothing); with "always" it is also
// fsynced (a power loss loses nothing).
func BenchmarkStoreReply(b *testing.B) {
	for _, sync := range []store.Sync{store.SyncSecond, store.SyncAlways} {
		b.Run("sync="+string(sync), func(b *testing.B) {
			e, err := testOpen(b, Options{Dir: b.TempDir(), Sync: sync, Now: fixedClock()})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			k := Key{Tenant: "bench", Context: "replies"}
			w, err := e.Prepare(Request{Key: k, Messages: []Message{msg("user", "Tell me everything.")}, Budget: 4096, PerMessage: 5, TailPercent: 40})
			if err != nil {
				b.Fatal(err)
			}
			r := rand.New(rand.NewPCG(4, 4))
			parent, next := w.LastSeq, w.NextSeq
			for b.Loop() {
				if err := e.AppendResponse(k, parent, next, msg("assistant", filler(r, 40)), false); err != nil {
					b.Fatal(err)
				}
				parent, next = next, next+1
			}
		})
	}
}
