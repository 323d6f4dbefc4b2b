// Package reliability is batchlatch's reliability suite: the real binary,
// two replicas with leader election on a real kube-apiserver + etcd
// (internal/kubetest) and a Cloud Logging fake (internal/fakelogging), all
// on 127.0.0.1, under
//
//   - load: callbacks from many clients for minutes, with their rate,
//     latency, errors and the replicas' RSS every 10 s;
//   - faults during a stream of callbacks: kube-apiserver killed and
//     restarted, Cloud Logging failing with Unavailable, the leader
//     SIGKILLed, etcd killed and restarted; for each, the acknowledged
//     results lost (must be 0), the longest time without an acknowledged
//     callback and without alarm entries, and the time to recover;
//   - bad input: the callback decoder's fuzz target for a fixed number of
//     executions and a table of hostile requests (huge labels, deep JSON,
//     invalid UTF-8, thousands of namespaces from one client, slow bodies).
//
// It prints its figures as a Markdown table. Run it with one command:
//
//	hack/reliability.sh            # the full run (about 20 minutes)
//	hack/reliability.sh -short     # a smoke run (a few minutes)
//
// The test that drives it has the build tag "reliability", so 'go test ./...'
// and CI leave it out; the harness (this package's other files) is built and
// vetted with the rest of the module.
package reliability
