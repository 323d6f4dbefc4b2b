package api

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

const (
	// MaxNamespaceLength is a Kubernetes namespace's (a DNS-1123 label).
	MaxNamespaceLength = 63
	// MaxNameLength is a Kubernetes object name's (a DNS-1123 subdomain).
	MaxNameLength = 253
	// MaxKeyLength bounds a job's identity as the stores keep it,
	// "<namespace>.<job>": one key of a ConfigMap, which may be at most 253
	// characters. Checking it here, for every entry point, means that an
	// identity no store can hold is bad input, never a store error.
	MaxKeyLength = 253
)

// ValidateNamespace checks a namespace that arrived in field.
func ValidateNamespace(field, namespace string) error {
	if namespace == "" {
		return &FieldError{Field: field, Message: "is required"}
	}
	if len(namespace) > MaxNamespaceLength || !dns1123Label.MatchString(namespace) {
		return &FieldError{Field: field, Message: fmt.Sprintf("%s is not a Kubernetes namespace name (a DNS-1123 label: lower-case letters, digits and '-', at most %d characters)", Quote(namespace), MaxNamespaceLength)}
	}
	return nil
}

// CronJobKeyPrefix starts the stored name of a CronJob's job:
// "<namespace>.cronjob_<name>". '_' is in no Kubernetes object name, so it
// cannot be mistaken for a CronWorkflow's "<namespace>.<name>", whose form
// (and every key stored before CronJobs were watched) stays as it was.
const CronJobKeyPrefix = "cronjob_"

// ValidateJobName checks the name of a job of kind Workflow of a valid
// namespace; it arrived in field. An empty name, the namespace as a whole,
// is valid.
func ValidateJobName(field, namespace, job string) error {
	return ValidateJob(field, KindWorkflow, namespace, job)
}

// ValidateJob checks the name of a job of that kind (KindWorkflow or
// KindCronJob) of a valid namespace; it arrived in field. A CronJob's job
// always has a name.
func ValidateJob(field, kind, namespace, job string) error {
	prefix := ""
	switch kind {
	case KindWorkflow:
	case KindCronJob:
		if job == "" {
			return &FieldError{Field: field, Message: "is required for a CronJob"}
		}
		prefix = CronJobKeyPrefix
	default:
		return &FieldError{Field: "kind", Message: fmt.Sprintf("%s is not a kind of job; accepted values: %s, %s", Quote(kind), KindWorkflow, KindCronJob)}
	}
	if job == "" {
		return nil
	}
	if len(job) > MaxNameLength || !dns1123Subdomain.MatchString(job) {
		return &FieldError{Field: field, Message: fmt.Sprintf("%s is not a Kubernetes object name (a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most %d characters)", Quote(job), MaxNameLength)}
	}
	if keyLength := len(namespace) + 1 + len(prefix) + len(job); keyLength > MaxKeyLength {
		return &FieldError{Field: field, Message: fmt.Sprintf("is %d characters long: with namespace %q it makes a %d-character job key, over the limit of %d (a ConfigMap key); at most %d characters in this namespace",
			len(job), namespace, keyLength, MaxKeyLength, MaxKeyLength-1-len(prefix)-len(namespace))}
	}
	return nil
}

// maxQuoted bounds what an error message echoes of a value: a hostile
// 60 KB field must not come back whole.
const maxQuoted = 64

// Quote quotes s for an error message, cut to its first few dozen bytes.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(s[:cut]), len(s))
}
