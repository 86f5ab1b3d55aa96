//go:build !unix

package main

// cpuMs is not measured off unix: it reports 0.
func cpuMs() float64 { return 0 }
