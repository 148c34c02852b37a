package main

import (
	"os/exec"
	"syscall"
)

// setRedisProcAttr makes the kernel SIGKILL the supervised redis-server when
// cachenode dies (strictly: when the thread that started it exits; see
// redisProc.supervise), so a crashed or killed cachenode leaves no Redis
// behind.
func setRedisProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
