//go:build !linux

package main

import "os/exec"

// setParentDeathSignal does nothing where the system has no parent-death
// signal: the signal handler alone cleans up.
func setParentDeathSignal(*exec.Cmd) {}
