// Package buildtags holds the build tags of every build of the batchlatch
// binary: the image's (Dockerfile), the README's commands, hack/test.sh and
// the tests and benchmarks that build it, so that what is measured is what
// users run (cmd/batchlatch's TestEveryBuildHasTheTags checks the files).
package buildtags

// Tags is the value of -tags. gin's nomsgpack leaves out ugorji's msgpack
// codec, which gin links for its msgpack binding and renderer; the server
// binds and renders only JSON. It is 9 MB of the binary (docs/performance.md).
const Tags = "nomsgpack"
