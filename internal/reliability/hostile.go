package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/batchlatch/batchlatch/api"
)

// HostileResult is the bad-input phase's figures.
type HostileResult struct {
	Rows                        []HostileRow
	RSSBefore, RSSMax, RSSAfter int64
	Summary                     string
	Problems                    []string
}

// HostileRow is one kind of hostile request.
type HostileRow struct {
	Input    string
	Requests int
	Answers  string
	Stored   string
}

// hostile sends hostile requests to one replica and keeps track of which
// jobs they may have stored.
type hostile struct {
	s        *Suite
	r        *Replica
	client   *http.Client
	accepted map[string]bool // job keys that a 2xx stored
	refused  map[string]bool // job keys that only non-2xx answers named
	res      *HostileResult
	mu       sync.Mutex
}

const hostileNS = "hostile"

// hostileBody is a valid failed-run callback of job hostile/<job> with
// extra fields spliced in before the closing brace (and no failures when
// extra has some).
func hostileBody(job, extra string) []byte {
	created := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	b := fmt.Sprintf(`{"namespace":%q,"workflowName":"%s-1795485600","uid":"uid-%s","cronWorkflow":%q,"phase":"Failed","createdAt":%q,"durationSeconds":12.5`,
		hostileNS, job, job, job, created)
	if !strings.HasPrefix(extra, `"failures":`) {
		b += `,"failures":"[{\"displayName\":\"train\",\"message\":\"OOMKilled\"}]"`
	}
	if extra != "" {
		b += "," + extra
	}
	return []byte(b + "}")
}

// RunHostile starts a replica of its own (its own namespace and state, no
// leader election, entries to the fake) and sends it the hostile requests.
func (s *Suite) RunHostile() {
	s.t.Logf("bad input")
	ns := s.env.NewNamespace(s.t)
	r, err := NewReplica(s.bin, "hostile", filepath.Join(s.dir, "hostile.log"), ReplicaEnv(s.env.Kubeconfig), s.replicaArgs(ns, false)...)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		s.t.Fatal(err)
	}
	defer r.Stop()
	if err := r.WaitStatus("/readyz", 200, time.Minute); err != nil {
		s.t.Fatal(err)
	}
	res := &s.Report.Hostile
	h := &hostile{
		s: s, r: r, res: res,
		client:   &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}},
		accepted: map[string]bool{}, refused: map[string]bool{},
	}
	time.Sleep(3 * time.Second)
	rss := StartSampler(time.Second)
	rss.Watch(r)
	defer rss.Stop()
	rss.SampleNow()

	// Slow clients hold their connections through the other requests.
	slow := h.slowBodies(s.cfg.SlowConns)
	slowHeaders := h.slowHeaders()

	big := strings.Repeat("v", 56)
	var labels []string
	for i := 0; ; i++ {
		l := fmt.Sprintf("%q:%q", fmt.Sprintf("example.com/label-%04d", i), big)
		if len(strings.Join(labels, ","))+len(l)+600 > 64<<10 {
			break
		}
		labels = append(labels, l)
	}
	h.one("huge labels: "+thousands(len(labels))+" labels, a body just under 64 KiB", "labels-64k", `"labels":{`+strings.Join(labels, ",")+`}`)
	var more []string
	for i := range 16000 {
		more = append(more, fmt.Sprintf("%q:%q", fmt.Sprintf("example.com/label-%05d", i), big))
	}
	h.one("huge labels: 16,000 labels, 1.3 MB", "labels-1m", `"labels":{`+strings.Join(more, ",")+`}`)
	h.streamed("a 256 MiB body, streamed without Content-Length", "stream-256m", 256<<20)
	h.one("deep JSON: 30,000 nested arrays as a label", "deep-arrays", `"labels":{"a":`+strings.Repeat("[", 30000)+strings.Repeat("]", 30000)+`}`)
	h.one("deep JSON: 10,000 nested objects as annotations", "deep-objects", `"annotations":`+strings.Repeat(`{"a":`, 10000)+`1`+strings.Repeat("}", 10000))
	h.one("deep JSON: 30,000 nested arrays in the failures string", "deep-failures", `"failures":"`+strings.Repeat("[", 30000)+strings.Repeat("]", 30000)+`"`)
	h.raw("invalid UTF-8 in namespace", "", []byte(`{"namespace":"ml\xff","workflowName":"w-1","phase":"Failed","cronWorkflow":"utf8-ns"}`), "application/json", hostileNS+".utf8-ns", "ml\xff.utf8-ns")
	h.raw("invalid UTF-8 in cronWorkflow", "", []byte(`{"namespace":"hostile","workflowName":"w-1","phase":"Failed","cronWorkflow":"utf8-\xc3\x28"}`), "application/json", "hostile.utf8-\xc3\x28")
	h.raw("invalid UTF-8 in a failure's message, the uid and a label", "utf8-message-raw", append(append([]byte(`{"namespace":"hostile","workflowName":"utf8-message-raw-1","uid":"u\xfe\xff","cronWorkflow":"utf8-message-raw","phase":"Failed","labels":{"k\xff":"v\xc3"},"failures":[{"displayName":"s","message":"bad `), 0xff, 0xfe, 0xc3), []byte(` bytes"}]}`)...), "application/json")
	h.raw("control characters and NUL escapes in a message", "ctl-message", []byte(`{"namespace":"hostile","workflowName":"ctl-message-1","cronWorkflow":"ctl-message","phase":"Failed","failures":[{"message":"a\u0000b\u001b[31mred\u202e"}]}`), "application/json")
	h.raw("Content-Type text/plain", "ctype", hostileBody("ctype", ""), "text/plain")
	h.header("a 2 MiB header", "header-2m")
	h.namespaces(s.cfg.HostileNamespaces)
	h.collect(slow, slowHeaders)

	time.Sleep(5 * time.Second)
	rss.SampleNow()
	h.finish(rss)
}

// post sends body with contentType and returns the status (0 and the error
// when there was no answer).
func (h *hostile) post(body []byte, contentType string, header http.Header) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, h.r.URL+"/api/v1/results", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	maps.Copy(req.Header, header)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, errorKind(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e api.ErrorBody
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		msg := e.Error.Message
		if len(msg) > 64 {
			msg = strings.ToValidUTF8(msg[:64], "") + "…"
		}
		return resp.StatusCode, fmt.Sprintf("%d `%s`", resp.StatusCode, strings.ReplaceAll(msg, "`", "'"))
	}
	return resp.StatusCode, fmt.Sprint(resp.StatusCode)
}

// one sends hostileBody(job, extra).
func (h *hostile) one(input, job, extra string) {
	h.raw(input, job, hostileBody(job, extra), "application/json")
}

// raw sends body; job is the key hostile/<job> it names ("" when it names
// another: keys lists the keys it could have stored).
func (h *hostile) raw(input, job string, body []byte, contentType string, keys ...string) {
	h.send(input, job, func() (int, string) { return h.post(body, contentType, nil) }, keys...)
}

func (h *hostile) header(input, job string) {
	hdr := http.Header{"X-Padding": {strings.Repeat("p", 2<<20)}}
	h.send(input, job, func() (int, string) { return h.post(hostileBody(job, ""), "application/json", hdr) })
}

// streamed sends a body of n bytes without Content-Length: a label value
// that never ends.
func (h *hostile) streamed(input, job string, n int64) {
	h.send(input, job, func() (int, string) {
		head := hostileBody(job, `"labels":{"a":"`)
		head = head[:len(head)-1] // open: the value goes on
		body := io.MultiReader(bytes.NewReader(head), io.LimitReader(repeatByte('x'), n))
		req, _ := http.NewRequest(http.MethodPost, h.r.URL+"/api/v1/results", body)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := h.client.Do(req)
		took := time.Since(start).Round(10 * time.Millisecond)
		if err != nil {
			return 0, fmt.Sprintf("%s after %s", errorKind(err), took)
		}
		resp.Body.Close()
		return resp.StatusCode, fmt.Sprintf("%d after %s", resp.StatusCode, took)
	})
}

type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// send runs one request, checks the replica still serves, and whether the
// job it names is stored whole (after a 2xx) or not at all.
func (h *hostile) send(input, job string, do func() (int, string), keys ...string) {
	code, answer := do()
	row := HostileRow{Input: input, Requests: 1, Answers: answer}
	if job != "" {
		keys = append(keys, hostileNS+"."+job)
	}
	row.Stored = h.check(code/100 == 2, job, keys)
	h.alive(&row)
	h.res.Rows = append(h.res.Rows, row)
}

// check says whether job is stored as it should be: whole after a 2xx,
// absent otherwise.
func (h *hostile) check(ok bool, job string, keys []string) string {
	h.mu.Lock()
	for _, k := range keys {
		if ok {
			h.accepted[k] = true
		} else {
			h.refused[k] = true
		}
	}
	h.mu.Unlock()
	if job == "" {
		if ok {
			return "yes"
		}
		return "no"
	}
	code, data := h.get("/api/v1/jobs/" + hostileNS + "/" + job)
	switch {
	case !ok && code == 404:
		return "no"
	case !ok:
		h.problem(fmt.Sprintf("%s: refused but GET answers %d %.200s", job, code, data))
		return fmt.Sprintf("**yes, although refused** (%d)", code)
	case code != 200:
		h.problem(fmt.Sprintf("%s: accepted but GET answers %d %.200s", job, code, data))
		return fmt.Sprintf("**missing** (%d)", code)
	}
	var j api.Job
	if err := json.Unmarshal(data, &j); err != nil || j.ConsecutiveFailures != 1 || !j.Failing || !strings.HasPrefix(j.LastWorkflow, job+"-") || !utf8.ValidString(string(data)) {
		h.problem(fmt.Sprintf("%s: stored as %.300s", job, data))
		return "**partly**"
	}
	return "yes, whole"
}

func (h *hostile) get(path string) (int, []byte) {
	resp, err := h.client.Get(h.r.URL + path)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (h *hostile) problem(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.res.Problems = append(h.res.Problems, "bad input: "+p)
}

// alive checks the replica runs and answers /healthz.
func (h *hostile) alive(row *HostileRow) {
	if code, _ := h.get("/healthz"); code != 200 || !h.r.Alive() {
		h.problem(fmt.Sprintf("%s: the replica is down afterwards (healthz %d, exit %v)", row.Input, code, h.r.ExitErr()))
		row.Stored += " — **replica down**"
	}
}

// namespaces posts one failed run in each of n distinct namespaces, from
// one client with 16 connections.
func (h *hostile) namespaces(n int) {
	start := time.Now()
	var mu sync.Mutex
	answers := map[string]int{}
	var lat []time.Duration
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				ns := fmt.Sprintf("flood-%05d", i)
				body := []byte(fmt.Sprintf(`{"namespace":%q,"workflowName":"nightly-1795485600","uid":"flood-%d","cronWorkflow":"nightly","phase":"Failed"}`, ns, i))
				t0 := time.Now()
				code, answer := h.post(body, "application/json", nil)
				took := time.Since(t0)
				if code != 0 {
					answer = fmt.Sprint(code)
				}
				mu.Lock()
				answers[answer]++
				lat = append(lat, took)
				mu.Unlock()
				h.mu.Lock()
				if code/100 == 2 {
					h.accepted[ns+".nightly"] = true
				} else {
					h.refused[ns+".nightly"] = true
				}
				h.mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	row := HostileRow{
		Input:    fmt.Sprintf("%s distinct namespaces from one client (16 connections; %s, p99 %s, while the slow clients below hold their connections)", thousands(n), took.Round(time.Second), ms(Percentile(lat, 0.99))),
		Requests: n,
		Answers:  outcomes(answers),
	}
	// Every accepted one stored, no refused one.
	jobs, err := GetJobs(h.r.URL)
	if err != nil {
		h.problem("list jobs: " + err.Error())
	}
	stored := 0
	for _, j := range jobs {
		if strings.HasPrefix(j.Namespace, "flood-") {
			stored++
		}
	}
	row.Stored = fmt.Sprintf("%s jobs", thousands(stored))
	h.alive(&row)
	h.res.Rows = append(h.res.Rows, row)
}

// slowResult is what one slow connection saw.
type slowResult struct {
	sent   int
	took   time.Duration
	answer string
}

// slowBodies opens n connections that each send a callback's headers with
// Content-Length 4096, then one byte of body a second.
func (h *hostile) slowBodies(n int) <-chan []slowResult {
	out := make(chan []slowResult, 1)
	go func() {
		var mu sync.Mutex
		var results []slowResult
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				head := "POST /api/v1/results HTTP/1.1\r\nHost: " + h.r.Addr + "\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
				r := h.slow(head, []byte(`{"namespace":"hostile","workflowName":"slow-1","cronWorkflow":"slow","phase":"Failed","labels":{"a":"`+strings.Repeat("x", 4000)))
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			})
		}
		wg.Wait()
		out <- results
	}()
	return out
}

// slowHeaders opens one connection that sends its headers a byte a second.
func (h *hostile) slowHeaders() <-chan []slowResult {
	out := make(chan []slowResult, 1)
	go func() {
		out <- []slowResult{h.slow("", []byte("POST /api/v1/results HTTP/1.1\r\nHost: "+h.r.Addr+"\r\nContent-Type: application/json\r\nX-Slow: "+strings.Repeat("s", 200)))}
	}()
	return out
}

// slow writes head at once, then trickle one byte a second, until the
// server answers or closes (at most 90 s).
func (h *hostile) slow(head string, trickle []byte) slowResult {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", h.r.Addr, 5*time.Second)
	if err != nil {
		return slowResult{answer: errorKind(err)}
	}
	defer conn.Close()
	answered := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		switch {
		case line != "":
			answered <- strings.TrimSpace(line)
		case err == io.EOF:
			answered <- "closed"
		default:
			answered <- errorKind(err)
		}
	}()
	res := slowResult{}
	if _, err := io.WriteString(conn, head); err != nil {
		return slowResult{answer: errorKind(err), took: time.Since(start)}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(90 * time.Second)
	for {
		select {
		case a := <-answered:
			res.took, res.answer = time.Since(start), a
			return res
		case <-deadline:
			res.took, res.answer = time.Since(start), "still open after 90 s"
			return res
		case <-tick.C:
			if res.sent < len(trickle) {
				if _, err := conn.Write(trickle[res.sent : res.sent+1]); err == nil {
					res.sent++
				}
			}
		}
	}
}

// collect waits for the slow clients and adds their rows.
func (h *hostile) collect(bodies, headers <-chan []slowResult) {
	for _, c := range []struct {
		input string
		ch    <-chan []slowResult
	}{
		{fmt.Sprintf("slow bodies: %d connections sending a 4 KiB body at 1 byte/s", h.s.cfg.SlowConns), bodies},
		{"slow headers: headers at 1 byte/s", headers},
	} {
		results := <-c.ch
		answers := map[string]int{}
		var longest time.Duration
		sent := 0
		for _, r := range results {
			answers[r.answer]++
			longest = max(longest, r.took)
			sent = max(sent, r.sent)
		}
		row := HostileRow{Input: c.input, Requests: len(results), Answers: fmt.Sprintf("%s; cut off after %.0f s at most, %d bytes trickled", outcomes(answers), longest.Seconds(), sent), Stored: "no"}
		if code, _ := h.get("/api/v1/jobs/" + hostileNS + "/slow"); code != 404 {
			row.Stored = fmt.Sprintf("**yes** (%d)", code)
			h.problem("a slow body was stored")
		}
		h.alive(&row)
		h.res.Rows = append(h.res.Rows, row)
	}
}

// finish lists what the replica stored: every accepted job, nothing else;
// then the memory figures.
func (h *hostile) finish(rss *Sampler) {
	jobs, err := GetJobs(h.r.URL)
	if err != nil {
		h.problem("list jobs: " + err.Error())
	}
	unexpected := 0
	stored := map[string]bool{}
	for _, j := range jobs {
		k := j.Namespace + "." + j.Job
		stored[k] = true
		if !h.accepted[k] {
			unexpected++
			if unexpected <= 3 {
				h.problem(fmt.Sprintf("stored although never accepted: %q", k))
			}
		}
	}
	missing := 0
	for k := range h.accepted {
		if !stored[k] {
			missing++
			if missing <= 3 {
				h.problem(fmt.Sprintf("accepted but not stored: %q", k))
			}
		}
	}
	samples := rss.Between(time.Time{}, time.Now())
	if len(samples) > 0 {
		h.res.RSSBefore = samples[0].Bytes
		h.res.RSSAfter = samples[len(samples)-1].Bytes
		for _, s := range samples {
			h.res.RSSMax = max(h.res.RSSMax, s.Bytes)
		}
	}
	panicked := h.r.LogContains("panic")
	if panicked {
		h.problem("the replica's log mentions a panic")
	}
	h.res.Summary = fmt.Sprintf("%s jobs stored, each one a 2xx accepted, %d stored that were not accepted, %d accepted that are missing; the process never restarted; panics in its log: %v",
		thousands(len(jobs)), unexpected, missing, panicked)
	// Bounded: the peak within 3x the idle process plus the state it was
	// made to hold (a few hundred bytes a job, cached and encoded).
	if limit := 3*h.res.RSSBefore + int64(len(jobs))*8<<10; h.res.RSSMax > limit {
		h.problem(fmt.Sprintf("RSS reached %s (before %s, %d jobs stored)", mb(h.res.RSSMax), mb(h.res.RSSBefore), len(jobs)))
	}
	slices.SortFunc(h.res.Problems, strings.Compare)
}
