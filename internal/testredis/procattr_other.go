//go:build !linux

package testredis

import "os/exec"

// setProcAttr does nothing outside Linux.
func setProcAttr(*exec.Cmd) {}
