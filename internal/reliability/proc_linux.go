package reliability

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes the kernel kill the child when this process
// dies, so that a crashed or timed-out run leaves no replica behind.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
