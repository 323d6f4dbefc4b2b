package reliability

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Report is every figure of a run.
type Report struct {
	Command    string
	Setup      string
	Load       LoadResult
	Faults     []FaultResult
	Cumulative Accounting // after the last phase so far
	Final      FinalResult
	Hostile    HostileResult
	Fuzz       FuzzResult
}

// LoadResult is the load phase's figures.
type LoadResult struct {
	Prefill  *Stats // one failed run of each job, before
	Stats    *Stats
	Acc      Accounting
	EntryGap time.Duration
	RSS      []Sample
	// RSSEvery is the period of the RSS samples (-sample).
	RSSEvery time.Duration
	// The machine's CPU used by the suite (replicas, cluster, load
	// generator, fake) and by other processes, as fractions of all cores.
	SuiteCPU, OthersCPU float64
	CPUByProcess        string // the suite's processes' shares
	Leader              string // the replica that led at the end
	Readers             ReadersResult
}

// FaultResult is one fault's figures.
type FaultResult struct {
	Key                            string // AllFaults
	Name                           string
	Stats                          *Stats
	Acc                            Accounting
	Start, End                     time.Time
	Lost, Extra                    int // acknowledged runs lost, runs counted twice, in this phase
	CallbackGap, EntryGap          time.Duration
	CallbacksBack, EntriesBack     time.Duration
	CallbacksBackOK, EntriesBackOK bool
	SinkErrors                     float64 // batchlatch_sink_errors_total added meanwhile (a killed replica's not counted)
}

// FinalResult is the end of the replicas' run.
type FinalResult struct {
	Redelivered, NotDuplicate int
	Examples                  []string
	Acc                       Accounting
	Shutdown                  []string // replicas that did not exit 0 on SIGTERM
	Panics                    []string // replicas whose log mentions a panic
}

// Problems lists what fails the run.
func (r *Report) Problems(cfg Config) []string {
	var p []string
	if st := r.Load.Stats; st != nil && st.Acked == 0 {
		p = append(p, "load: no callback acknowledged")
	}
	if r.Load.Acc.Lost > 0 || r.Load.Acc.Extra > 0 {
		p = append(p, fmt.Sprintf("load: %d acknowledged runs lost, %d counted twice: %s", r.Load.Acc.Lost, r.Load.Acc.Extra, strings.Join(r.Load.Acc.Examples, "; ")))
	}
	if g := rssGrowth(r.Load.RSS); g != "" {
		p = append(p, "load: "+g)
	}
	for _, f := range r.Faults {
		if f.Lost > 0 || f.Extra > 0 {
			p = append(p, fmt.Sprintf("%s: %d acknowledged runs lost, %d counted twice: %s", f.Name, f.Lost, f.Extra, strings.Join(f.Acc.Examples, "; ")))
		}
		if !f.CallbacksBackOK || !f.EntriesBackOK || f.CallbacksBack > cfg.RecoverWithin || f.EntriesBack > cfg.RecoverWithin {
			p = append(p, fmt.Sprintf("%s: not recovered within %s (callbacks %s, entries %s)", f.Name, cfg.RecoverWithin, back(f.CallbacksBack, f.CallbacksBackOK), back(f.EntriesBack, f.EntriesBackOK)))
		}
	}
	if r.Final.NotDuplicate > 0 {
		p = append(p, fmt.Sprintf("redelivery: %d of %d last acknowledged runs not recognized as duplicates: %s", r.Final.NotDuplicate, r.Final.Redelivered, strings.Join(r.Final.Examples, "; ")))
	}
	if r.Final.Acc.Lost > 0 || r.Final.Acc.Extra > 0 {
		p = append(p, fmt.Sprintf("final: %d acknowledged runs lost, %d counted twice", r.Final.Acc.Lost, r.Final.Acc.Extra))
	}
	for _, s := range r.Final.Shutdown {
		p = append(p, "SIGTERM: "+s)
	}
	for _, s := range r.Final.Panics {
		p = append(p, "panic in the log of "+s)
	}
	p = append(p, r.Hostile.Problems...)
	if r.Fuzz.Err != "" {
		p = append(p, "fuzz: "+r.Fuzz.Err)
	}
	return p
}

// rssGrowth says whether a replica's RSS grew through the phase: the median
// of the last third of its samples against that of the first third. Empty
// when it did not (by more than 25% and 32 MB).
func rssGrowth(samples []Sample) string {
	var out []string
	for name, xs := range byReplica(samples) {
		if len(xs) < 6 {
			continue
		}
		first, last := median(xs[:len(xs)/3]), median(xs[len(xs)-len(xs)/3:])
		if float64(last) > 1.25*float64(first) && last-first > 32e6 {
			out = append(out, fmt.Sprintf("%s RSS grew from %s to %s (medians of the first and last third)", name, mb(first), mb(last)))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func byReplica(samples []Sample) map[string][]Sample {
	m := map[string][]Sample{}
	for _, s := range samples {
		m[s.Replica] = append(m[s.Replica], s)
	}
	return m
}

func median(xs []Sample) int64 {
	v := make([]int64, len(xs))
	for i, x := range xs {
		v[i] = x.Bytes
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

func back(d time.Duration, ok bool) string {
	if !ok {
		return "never"
	}
	return fmt.Sprintf("%.1f", d.Seconds())
}

func secs(d time.Duration) string { return fmt.Sprintf("%.0f", d.Seconds()) }

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%s ms", thousands(int(d.Round(time.Millisecond)/time.Millisecond)))
}

// thousands writes n with comma separators.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func outcomes(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	keys := slices.Sorted(maps.Keys(m))
	var parts []string
	total := 0
	for _, k := range keys {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s %s", thousands(m[k]), k))
	}
	return fmt.Sprintf("%s (%s)", thousands(total), strings.Join(parts, ", "))
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if r.Command != "" {
		p("`%s`: %s.\n\n", r.Command, r.Setup)
	} else {
		p("%s.\n\n", r.Setup)
	}

	if st := r.Load.Stats; st != nil {
		d := st.End.Sub(st.Start)
		if pre := r.Load.Prefill; pre != nil {
			pd := pre.End.Sub(pre.Start)
			p("First one failed run of each job: %s acknowledged in %s (%s/s).\n\n", thousands(pre.Acked), pd.Round(time.Second), thousands(int(float64(pre.Acked)/pd.Seconds())))
		}
		p("**Load** (%s; of the machine's CPU the suite used %.0f%%: %s; other processes %.0f%%; the leader was %s):\n\n",
			d.Round(time.Second), 100*r.Load.SuiteCPU, r.Load.CPUByProcess, 100*r.Load.OthersCPU, r.Load.Leader)
		p("| callbacks acknowledged | callbacks/s | p50 | p99 | errors | never acknowledged | acknowledged lost | longest without entries | RSS every %s |\n", r.Load.RSSEvery)
		p("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |\n")
		p("| %s | %s | %s | %s | %s | %s | %d | %s s | %s |\n\n",
			thousands(st.Acked), thousands(int(float64(st.Acked)/d.Seconds())),
			ms(Percentile(st.Latencies, 0.50)), ms(Percentile(st.Latencies, 0.99)),
			outcomes(st.Outcomes), thousands(st.Unacked), r.Load.Acc.Lost, secs(r.Load.EntryGap), rssSeries(r.Load.RSS))
		if rd := r.Load.Readers; rd.Readers > 0 {
			p("Meanwhile %d readers scraped `/metrics` (a quarter with gzip) and loaded the status page of both replicas: %s.\n\n", rd.Readers, rd.Summary())
		}
	}

	if len(r.Faults) > 0 {
		p("**Faults**, each during a stream of callbacks:\n\n")
		p("| fault | callbacks acknowledged | errors | never acknowledged | acknowledged lost | longest without a 2xx | longest without entries | 2xx again after | entries again after |\n")
		p("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, f := range r.Faults {
			p("| %s | %s | %s | %s | %d | %s s | %s s | %s s | %s s |\n", f.Name, thousands(f.Stats.Acked), outcomes(f.Stats.Outcomes), thousands(f.Stats.Unacked),
				f.Lost, secs(f.CallbackGap), secs(f.EntryGap), back(f.CallbacksBack, f.CallbacksBackOK), back(f.EntriesBack, f.EntriesBackOK))
		}
		p("\nThe fault lasts from its start to the restart's readiness (for the leader: the kill); \"again after\" counts from its end. "+
			"Cloud Logging errors the replicas counted (`batchlatch_sink_errors_total`: failed write requests and entries dropped; a killed replica's not included): %s.\n\n", sinkErrors(r.Faults))
	}
	if r.Final.Redelivered > 0 {
		a := r.Final.Acc
		p("In all: %s runs sent, %s acknowledged, %s counted by the store; acknowledged lost: **%d**, counted twice: %d (%s sent but never acknowledged, each stored or not). "+
			"Each job's last acknowledged run redelivered: %s of %s recognized as duplicates.\n\n",
			thousands(a.Sent), thousands(a.Acked), thousands(a.Stored), a.Lost, a.Extra, thousands(a.Unconfirmed),
			thousands(r.Final.Redelivered-r.Final.NotDuplicate), thousands(r.Final.Redelivered))
	}
	if len(r.Hostile.Rows) > 0 {
		p("**Bad input**, against a replica of its own (RSS %s before, %s at most, %s after; %s):\n\n", mb(r.Hostile.RSSBefore), mb(r.Hostile.RSSMax), mb(r.Hostile.RSSAfter), r.Hostile.Summary)
		p("| input | requests | answers | stored |\n| --- | ---: | --- | --- |\n")
		for _, row := range r.Hostile.Rows {
			p("| %s | %s | %s | %s |\n", row.Input, thousands(row.Requests), row.Answers, row.Stored)
		}
		p("\n")
	}
	if r.Fuzz.Execs > 0 {
		p("**Fuzz**: `%s`: %s.\n", r.Fuzz.Command, r.Fuzz.Summary)
	}
	return b.String()
}

func sinkErrors(faults []FaultResult) string {
	var parts []string
	for _, f := range faults {
		parts = append(parts, fmt.Sprintf("%s during %s", thousands(int(f.SinkErrors)), f.Key))
	}
	return strings.Join(parts, ", ")
}

// rssSeries is each replica's RSS samples in MB.
func rssSeries(samples []Sample) string {
	m := byReplica(samples)
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		var v []string
		for _, s := range m[name] {
			v = append(v, fmt.Sprintf("%.0f", float64(s.Bytes)/1e6))
		}
		parts = append(parts, fmt.Sprintf("%s: %s MB", strings.TrimPrefix(name, "replica-"), strings.Join(v, " ")))
	}
	return strings.Join(parts, "; ")
}
