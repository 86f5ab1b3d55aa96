package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel kill cmd when the bench dies, even
// by SIGKILL.
func setParentDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
