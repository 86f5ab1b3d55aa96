//go:build unix

package main

import "syscall"

// cpuMs returns the CPU time (user and system) the process has used, in
// milliseconds: a per-request cost that a loaded machine stretches far less
// than wall time.
func cpuMs() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}
