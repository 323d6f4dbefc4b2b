// Package subprocess starts the helper processes of the tests (controllers,
// Argo's agent) so that they die with the test binary, even when it is
// killed or crashes before its cleanups run.
package subprocess

import (
	"os/exec"
	"runtime"
)

// Process is a started command.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts cmd. On Linux the kernel kills it (SIGKILL) when the test
// binary exits: the parent-death signal fires when the thread that started
// the child ends, so the child is started and waited for on a goroutine
// locked to its thread, which thus lives exactly as long as the child or
// the process. Elsewhere, a crashed test binary leaves the child running.
func Start(cmd *exec.Cmd) (*Process, error) {
	setParentDeathSignal(cmd)
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine, after the
		// child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed once the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is what cmd.Wait returned; only valid once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}
