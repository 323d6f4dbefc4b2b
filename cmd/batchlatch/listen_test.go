package main

import (
	"os"
	"strings"
	"testing"
)

// The binary alone listens on loopback (TestConfigFromFlagsAndEnvironment);
// the image must take connections on the port it exposes, or `docker run -p`
// reaches nothing. (The chart's own --listen is checked in chart_test.go.)
func TestImageListensOnItsExposedPort(t *testing.T) {
	data, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// The final stage's ENV and EXPOSE: what the running image gets.
	env := map[string]string{}
	var exposed []string
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			env, exposed = map[string]string{}, nil
		case "ENV":
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: %q: use ENV KEY=VALUE", strings.TrimSpace(line))
				}
				env[k] = v
			}
		case "EXPOSE":
			exposed = append(exposed, fields[1:]...)
		}
	}
	if len(exposed) != 1 {
		t.Fatalf("Dockerfile exposes %v, want one port", exposed)
	}
	cfg, err := parseConfig(nil, func(k string) string { return env[k] }, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if want := ":" + strings.TrimSuffix(exposed[0], "/tcp"); cfg.Listen != want {
		t.Errorf("the image listens on %q, want %q (every interface, the exposed port)", cfg.Listen, want)
	}
}
