package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/batchlatch/batchlatch/internal/buildtags"
)

// Every build of the binary has buildtags.Tags: the image's, the README's
// commands, the scripts' and those of the tests and benchmarks that build
// it. A build without them links other code, and its size and memory are
// not what users run.
func TestEveryBuildHasTheTags(t *testing.T) {
	const root = "../.."
	// A command line that builds or runs the binary or tests it: go build,
	// run or install of ./cmd/batchlatch (or ".", in its own directory's
	// Go code), go test and go vet in the scripts.
	shell := regexp.MustCompile(`\bgo (build|run|install|test|vet)\b.*`)
	goExec := regexp.MustCompile(`"go", "(build|run|install)"[^)]*`)
	tags := regexp.MustCompile(`-tags[ =]"?([\w,$]+)`)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, ".") && name != "." && name != ".." || name == "testdata" || name == "docs" || name == "examples" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		var lines []string
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case name == "Dockerfile" || rel == "README.md":
			for _, m := range shell.FindAllString(string(b), -1) {
				if strings.Contains(m, "cmd/batchlatch") && !strings.Contains(m, "kubectl-batchlatch") {
					lines = append(lines, m)
				}
			}
		case strings.HasPrefix(rel, "hack/") && strings.HasSuffix(name, ".sh"):
			for _, l := range strings.Split(string(b), "\n") {
				m := shell.FindString(l)
				if !strings.HasPrefix(strings.TrimSpace(l), "#") && (strings.HasPrefix(m, "go test") || strings.HasPrefix(m, "go vet")) {
					lines = append(lines, m)
				}
			}
		case strings.HasSuffix(name, ".go") && rel != "cmd/batchlatch/buildtags_test.go":
			for _, m := range goExec.FindAllString(string(b), -1) {
				if strings.Contains(m, `"./cmd/batchlatch"`) || strings.Contains(m, `"."`) && strings.HasPrefix(rel, "cmd/batchlatch/") {
					lines = append(lines, m)
				}
			}
		}
		for _, line := range lines {
			checked++
			if strings.Contains(line, "buildtags.Tags") {
				continue
			}
			m := tags.FindStringSubmatch(line)
			ok := m != nil && (m[1] == "$tags" && strings.Contains(string(b), "\ntags="+buildtags.Tags+"\n") || hasTags(m[1]))
			if !ok {
				t.Errorf("%s: %q builds without -tags %s", rel, line, buildtags.Tags)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("found %d builds only: the patterns no longer match the files", checked)
	}
}

// hasTags reports whether a -tags value holds every tag of buildtags.Tags.
func hasTags(value string) bool {
	have := strings.Split(value, ",")
	for _, want := range strings.Split(buildtags.Tags, ",") {
		found := false
		for _, h := range have {
			found = found || h == want
		}
		if !found {
			return false
		}
	}
	return true
}
