package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/internal/buildtags"
	"github.com/batchlatch/batchlatch/internal/testwait"
)

// readmePath is the README whose walk-through TestREADMEWalkThrough follows.
const readmePath = "../../README.md"

// TestREADMEWalkThrough follows the README's walk-through literally against
// the real service (run, with its defaults but for the port and the state
// file's directory): it sends the requests and runs the CLI commands the
// README shows, and checks every output the README shows against what the
// service printed: the same JSON keys everywhere, the same values but for
// times, durations, ids and the user's name, the same message shapes, and as
// many identical lines on stdout as the README's prose says.
func TestREADMEWalkThrough(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := walkThroughBlocks(string(data))
	if err != nil {
		t.Fatalf("%s: %v", readmePath, err)
	}
	w := &walker{t: t}
	for i, b := range blocks {
		switch {
		case b.lang == "console":
			w.console(b)
		case b.lang == "json" && i > 0:
			w.printed(b)
		default:
			t.Fatalf("%s: a %q block at line %d; the walk-through has console blocks (commands and their output) and json blocks (what the service printed)", readmePath, b.lang, b.line)
		}
	}
	if w.in == nil {
		t.Fatalf("%s: the walk-through never starts the service", readmePath)
	}
	// Stopping waits for the loop's last pass: every burst is complete.
	if err := w.in.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	printed := lines(w.in.stdout.String())
	for _, c := range w.counts {
		if got := countOf(printed, c.line); got != c.want {
			t.Errorf("%s line %d says %d identical %s lines; the service printed %d:\n%s", readmePath, c.readmeLine, c.want, c.severity, got, c.line)
		}
	}
	if t.Failed() {
		t.Logf("stdout of the service:\n%s\nstderr:\n%s", w.in.stdout, w.in.stderr)
	}
}

// The README's configuration reference has a row for every flag --help
// lists, with its default.
func TestREADMEListsEveryFlag(t *testing.T) {
	data, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile("`([^`]*)`")
	defaults := map[string][]string{} // flag → the values in its row's default cell
	for l := range strings.Lines(string(data)) {
		cells := strings.Split(l, "|")
		if !strings.HasPrefix(l, "| `--") || len(cells) < 4 {
			continue
		}
		var values []string
		for _, m := range code.FindAllStringSubmatch(cells[2], -1) {
			values = append(values, m[1])
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			defaults[m[1]] = values
		}
	}
	var cfg Config
	newFlagSet(&cfg, io.Discard).VisitAll(func(f *flag.Flag) {
		if f.Name == loggingEndpointFlag {
			return // hidden
		}
		values, ok := defaults["--"+f.Name]
		if !ok {
			t.Errorf("%s: no row for --%s", readmePath, f.Name)
			return
		}
		if f.DefValue == "" { // computed (the pod's namespace, its name) or none
			return
		}
		for _, v := range values {
			d, errD := time.ParseDuration(v)
			want, errW := time.ParseDuration(f.DefValue)
			if v == f.DefValue || (errD == nil && errW == nil && d == want) {
				return
			}
		}
		t.Errorf("%s: the row of --%s gives the default %q, not %q", readmePath, f.Name, values, f.DefValue)
	})
}

// readmeBlock is one fenced block of the walk-through, with the prose that
// comes before it.
type readmeBlock struct {
	lang  string
	line  int // of the opening fence, 1-based
	body  []string
	prose string
}

// walkThroughBlocks returns the fenced blocks between the walk-through's
// markers, in order.
func walkThroughBlocks(readme string) ([]readmeBlock, error) {
	const begin, end = "<!-- walkthrough", "<!-- /walkthrough -->"
	all := strings.Split(readme, "\n")
	first, last := -1, -1
	for i, l := range all {
		switch {
		case strings.HasPrefix(l, end):
			last = i
		case strings.HasPrefix(l, begin) && first < 0:
			first = i
		}
	}
	if first < 0 || last < first {
		return nil, fmt.Errorf("no walk-through between %q and %q", begin, end)
	}
	var blocks []readmeBlock
	var prose []string
	for i := first + 1; i < last; i++ {
		lang, ok := strings.CutPrefix(all[i], "```")
		if !ok {
			prose = append(prose, all[i])
			continue
		}
		b := readmeBlock{lang: lang, line: i + 1, prose: strings.Join(prose, "\n")}
		for i++; i < last && all[i] != "```"; i++ {
			b.body = append(b.body, all[i])
		}
		if i == last {
			return nil, fmt.Errorf("the block at line %d is not closed", b.line)
		}
		blocks = append(blocks, b)
		prose = nil
	}
	return blocks, nil
}

// walker runs the walk-through's steps.
type walker struct {
	t  *testing.T
	in *instance
	// since is how many stdout lines the service had printed when the
	// latest command was run: what it prints for that command comes after.
	since int
	// exitCode is the latest command's, for `echo $?`.
	exitCode int
	counts   []shownCount
}

// shownCount: the README says the service printed want identical copies of
// line.
type shownCount struct {
	line       string
	severity   string
	want       int
	readmeLine int
}

// console runs a console block's commands and compares their output.
func (w *walker) console(b readmeBlock) {
	t := w.t
	t.Helper()
	var cmd string
	var cmdLine int
	var shown []string
	flush := func() {
		if cmd != "" {
			w.run(cmd, shown, cmdLine)
		}
		cmd, shown = "", nil
	}
	for i := 0; i < len(b.body); i++ {
		l, isCommand := strings.CutPrefix(b.body[i], "$ ")
		if !isCommand {
			if cmd == "" {
				t.Fatalf("%s line %d: output before any command: %q", readmePath, b.line+1+i, b.body[i])
			}
			shown = append(shown, l)
			continue
		}
		flush()
		cmd, cmdLine = l, b.line+1+i
		// A command goes on while a quote is open (curl's -d '{…}').
		for _, err := shellWords(cmd); errors.Is(err, errOpenQuote); _, err = shellWords(cmd) {
			if i++; i == len(b.body) {
				t.Fatalf("%s line %d: a quote is never closed", readmePath, cmdLine)
			}
			cmd += "\n" + b.body[i]
		}
	}
	flush()
}

// run runs one command of the walk-through and compares its output with
// shown, what the README shows.
func (w *walker) run(cmd string, shown []string, readmeLine int) {
	t := w.t
	t.Helper()
	words, err := shellWords(cmd)
	if err != nil {
		t.Fatalf("%s line %d: %q: %v", readmePath, readmeLine, cmd, err)
	}
	if w.in != nil {
		w.since = len(lines(w.in.stdout.String()))
	}
	where := fmt.Sprintf("%s line %d, `%s`", readmePath, readmeLine, cmd)
	switch {
	case cmd == "go run -tags "+buildtags.Tags+" ./cmd/batchlatch":
		if w.in != nil {
			t.Fatalf("%s: the service is already running", where)
		}
		// The defaults, but for a free port and a state file of its own.
		w.in = start(t, nil, "--state-file", filepath.Join(t.TempDir(), "batchlatch-state.json"))
		for _, s := range shown {
			w.waitForLine(where, s, func() []string {
				return append(lines(w.in.stderr.String()), lines(w.in.stdout.String())...)
			})
		}
		w.afterStartSecond(where)
	case w.in == nil:
		t.Fatalf("%s: runs before the service is started", where)
	case words[0] == "curl":
		body := w.curl(where, words[1:])
		if len(shown) != 1 {
			t.Fatalf("%s: shows %d lines of answer, want the one JSON line curl prints", where, len(shown))
		}
		if err := sameJSONLine(shown[0], body); err != nil {
			t.Errorf("%s: the answer shown is not the service's: %v\nshown: %s\nreal:  %s", where, err, shown[0], body)
		}
	case words[0] == "batchlatch":
		var stdout, stderr strings.Builder
		getenv := func(k string) string { return map[string]string{"BATCHLATCH_SERVER": w.in.url}[k] }
		err := run(t.Context(), words, getenv, &stdout, &stderr)
		var exit exitError
		switch {
		case err == nil:
			w.exitCode = 0
		case errors.As(err, &exit):
			w.exitCode = exit.Code
		default:
			t.Fatalf("%s: %v\n%s", where, err, stderr.String())
		}
		printed := lines(stdout.String() + stderr.String())
		if !sameText(shown, printed) {
			t.Errorf("%s: the output shown is not the CLI's:\nshown:\n%s\nreal:\n%s", where, strings.Join(shown, "\n"), strings.Join(printed, "\n"))
		}
	case cmd == "echo $?":
		if want := []string{strconv.Itoa(w.exitCode)}; !slices.Equal(shown, want) {
			t.Errorf("%s: shows %q, the exit status was %d", where, shown, w.exitCode)
		}
	default:
		t.Fatalf("%s: this test cannot run that command; the walk-through uses go run -tags %s ./cmd/batchlatch, curl, batchlatch and echo $?", where, buildtags.Tags)
	}
}

// afterStartSecond waits until the clock has left the second in which the
// alarm loop started (its first heartbeat), as it has when a person types
// the next command. A job's times are whole seconds: a failure within the
// loop's first second reads as older than the loop, which then writes each
// later change of it heavier (70 lines instead of the README's 42).
func (w *walker) afterStartSecond(where string) {
	t := w.t
	t.Helper()
	var started time.Time
	for _, l := range lines(w.in.stdout.String()) {
		var e struct {
			Time      time.Time
			Heartbeat bool
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Heartbeat {
			started = e.Time
			break
		}
	}
	if started.IsZero() {
		t.Fatalf("%s: no heartbeat yet:\n%s", where, w.in.stdout)
	}
	<-time.After(time.Until(started.Truncate(time.Second).Add(time.Second)))
}

// curl does what curl does with args (the options the walk-through uses)
// against the service, and returns the answer's body.
func (w *walker) curl(where string, args []string) string {
	t := w.t
	t.Helper()
	method, target := "", ""
	var body io.Reader
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		value := func() string {
			if i++; i == len(args) {
				t.Fatalf("%s: %s needs a value", where, args[i-1])
			}
			return args[i]
		}
		switch a := args[i]; {
		case a == "-s":
		case a == "-X":
			method = value()
		case a == "-H":
			k, v, ok := strings.Cut(value(), ":")
			if !ok {
				t.Fatalf("%s: header %q", where, args[i])
			}
			header.Add(k, strings.TrimSpace(v))
		case a == "-d":
			body = strings.NewReader(value())
			if method == "" {
				method = http.MethodPost
			}
		case strings.HasPrefix(a, "-"):
			t.Fatalf("%s: this test does not know curl's %s", where, a)
		default:
			target = a
		}
	}
	path, ok := strings.CutPrefix(strings.TrimPrefix(target, "http://"), "localhost:8080")
	if !ok {
		t.Fatalf("%s: %q is not on localhost:8080, where the service listens", where, target)
	}
	req, err := http.NewRequestWithContext(t.Context(), cmp.Or(method, http.MethodGet), w.in.url+path, body)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return string(data)
}

// printed checks a json block: lines the README says the service printed
// on stdout after the latest command, and how many of each its prose says.
func (w *walker) printed(b readmeBlock) {
	t := w.t
	t.Helper()
	want := lineCounts(b.prose)
	for i, s := range b.body {
		where := fmt.Sprintf("%s line %d", readmePath, b.line+1+i)
		real := w.waitForLine(where, s, func() []string { return lines(w.in.stdout.String())[w.since:] })
		var e struct{ Severity string }
		if err := json.Unmarshal([]byte(real), &e); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		n, ok := want[e.Severity]
		if !ok {
			t.Fatalf("%s: the prose before this block says how many lines of %v, not of %s", where, want, e.Severity)
		}
		w.counts = append(w.counts, shownCount{line: real, severity: e.Severity, want: n, readmeLine: b.line})
	}
}

// waitForLine waits until printed holds a line with the same keys, values
// and message shape as shown, and returns the first one.
func (w *walker) waitForLine(where, shown string, printed func() []string) string {
	t := w.t
	t.Helper()
	var wantMessage struct{ Message string }
	if err := json.Unmarshal([]byte(shown), &wantMessage); err != nil {
		t.Fatalf("%s: not a JSON line: %v\n%s", where, err, shown)
	}
	var closest string
	found := waitFor(20*time.Second, func() (string, bool) {
		for _, p := range printed() {
			var m struct{ Message string }
			if json.Unmarshal([]byte(p), &m) == nil && shapeOf(m.Message) == shapeOf(wantMessage.Message) {
				closest = p
				if sameJSONLine(shown, p) == nil {
					return p, true
				}
			}
		}
		return "", false
	})
	if found == "" {
		if closest != "" {
			t.Fatalf("%s: the service printed this line differently: %v\nshown: %s\nreal:  %s", where, sameJSONLine(shown, closest), shown, closest)
		}
		t.Fatalf("%s: the service printed no such line within 20s:\n%s\nstdout:\n%s\nstderr:\n%s", where, shown, w.in.stdout, w.in.stderr)
	}
	return found
}

// waitFor polls cond until it holds or within has passed.
func waitFor(within time.Duration, cond func() (string, bool)) string {
	var found string
	testwait.Poll(context.Background(), within, func(context.Context) (bool, string, error) {
		v, ok := cond()
		found = v
		return ok, "", nil
	})
	return found
}

// lineCount finds "14 identical ERROR lines" and "one NOTICE line".
var lineCount = regexp.MustCompile(`(?i)\b(one|\d+) (?:identical )?(ERROR|NOTICE|INFO) lines?\b`)

// lineCounts is how many lines of each severity prose says were printed.
func lineCounts(prose string) map[string]int {
	counts := map[string]int{}
	for _, m := range lineCount.FindAllStringSubmatch(prose, -1) {
		n := 1
		if !strings.EqualFold(m[1], "one") {
			n, _ = strconv.Atoi(m[1])
		}
		counts[strings.ToUpper(m[2])] = n
	}
	return counts
}

func countOf(all []string, line string) int {
	n := 0
	for _, l := range all {
		if l == line {
			n++
		}
	}
	return n
}

// lines splits printed text into its non-empty lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimRight(l, "\n"); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// What differs from one run to the next, and how the comparison treats it.
var (
	timestamp    = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	durationText = regexp.MustCompile(`\b(\d+(\.\d+)?(ns|µs|ms|s|m|h|d|y))+\b`)
	silenceID    = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	// anyValue: keys whose value is the run's own: an id, the user, a
	// path or an address (compared by their stable part).
	anyValue = map[string]bool{"id": true, "createdBy": true, "logging.googleapis.com/insertId": true}
	// anyNumber: seconds elapsed.
	anyNumber = map[string]bool{"failingSeconds": true, "seconds": true}
	// mayBeAbsent: omitted when zero or unknown (failingSeconds in the
	// second a streak starts; createdBy without a user name).
	mayBeAbsent = map[string]bool{"failingSeconds": true, "createdBy": true}
)

// shapeOf is text with its times, durations and ids replaced by what they
// are.
func shapeOf(s string) string {
	s = timestamp.ReplaceAllString(s, "<time>")
	s = silenceID.ReplaceAllString(s, "<id>")
	return durationText.ReplaceAllString(s, "<duration>")
}

// sameText: the CLI printed shown, but for times, durations, ids and the
// columns' widths.
func sameText(shown, printed []string) bool {
	if len(shown) != len(printed) {
		return false
	}
	for i := range shown {
		if !slices.Equal(strings.Fields(shapeOf(shown[i])), strings.Fields(shapeOf(printed[i]))) {
			return false
		}
	}
	return true
}

// sameJSONLine compares a JSON line the README shows with a real one.
func sameJSONLine(shown, real string) error {
	var s, r any
	if err := json.Unmarshal([]byte(shown), &s); err != nil {
		return fmt.Errorf("shown: %v", err)
	}
	if err := json.Unmarshal([]byte(real), &r); err != nil {
		return fmt.Errorf("real: %v", err)
	}
	return sameJSON("", "", s, r)
}

// sameJSON compares shown with real at path: the same keys, and the same
// values but for what changes from run to run.
func sameJSON(path, key string, shown, real any) error {
	switch s := shown.(type) {
	case map[string]any:
		r, ok := real.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: an object shown, %T real", path, real)
		}
		var keys []string
		for k := range s {
			keys = append(keys, k)
		}
		for k := range r {
			if _, ok := s[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			sv, inShown := s[k]
			rv, inReal := r[k]
			switch {
			case inShown && inReal:
				if err := sameJSON(path+"."+k, k, sv, rv); err != nil {
					return err
				}
			case mayBeAbsent[k]:
			case inShown:
				return fmt.Errorf("%s.%s: shown, not printed", path, k)
			default:
				return fmt.Errorf("%s.%s: printed, not shown", path, k)
			}
		}
		return nil
	case []any:
		r, ok := real.([]any)
		if !ok || len(r) != len(s) {
			return fmt.Errorf("%s: %d items shown, real %v", path, len(s), real)
		}
		for i := range s {
			if err := sameJSON(fmt.Sprintf("%s[%d]", path, i), key, s[i], r[i]); err != nil {
				return err
			}
		}
		return nil
	case string:
		r, ok := real.(string)
		switch {
		case !ok:
			return fmt.Errorf("%s: a string shown, %T real", path, real)
		case anyValue[key]:
			return nil
		case key == "addr": // the test's own port
			sh, _, _ := net.SplitHostPort(s)
			rh, _, _ := net.SplitHostPort(r)
			if sh != rh {
				return fmt.Errorf("%s: host %q shown, %q real", path, sh, rh)
			}
			return nil
		case key == "path": // in the test's own directory
			if filepath.Base(s) != filepath.Base(r) {
				return fmt.Errorf("%s: %q shown, %q real", path, s, r)
			}
			return nil
		case shapeOf(s) != shapeOf(r) || (timestamp.MatchString(s) != timestamp.MatchString(r)):
			return fmt.Errorf("%s: %q shown, %q real", path, s, r)
		case key != "message" && !timestamp.MatchString(s) && s != r:
			return fmt.Errorf("%s: %q shown, %q real", path, s, r)
		}
		return nil
	case float64:
		if _, ok := real.(float64); !ok {
			return fmt.Errorf("%s: a number shown, %T real", path, real)
		}
		if !anyNumber[key] && real != shown {
			return fmt.Errorf("%s: %v shown, %v real", path, shown, real)
		}
		return nil
	default:
		if !reflect.DeepEqual(shown, real) {
			return fmt.Errorf("%s: %v shown, %v real", path, shown, real)
		}
		return nil
	}
}

// errOpenQuote: the command goes on on the next line.
var errOpenQuote = errors.New("a quote is not closed")

// shellWords splits a command line as a POSIX shell does, for what the
// README's commands use: words, 'single' and "double" quotes (with \" and
// \\ inside), and backslashes. A dozen lines rather than a dependency.
func shellWords(s string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words, inWord = append(words, word.String()), false
				word.Reset()
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errOpenQuote
			}
			word.WriteString(s[i+1 : i+1+end])
			i, inWord = i+1+end, true
		case c == '"':
			for i++; ; i++ {
				if i == len(s) {
					return nil, errOpenQuote
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] != '\n' {
				word.WriteByte(s[i])
				inWord = true
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}
