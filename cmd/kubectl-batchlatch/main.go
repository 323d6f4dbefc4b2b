// Command kubectl-batchlatch is batchlatch's client as a kubectl plugin:
// `kubectl batchlatch failures` asks the batchlatch of the current
// kubeconfig context through the API server's service proxy. It is a
// binary of its own, rather than a link to batchlatch, so that one
// `go install` puts it on the PATH, without the server's dependencies.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/batchlatch/batchlatch/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := cli.Run(ctx, cli.KubectlPlugin, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	var exit cli.ExitError
	switch {
	case errors.As(err, &exit): // it said why on stderr
		os.Exit(exit.Code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(cli.ExitTrouble)
	}
}
