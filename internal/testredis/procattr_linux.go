package testredis

import (
	"os/exec"
	"syscall"
)

// setProcAttr asks the kernel to SIGKILL redis-server if the test binary dies
// without running its cleanups (a panic or a timeout kill), so no server
// outlives its test run.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
