package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// client-go's logs go to the latest run's logger, with their attributes.
func TestRouteKlogFollowsTheLatestRun(t *testing.T) {
	var first, second bytes.Buffer
	routeKlog(slog.New(slog.NewJSONHandler(&first, nil)).With("component", "client-go"))
	klog.Background().WithValues("lock", "a").Info("to the first")
	routeKlog(slog.New(slog.NewJSONHandler(&second, nil)).With("component", "client-go"))
	klog.Background().WithValues("lock", "b").Info("to the second")
	if got := first.String(); !strings.Contains(got, `"msg":"to the first"`) || !strings.Contains(got, `"lock":"a"`) || !strings.Contains(got, `"component":"client-go"`) || strings.Contains(got, "second") {
		t.Errorf("first logger got %s", got)
	}
	if got := second.String(); !strings.Contains(got, `"msg":"to the second"`) || !strings.Contains(got, `"lock":"b"`) || strings.Contains(got, "to the first") {
		t.Errorf("second logger got %s", got)
	}
}
