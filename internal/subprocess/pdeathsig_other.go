//go:build !linux

package subprocess

import "os/exec"

func setParentDeathSignal(*exec.Cmd) {}
