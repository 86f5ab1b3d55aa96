package main

import "github.com/megacontext/megacontext/memory"

// cacheOptions sets the engine's byte budget for cached contexts (0 keeps
// the default).
func cacheOptions(o memory.Options, budget int64) memory.Options {
	o.CacheBytes = budget
	return o
}

// charged is what the engine charges the loaded contexts.
func charged(e *memory.Engine) int64 { return e.CachedBytes() }
