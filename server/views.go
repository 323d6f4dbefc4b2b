package server

import (
	"context"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Views builds jobs as the API, the status page and the CLI show them: the
// stored state plus what the watchers (schedules) and the silences add.
type Views struct {
	// Store is jobs: the writes made through it are counted.
	Store     state.Store
	jobs      *sharedJobs
	Now       func() time.Time
	Schedules api.ScheduleOf
	// Silences returns the silences in force; nil: none.
	Silences func(ctx context.Context) ([]api.Silence, error)
	// MissedGrace is --missed-grace, for whether a job is late.
	MissedGrace time.Duration
}

// silences returns the silences in force at now.
func (v Views) silences(ctx context.Context, now time.Time) ([]api.Silence, error) {
	if v.Silences == nil {
		return nil, nil
	}
	all, err := v.Silences(ctx)
	if err != nil {
		return nil, err
	}
	return state.InForce(all, now), nil
}

// of is j as shown at now, under the silences in force.
func (v Views) of(j state.Job, now time.Time, silences []api.Silence) api.Job {
	out := j.View(now)
	out.Schedule = v.Schedules(j.Key().KindName(), j.Namespace, j.Name, now)
	if out.Schedule == nil {
		// A watched job's missed ticks say it is late.
		out.Expected = j.ExpectedAt(now, v.MissedGrace)
	}
	out.Silenced = state.SilenceOf(j.Key(), silences)
	out.Alerting = out.Alerting && out.Silenced == nil
	return out
}

// List returns every job of namespace (all when empty), ordered by key.
func (v Views) List(ctx context.Context, namespace string) ([]api.Job, error) {
	jobs, err := listJobs(ctx, v.jobs, namespace)
	if err != nil {
		return nil, err
	}
	now := v.Now()
	silences, err := v.silences(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, v.of(j, now, silences))
	}
	return out, nil
}

// ListPage returns at most limit jobs of namespace (all when empty),
// ordered by key, from the first after p (nil: from the first), and whether
// more follow. Only the page's jobs are made views of.
func (v Views) ListPage(ctx context.Context, namespace string, p *listPosition, limit int) ([]api.Job, bool, error) {
	jobs, err := listJobs(ctx, v.jobs, namespace)
	if err != nil {
		return nil, false, err
	}
	page, more := pageAfter(jobs, limit, jobsAfter(p))
	out, err := v.views(ctx, page)
	return out, more, err
}

// FailingPage is ListPage of the failing jobs, longest-failing first.
func (v Views) FailingPage(ctx context.Context, namespace string, p *listPosition, limit int) ([]api.Job, bool, error) {
	var failing []state.Job
	if namespace == "" {
		l, err := v.jobs.list(ctx)
		if err != nil {
			return nil, false, err
		}
		failing = l.Failing() // sorted once for every request that shares l
	} else {
		jobs, err := listJobs(ctx, v.jobs, namespace)
		if err != nil {
			return nil, false, err
		}
		failing = state.Failing(jobs)
	}
	page, more := pageAfter(failing, limit, failingAfter(p))
	out, err := v.views(ctx, page)
	return out, more, err
}

// views are jobs as shown now (never nil: an empty list is [] in JSON).
func (v Views) views(ctx context.Context, jobs []state.Job) ([]api.Job, error) {
	now := v.Now()
	silences, err := v.silences(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, v.of(j, now, silences))
	}
	return out, nil
}

// Get returns one job with its runs and what it usually does, or
// state.ErrNotFound. Only one job's view has them: in a list of hundreds
// they would be most of it.
func (v Views) Get(ctx context.Context, key state.Key) (api.JobDetail, error) {
	j, err := getJob(ctx, v.Store, key)
	if err != nil {
		return api.JobDetail{}, err
	}
	view, err := v.One(ctx, j)
	out := api.JobDetail{Job: view, Runs: j.RunViews()}
	if out.Runs != nil {
		usual := state.UsualOf(out.Runs)
		out.Usual = &usual
	}
	return out, err
}

// One is j as shown now.
func (v Views) One(ctx context.Context, j state.Job) (api.Job, error) {
	now := v.Now()
	silences, err := v.silences(ctx, now)
	if err != nil {
		return api.Job{}, err
	}
	return v.of(j, now, silences), nil
}
