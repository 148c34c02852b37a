//go:build !linux

package main

import "os/exec"

// setRedisProcAttr does nothing outside Linux: there is no parent-death
// signal, so a killed cachenode may leave its redis-server running.
func setRedisProcAttr(*exec.Cmd) {}
