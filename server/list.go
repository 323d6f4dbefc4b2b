package server

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// The REST lists come in pages, as Kubernetes' do: ?limit= bounds a page
// and an answer's "continue", when set, is an opaque token that asks for the
// next one. The token holds the position after the page's last job (its sort
// key), not an offset, so that a job added or removed between two pages
// neither repeats another nor hides one. Hand-written: neither gin nor the
// standard library paginates, and a list of a few thousand jobs in memory
// needs no more than a binary search.
const (
	// defaultListLimit is a page without ?limit=: a request's answer stays
	// bounded (about 1 MB at most) whoever asks.
	defaultListLimit = 500
	// maxListLimit is the largest ?limit= taken.
	maxListLimit = 1000
)

// The lists a continue token can come from.
const (
	listOfJobs     = "jobs"
	listOfFailures = "failures"
)

// listPosition is what a continue token holds: which list (and filter) it
// continues, and the last job its page showed.
type listPosition struct {
	List      string `json:"list"`
	Namespace string `json:"namespace,omitempty"`
	// The last job shown: its key and, in the failures (ordered by it),
	// since when it was failing.
	After state.Key  `json:"after"`
	Since *time.Time `json:"since,omitempty"`
}

// continueToken is the token that asks for what follows last.
func continueToken(list, namespace string, last api.Job) string {
	p := listPosition{List: list, Namespace: namespace, After: state.KeyFor(last.Kind, last.Namespace, last.Job)}
	if list == listOfFailures {
		p.Since = last.FailingSince
	}
	data, _ := json.Marshal(p) // plain strings and a time: cannot fail
	return base64.RawURLEncoding.EncodeToString(data)
}

// listQuery reads ?limit= and ?continue= of a list (namespace its filter):
// the page's size, and where it starts (nil: at the beginning).
func listQuery(c *gin.Context, list, namespace string) (int, *listPosition, error) {
	limit := defaultListLimit
	if s, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			return 0, nil, &api.FieldError{Field: "limit", Message: fmt.Sprintf("%s is not a number of jobs from 1 to %d", api.Quote(s), maxListLimit)}
		}
		limit = n
	}
	token, ok := c.GetQuery("continue")
	if !ok {
		return limit, nil, nil
	}
	p, err := readContinue(token)
	if err != nil {
		return 0, nil, &api.FieldError{Field: "continue", Message: err.Error() + "; list again without it"}
	}
	if p.List != list || p.Namespace != namespace {
		return 0, nil, &api.FieldError{Field: "continue", Message: "is the token of another list; list again without it"}
	}
	return limit, &p, nil
}

// readContinue decodes a token of continueToken, strictly: a token that
// did not come from it is refused, never read as some other position.
func readContinue(token string) (listPosition, error) {
	data, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(data) == 0 {
		return listPosition{}, fmt.Errorf("is not a token this server gave")
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var p listPosition
	if err := dec.Decode(&p); err != nil || dec.More() {
		return listPosition{}, fmt.Errorf("is not a token this server gave")
	}
	if (p.List == listOfFailures) != (p.Since != nil) || p.After.Namespace == "" {
		return listPosition{}, fmt.Errorf("is not a token this server gave")
	}
	return p, nil
}

// compareKeys orders keys as state.SortByKey does.
func compareKeys(a, b state.Key) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name), strings.Compare(a.Kind, b.Kind))
}

// pageAfter returns at most limit of sorted items from the first one that
// comes after the position (isAfter; nil: from the first), and whether more
// follow.
func pageAfter[T any](items []T, limit int, isAfter func(T) bool) ([]T, bool) {
	start := 0
	if isAfter != nil {
		start = sort.Search(len(items), func(i int) bool { return isAfter(items[i]) })
	}
	end := min(start+limit, len(items))
	return items[start:end], end < len(items)
}

// jobsAfter: the jobs, ordered by key, that come after p.
func jobsAfter(p *listPosition) func(state.Job) bool {
	if p == nil {
		return nil
	}
	return func(j state.Job) bool { return compareKeys(j.Key(), p.After) > 0 }
}

// failingAfter: the failing jobs, ordered as state.Failing orders them
// (longest-failing first, then by key), that come after p.
func failingAfter(p *listPosition) func(state.Job) bool {
	if p == nil {
		return nil
	}
	return func(j state.Job) bool {
		if !j.FailingSince.Equal(*p.Since) {
			return j.FailingSince.After(*p.Since)
		}
		return j.Key().String() > p.After.String()
	}
}
