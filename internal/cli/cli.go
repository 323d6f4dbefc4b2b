// Package cli is batchlatch's command-line client: subcommands that ask a
// running server over its REST API, directly or through the Kubernetes API
// server's service proxy, and print what it answers the way kubectl get
// does. The batchlatch binary and the kubectl plugin kubectl-batchlatch
// both run it.
package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"

	"github.com/batchlatch/batchlatch/api"
)

// Exit codes of the client commands. `failures` is to gate a script the way
// grep does: 1 says "found something", 2 says "could not tell".
const (
	ExitFailing = 1
	ExitTrouble = 2
)

// ExitError makes main exit with Code; what went wrong was already printed
// on stderr, so main prints nothing more.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Program is how the user started the client.
type Program struct {
	// Name is what the user typed, for the help and the error messages.
	Name string
	// Plugin: started by kubectl, so the service proxy is the way to the
	// server unless --server says otherwise; nothing serves.
	Plugin bool
}

var (
	// Batchlatch is the batchlatch binary, which also serves.
	Batchlatch = Program{Name: "batchlatch"}
	// KubectlPlugin is kubectl-batchlatch, run as `kubectl batchlatch`.
	KubectlPlugin = Program{Name: "kubectl batchlatch", Plugin: true}
)

// clientOptions are what the flags of a client command set.
type clientOptions struct {
	server    string
	tokenFile string
	token     string
	timeout   time.Duration
	output    string
	kube      kubeOptions
	// silence and unsilence
	forDuration string
	until       string
	reason      string
	id          string
}

// command is one client subcommand.
type command struct {
	name string
	args string // the arguments, as the usage line shows them
	// flagArgs are the flags the usage line shows after args, besides
	// the list of commands, where they would not fit.
	flagArgs string
	summary  string
	detail   string
	minArgs  int
	maxArgs  int
	output   bool // takes -o
	flags    func(fs *pflag.FlagSet, o *clientOptions)
	run      func(ctx context.Context, c *client, o *clientOptions, args []string) error
}

// commands lists the client commands in the order help shows them.
var commands = []command{
	{
		name: "failures", args: "[NAMESPACE]", maxArgs: 1, output: true,
		summary: "the jobs whose latest run failed, longest-failing first",
		detail: "Exits 1 when one of them is failing and not silenced (below its failure\n" +
			"threshold included), 0 when none is, so that it can gate a script:\n" +
			"  batchlatch failures >/dev/null || echo 'something is failing'\n",
		run: runFailures,
	},
	{
		name: "jobs", args: "[NAMESPACE]", maxArgs: 1, output: true,
		summary: "every job, or those of one namespace",
		run:     runJobs,
	},
	{
		name: "get", args: "JOB", minArgs: 1, maxArgs: 1, output: true,
		summary: "one job, what it usually does and its last runs (-o yaml: all the server knows)",
		run:     runGet,
	},
	{
		name: "silence", args: "NAMESPACE[/NAME]", flagArgs: "--for DURATION|--until TIME --reason TEXT", minArgs: 1, maxArgs: 1, output: true,
		summary: "mute the alarm of a job, or of every job of a namespace, for a while",
		detail: "The job shows as Silenced and its incident closes until the silence ends\n" +
			"(at most 30 days); it ends by itself. The silence is recorded as created by\n" +
			"the OS user running the command.\n",
		flags: func(fs *pflag.FlagSet, o *clientOptions) {
			fs.StringVar(&o.forDuration, "for", "", "how long, such as 90m, 2h, 1d or 2d12h")
			fs.StringVar(&o.until, "until", "", "when it ends, RFC 3339 (2026-11-24T18:00:00Z), instead of --for")
			fs.StringVar(&o.reason, "reason", "", "why (required)")
		},
		run: runSilence,
	},
	{
		name: "silences", maxArgs: 0, output: true,
		summary: "the silences in force, soonest to end first",
		run:     runSilences,
	},
	{
		name: "unsilence", args: "NAMESPACE[/NAME]|ID", maxArgs: 1,
		summary: "end a silence by its ID, or those on exactly that job or namespace",
		detail: "`unsilence ml` ends the silences of namespace ml as a whole (TARGET ml/*\n" +
			"in `batchlatch silences`), not those of its single jobs; `unsilence ID`\n" +
			"(or --id ID) ends one silence, by the ID `batchlatch silences` shows.\n",
		flags: func(fs *pflag.FlagSet, o *clientOptions) {
			fs.StringVar(&o.id, "id", "", "the ID of the silence to end (as the argument ID does)")
		},
		run: runUnsilence,
	},
	{
		name: "forget", args: "JOB", minArgs: 1, maxArgs: 1,
		summary: "forget a job, once its CronWorkflow or CronJob is gone",
		run:     runForget,
	},
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

const jobSyntax = `JOB is NAMESPACE/NAME, NAME being a CronWorkflow's (or WorkflowTemplate's)
name; cronjob/NAMESPACE/NAME for a Kubernetes CronJob's job; NAMESPACE/- for
the namespace as a whole (runs of no CronWorkflow).
`

const statusHelp = `STATUS is OK; Failing; Failing (N of M): failed N times in a row, below its
failure threshold of M, so no alert yet; or Silenced: a silence is in force
(-o wide says until when).
`

const exitHelp = `Exit status: 0 done; 1 only from failures: a job is failing and not
silenced; 2 an error, with the server's message on stderr.
`

// usage is the help of the client as a whole.
func usage(w io.Writer, p Program) {
	if p.Plugin {
		fmt.Fprintf(w, "Usage: %s COMMAND [ARGS] [flags]\n\n", p.Name)
	} else {
		fmt.Fprintf(w, "Usage: %s [serve] [flags]      run the server (batchlatch serve --help)\n", p.Name)
		fmt.Fprintf(w, "       %s COMMAND [ARGS] [flags]\n\n", p.Name)
	}
	fmt.Fprint(w, "Keeps a failed batch job's alert open until the job succeeds again. The\ncommands are clients of a running server:\n\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(tw, "  help [COMMAND]\tthis text, or a command's with its flags\n")
	tw.Flush()
	fmt.Fprint(w, "\n"+jobSyntax+"\n"+statusHelp+"\n"+reachHelp+"\n")
	fmt.Fprint(w, "Every command takes these flags (a flag wins over its environment variable):\n")
	fs, _ := newClientFlagSet(p, command{}, &clientOptions{}, w)
	fmt.Fprint(w, fs.FlagUsages())
	fmt.Fprint(w, "  -o, --output wide|json|yaml (failures, jobs, get, silence, silences): the\n      table wider, or the API's objects as JSON or YAML\n")
	fmt.Fprint(w, "\n"+exitHelp)
}

// reachHelp says how a command finds the server.
const reachHelp = `The server is at --server; or, with kubectl batchlatch (unless --server is
given) or with any of --kubeconfig, --context, --namespace, --release,
--service, it is the chart's service, reached through the Kubernetes API
server's service proxy with the kubeconfig's credentials: no port-forward.
That needs get on services/proxy of that service (create and delete too for
silence, unsilence and forget). The token goes as X-Batchlatch-Token there:
the API server keeps the Authorization header for itself.
`

// newClientFlagSet has the flags every client command takes, those of cmd,
// and the environment variables each global flag can be read from.
func newClientFlagSet(p Program, cmd command, o *clientOptions, output io.Writer) (*pflag.FlagSet, map[string]string) {
	fs := pflag.NewFlagSet(p.Name+" "+cmd.name, pflag.ContinueOnError)
	fs.SetOutput(output)
	fs.SortFlags = false
	env := map[string]string{}
	withEnv := func(name, usage string) string {
		env[name] = envName(name)
		return usage + " (env " + envName(name) + ")"
	}
	fs.StringVar(&o.server, "server", "http://localhost:8080", withEnv("server", "URL of the batchlatch server"))
	fs.StringVar(&o.tokenFile, "token-file", "", withEnv("token-file", "file holding the bearer token sent with every request: writes need it, and reads when the server has a read token"))
	fs.StringVar(&o.token, "token", "", withEnv("token", "the token itself, instead of --token-file (a flag shows in ps: prefer the variable)"))
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, withEnv("timeout", "bound on each request"))
	o.kube.addFlags(fs, withEnv)
	if cmd.output {
		fs.StringVarP(&o.output, "output", "o", "", "output format: wide, json or yaml (default a table)")
	}
	if cmd.flags != nil {
		cmd.flags(fs, o)
	}
	return fs, env
}

// Run runs the client command args[0] with the rest of args (args without
// the program's name). Bare `kubectl batchlatch` shows the help.
func Run(ctx context.Context, p Program, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stdout, p)
		return nil
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 {
			if cmd, ok := findCommand(args[1]); ok {
				commandUsage(stdout, p, cmd)
				return nil
			}
		}
		usage(stdout, p)
		return nil
	}
	cmd, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "error: unknown command %q; %s help lists them\n", name, p.Name)
		return ExitError{ExitTrouble}
	}
	var o clientOptions
	fs, env := newClientFlagSet(p, cmd, &o, stderr)
	fs.Usage = func() {} // --help prints to stdout, below; errors say it short
	fromEnv := map[string]bool{}
	for name, variable := range env {
		if v := getenv(variable); v != "" {
			if err := fs.Set(name, v); err != nil {
				fmt.Fprintf(stderr, "error: %s=%q: %s\n", variable, v, escapeTerminal(err.Error()))
				return ExitError{ExitTrouble}
			}
			fromEnv[name] = true
		}
	}
	given := map[string]bool{} // on the command line
	err := fs.ParseAll(args[1:], func(f *pflag.Flag, value string) error {
		given[f.Name] = true
		return fs.Set(f.Name, value)
	})
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			commandUsage(stdout, p, cmd)
			return nil
		}
		fmt.Fprintf(stderr, "error: %s; %s help %s\n", escapeTerminal(err.Error()), p.Name, cmd.name)
		return ExitError{ExitTrouble}
	}
	rest := fs.Args()
	if len(rest) < cmd.minArgs || len(rest) > cmd.maxArgs {
		fmt.Fprintf(stderr, "error: usage: %s %s\n", p.Name, usageLine(cmd))
		return ExitError{ExitTrouble}
	}
	if !slices.Contains([]string{"", "wide", "json", "yaml"}, o.output) {
		fmt.Fprintf(stderr, "error: -o %s: not one of wide, json, yaml\n", escapeTerminal(o.output))
		return ExitError{ExitTrouble}
	}
	c, err := newClient(p, o, given, fromEnv, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "error: %s\n", escapeTerminal(err.Error()))
		return ExitError{ExitTrouble}
	}
	err = cmd.run(ctx, c, &o, rest)
	var exit ExitError
	if err == nil || errors.As(err, &exit) {
		return err
	}
	fmt.Fprintf(stderr, "error: %s\n", escapeTerminal(err.Error()))
	return ExitError{ExitTrouble}
}

func commandUsage(w io.Writer, p Program, cmd command) {
	fmt.Fprintf(w, "Usage: %s %s [flags]\n\n%s.\n", p.Name, usageLine(cmd), upperFirst(cmd.summary))
	if cmd.detail != "" {
		fmt.Fprint(w, "\n"+cmd.detail)
	}
	if strings.Contains(cmd.args, "JOB") {
		fmt.Fprint(w, "\n"+jobSyntax)
	}
	if cmd.name == "failures" || cmd.name == "jobs" || cmd.name == "get" {
		fmt.Fprint(w, "\n"+statusHelp)
	}
	fs, _ := newClientFlagSet(p, cmd, &clientOptions{}, w)
	fmt.Fprint(w, "\nFlags:\n"+fs.FlagUsages()+"\n"+reachHelp+"\n"+exitHelp)
}

func usageLine(cmd command) string {
	return strings.TrimSpace(strings.Join([]string{cmd.name, cmd.args, cmd.flagArgs}, " "))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// client talks to the server's REST API.
type client struct {
	base string
	// where names the server in messages: its URL, or the service and the
	// API server it is reached through.
	where string
	// proxy is set when the API server's service proxy carries the requests.
	proxy  *serviceProxy
	token  string
	http   *http.Client
	stdout io.Writer
	stderr io.Writer
}

// newClient reaches the server at --server or through the service proxy,
// as the flags given on the command line, then those from the environment,
// then the program say (kubeOptions.viaProxy).
func newClient(p Program, o clientOptions, given, fromEnv map[string]bool, stdout, stderr io.Writer) (*client, error) {
	token := o.token
	if token == "" {
		var err error
		if token, err = ReadToken(o.tokenFile); err != nil {
			return nil, err
		}
	}
	c := &client{token: token, stdout: stdout, stderr: stderr}
	viaProxy, err := o.kube.viaProxy(p, given, fromEnv)
	if err != nil {
		return nil, err
	}
	if viaProxy {
		if c.proxy, err = o.kube.serviceProxy(o.timeout); err != nil {
			return nil, err
		}
		c.base, c.where, c.http = c.proxy.base, c.proxy.String(), c.proxy.http
		return c, nil
	}
	base := strings.TrimRight(o.server, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base // as kubectl takes --server host:port
	}
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		return nil, fmt.Errorf("--server %q: not a URL such as http://localhost:8080", o.server)
	}
	c.base, c.where, c.http = base, base, &http.Client{Timeout: o.timeout}
	return c, nil
}

// ReadToken reads the token a file holds (--token-file, of the CLI and of
// the service); no file means no token.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("--token-file: %s is empty", path)
	}
	return token, nil
}

// apiError is an answer other than 2xx, with the server's ErrorBody.
type apiError struct {
	status int
	detail api.ErrorDetail
}

func (e *apiError) Error() string {
	msg := e.detail.Message
	// A field error's message names its field already ("{job}: …").
	if f := e.detail.Field; f != "" && !strings.HasPrefix(msg, f+":") {
		msg = f + ": " + msg
	}
	if e.status == http.StatusUnauthorized {
		msg += " (give it with --token-file or BATCHLATCH_TOKEN_FILE)"
	}
	return msg
}

// do sends one request (body as JSON, when not nil) and decodes a 2xx
// answer into out, when not nil.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, reader)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		if c.proxy != nil {
			// The API server takes Authorization for itself (client-go's
			// transport puts the kubeconfig's credentials there) and drops it.
			req.Header.Set(api.TokenHeader, c.token)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if c.proxy != nil {
			return fmt.Errorf("cannot reach the Kubernetes API server at %s (--kubeconfig, --context): %w", c.proxy.apiServer, err)
		}
		return fmt.Errorf("cannot reach the server at %s (--server, BATCHLATCH_SERVER): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e api.ErrorBody
		if json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
			if c.proxy != nil {
				if err := c.proxy.refused(resp.StatusCode, data); err != nil {
					return err
				}
			}
			// Not batchlatch answering (a proxy, another service).
			return fmt.Errorf("%s %s: %s from %s: %.200s", method, path, resp.Status, c.where, data)
		}
		return &apiError{status: resp.StatusCode, detail: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := checkAnswer(data, reflect.TypeOf(out)); err != nil {
		return fmt.Errorf("%s %s: %w: not what batchlatch sends (is %s a batchlatch server?)", method, path, err, c.where)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not what batchlatch sends: %w", method, path, err)
	}
	return nil
}

// target is a job, or every job of a namespace (Name empty, Whole false),
// as a command-line argument names it.
type target struct {
	Kind      string
	Namespace string
	Name      string
	// Whole: the job that stands for the namespace as a whole (NAMESPACE/-).
	Whole bool
}

// parseTarget reads NAMESPACE, NAMESPACE/NAME, NAMESPACE/- or
// KIND/NAMESPACE/NAME (KIND cronjob or workflow, in any case). Names are
// checked by the server, with its messages.
func parseTarget(arg string) (target, error) {
	parts := strings.Split(arg, "/")
	t := target{Kind: api.KindWorkflow}
	if len(parts) == 3 {
		switch strings.ToLower(parts[0]) {
		case "cronjob":
			t.Kind = api.KindCronJob
		case "workflow":
		default:
			return target{}, fmt.Errorf("%q: %q is not a kind of job (cronjob or workflow)", arg, parts[0])
		}
		parts = parts[1:]
		if parts[1] == "-" && t.Kind == api.KindCronJob {
			return target{}, fmt.Errorf("%q: a CronJob's job needs its name", arg)
		}
	}
	for _, p := range parts {
		if p == "" || len(parts) > 2 {
			return target{}, fmt.Errorf("%q: name a job as NAMESPACE/NAME, cronjob/NAMESPACE/NAME or NAMESPACE/-", arg)
		}
	}
	t.Namespace = parts[0]
	if len(parts) == 2 {
		t.Name, t.Whole = parts[1], parts[1] == "-"
		if t.Whole {
			t.Name = ""
		}
	}
	return t, nil
}

// isJob reports whether t names one job rather than a namespace's jobs.
func (t target) isJob() bool { return t.Name != "" || t.Whole }

func (t target) String() string {
	name := t.Name
	if t.Whole {
		name = "-"
	}
	s := t.Namespace
	if t.isJob() {
		s += "/" + name
	}
	if t.Kind == api.KindCronJob {
		s = "cronjob/" + s
	}
	return s
}

// jobArg is the one job a command's argument must name.
func jobArg(arg string) (target, error) {
	t, err := parseTarget(arg)
	if err == nil && !t.isJob() {
		err = fmt.Errorf("%q: name a job as NAMESPACE/NAME (NAMESPACE/- for the namespace as a whole)", arg)
	}
	return t, err
}

// jobPath is the job's REST path and query.
func jobPath(t target) (string, url.Values) {
	name := t.Name
	if t.Whole {
		name = "-"
	}
	var q url.Values
	if t.Kind == api.KindCronJob {
		q = url.Values{"kind": {api.KindCronJob}}
	}
	return "/api/v1/jobs/" + url.PathEscape(t.Namespace) + "/" + url.PathEscape(name), q
}

func runFailures(ctx context.Context, c *client, o *clientOptions, args []string) error {
	var q url.Values
	if len(args) == 1 {
		q = url.Values{"namespace": {args[0]}}
	}
	var list api.FailureList
	err := eachPage(q, func(q url.Values) (string, error) {
		var page api.FailureList
		err := c.do(ctx, "GET", "/api/v1/failures", q, nil, &page)
		list.Failures = append(list.Failures, page.Failures...)
		return page.Continue, err
	})
	if err != nil {
		return err
	}
	if err := c.print(o.output, list, list.Failures, "No failing jobs."); err != nil {
		return err
	}
	for _, j := range list.Failures {
		if j.Failing && j.Silenced == nil {
			return ExitError{ExitFailing}
		}
	}
	return nil
}

func runJobs(ctx context.Context, c *client, o *clientOptions, args []string) error {
	path := "/api/v1/jobs"
	if len(args) == 1 {
		path += "/" + url.PathEscape(args[0])
	}
	var list api.JobList
	err := eachPage(nil, func(q url.Values) (string, error) {
		var page api.JobList
		err := c.do(ctx, "GET", path, q, nil, &page)
		list.Jobs = append(list.Jobs, page.Jobs...)
		return page.Continue, err
	})
	if err != nil {
		return err
	}
	return c.print(o.output, list, list.Jobs, "No jobs.")
}

// listPageSize is how many jobs the CLI asks for at a time: the server's
// largest page.
const listPageSize = 1000

// eachPage calls get with query and the continue token of the page before
// (none for the first) until a page has none: the CLI lists everything, as
// kubectl does, however the server pages it.
func eachPage(query url.Values, get func(url.Values) (string, error)) error {
	token := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(listPageSize)}}
		for k, v := range query {
			q[k] = v
		}
		if token != "" {
			q.Set("continue", token)
		}
		next, err := get(q)
		if err != nil || next == "" {
			return err
		}
		token = next
	}
}

func runGet(ctx context.Context, c *client, o *clientOptions, args []string) error {
	t, err := jobArg(args[0])
	if err != nil {
		return err
	}
	path, q := jobPath(t)
	var job api.JobDetail
	if err := c.do(ctx, "GET", path, q, nil, &job); err != nil {
		return err
	}
	if err := c.print(o.output, job, []api.Job{job.Job}, ""); err != nil || o.output == "json" || o.output == "yaml" {
		return err
	}
	return printRuns(c.stdout, job)
}

// printRuns writes, below a job's row, what it usually does, its notes,
// and its last runs as a table, newest first.
func printRuns(w io.Writer, job api.JobDetail) error {
	fmt.Fprintln(w)
	tw := newTable(w)
	if u := job.Usual; u != nil {
		took, every := "-", "-"
		if u.MedianSeconds != nil && u.P90Seconds != nil {
			took = fmt.Sprintf("%s median, %s p90 (of %d successful runs)", api.FormatDuration(seconds(*u.MedianSeconds)), api.FormatDuration(seconds(*u.P90Seconds)), u.SuccessfulRuns)
		}
		if u.IntervalSeconds != nil {
			every = api.FormatDuration(seconds(*u.IntervalSeconds))
		}
		writeRow(tw, "Usual duration:", took)
		writeRow(tw, "Usual interval:", every)
		if u.Note != "" {
			writeRow(tw, "Note:", u.Note)
		}
	}
	if s := job.Schedule; s != nil && s.Note != "" {
		writeRow(tw, "Schedule note:", s.Note)
	}
	if e := job.Expected; e != nil {
		printExpected(tw, *e)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(job.Runs) == 0 {
		_, err := fmt.Fprintln(w, "No run recorded yet.")
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "FINISHED\tPHASE\tSOURCE\tSCHEDULED\tDURATION")
	for _, r := range job.Runs {
		scheduled, took := "-", "-"
		if r.ScheduledAt != nil {
			scheduled = r.ScheduledAt.UTC().Format(time.RFC3339)
		}
		if r.DurationSeconds != nil {
			took = api.FormatDuration(seconds(*r.DurationSeconds))
		}
		writeRow(tw, r.FinishedAt.UTC().Format(time.RFC3339), string(r.Phase), r.Source, scheduled, took)
	}
	return tw.Flush()
}

// printExpected writes how often the job should report and whether it is
// late (api.Expected): asked for with batchlatch.io/expected-every, or,
// for a job that did not ask, only shown while it is late by its usual
// interval.
func printExpected(tw io.Writer, e api.Expected) {
	every := "-"
	if e.EverySeconds != nil {
		every = api.FormatDuration(seconds(*e.EverySeconds))
		if e.Auto {
			every += ", its usual interval"
		}
	}
	if e.OptedIn {
		every += " (asked: a Late run when late)"
	} else {
		every += " (not asked: shown only)"
	}
	writeRow(tw, "Expected every:", every)
	switch {
	case e.Late && e.LateAt != nil:
		writeRow(tw, "Late:", fmt.Sprintf("since %s, no result since %s", e.LateAt.UTC().Format(time.RFC3339), e.SilentSince.UTC().Format(time.RFC3339)))
	case e.LateAt != nil:
		writeRow(tw, "Late at:", e.LateAt.UTC().Format(time.RFC3339)+" without a result")
	}
	if e.Note != "" {
		writeRow(tw, "Expected note:", e.Note)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func runForget(ctx context.Context, c *client, _ *clientOptions, args []string) error {
	t, err := jobArg(args[0])
	if err != nil {
		return err
	}
	path, q := jobPath(t)
	if err := c.do(ctx, "DELETE", path, q, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "job %s forgotten\n", escapeTerminal(t.String()))
	return nil
}

func runSilence(ctx context.Context, c *client, o *clientOptions, args []string) error {
	t, err := parseTarget(args[0])
	if err != nil {
		return err
	}
	if t.Whole {
		// The API's silence without a job covers every job of the namespace;
		// the namespace-as-a-whole job alone cannot be silenced.
		return fmt.Errorf("%q: silence %s silences every job of the namespace, this one included", args[0], t.Namespace)
	}
	switch {
	case o.reason == "":
		return errors.New("--reason is required: say why, for whoever sees the silence")
	case o.forDuration == "" && o.until == "":
		return errors.New("--for or --until is required: a silence always ends")
	case o.forDuration != "" && o.until != "":
		return errors.New("give --for or --until, not both")
	}
	req := api.SilenceRequest{Namespace: t.Namespace, Job: t.Name, For: o.forDuration, EndsAt: o.until, Reason: o.reason, CreatedBy: osUser()}
	if t.Name != "" && t.Kind == api.KindCronJob {
		req.Kind = t.Kind
	}
	var s api.SilenceCreated
	if err := c.do(ctx, "POST", "/api/v1/silences", nil, req, &s); err != nil {
		return err
	}
	// On stderr as kubectl prints the API's warnings: -o json stays JSON.
	for _, w := range s.Warnings {
		fmt.Fprintf(c.stderr, "Warning: %s\n", escapeTerminal(w))
	}
	if o.output == "json" || o.output == "yaml" {
		return c.print(o.output, s, nil, "")
	}
	fmt.Fprintf(c.stdout, "silence %s: %s silenced until %s\n", escapeTerminal(s.ID), escapeTerminal(silenceTarget(s.Silence)), s.EndsAt.UTC().Format(time.RFC3339))
	return nil
}

func runSilences(ctx context.Context, c *client, o *clientOptions, _ []string) error {
	var list api.SilenceList
	if err := c.do(ctx, "GET", "/api/v1/silences", nil, nil, &list); err != nil {
		return err
	}
	if o.output == "json" || o.output == "yaml" {
		return c.print(o.output, list, nil, "")
	}
	if len(list.Silences) == 0 {
		fmt.Fprintln(c.stderr, "No silences in force.")
		return nil
	}
	tw := newTable(c.stdout)
	fmt.Fprintln(tw, "ID\tTARGET\tUNTIL\tLEFT\tCREATED BY\tREASON")
	now := time.Now()
	for _, s := range list.Silences {
		writeRow(tw, s.ID, silenceTarget(s), s.EndsAt.UTC().Format(time.RFC3339),
			duration.HumanDuration(s.EndsAt.Sub(now)), orDash(s.CreatedBy), truncate(cell(s.Reason), 60))
	}
	return tw.Flush()
}

func runUnsilence(ctx context.Context, c *client, o *clientOptions, args []string) error {
	if (o.id == "") == (len(args) == 0) {
		return errors.New("usage: batchlatch unsilence NAMESPACE[/NAME], ID, or --id ID")
	}
	if o.id != "" {
		if err := c.do(ctx, "DELETE", "/api/v1/silences/"+url.PathEscape(o.id), nil, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "silence %s ended\n", escapeTerminal(o.id))
		return nil
	}
	t, err := parseTarget(args[0])
	if err != nil {
		return err
	}
	if t.Whole {
		return fmt.Errorf("%q: the namespace as a whole is silenced with its namespace: unsilence %s", args[0], t.Namespace)
	}
	var list api.SilenceList
	if err := c.do(ctx, "GET", "/api/v1/silences", nil, nil, &list); err != nil {
		return err
	}
	// An ID `batchlatch silences` shows is a valid namespace name too: a
	// silence of that ID in force is what it means.
	byID := slices.ContainsFunc(list.Silences, func(s api.Silence) bool { return s.ID == args[0] })
	ended := 0
	for _, s := range list.Silences {
		if byID && s.ID != args[0] || !byID && !silenceIs(s, t) {
			continue
		}
		if err := c.do(ctx, "DELETE", "/api/v1/silences/"+url.PathEscape(s.ID), nil, nil, nil); err != nil {
			var e *apiError
			if errors.As(err, &e) && e.status == http.StatusNotFound {
				continue // it ended meanwhile
			}
			return err
		}
		fmt.Fprintf(c.stdout, "silence %s ended (%s)\n", escapeTerminal(s.ID), escapeTerminal(silenceTarget(s)))
		ended++
	}
	if ended == 0 {
		return fmt.Errorf("no silence in force on %s (batchlatch silences lists them)", t)
	}
	return nil
}

// silenceIs reports whether s is a silence on exactly t: a namespace's
// silence for a namespace, a job's for that job.
func silenceIs(s api.Silence, t target) bool {
	kind := s.Kind
	if kind == "" {
		kind = api.KindWorkflow
	}
	if s.Namespace != t.Namespace || s.Job != t.Name {
		return false
	}
	return s.Job == "" || kind == t.Kind
}

// silenceTarget names what s silences as the commands take it.
func silenceTarget(s api.Silence) string {
	if s.Job == "" {
		return s.Namespace + "/*"
	}
	t := target{Kind: s.Kind, Namespace: s.Namespace, Name: s.Job}
	return t.String()
}

// envName is the environment variable of a flag, as the server's.
func envName(flag string) string {
	return "BATCHLATCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// osUser is who runs the command, recorded on the silences it creates.
func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// print writes obj as JSON or YAML, or jobs as a table (wide or not);
// an empty table says empty on stderr, as kubectl does.
func (c *client) print(format string, obj any, jobs []api.Job, empty string) error {
	switch format {
	case "json":
		data, err := json.MarshalIndent(obj, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", escapeJSON(data))
		return err
	case "yaml":
		data, err := json.Marshal(obj) // what yaml.Marshal does first
		if err != nil {
			return err
		}
		if data, err = yaml.JSONToYAML(escapeJSON(data)); err != nil {
			return err
		}
		_, err = c.stdout.Write(data)
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(c.stderr, empty)
		return nil
	}
	return printJobs(c.stdout, jobs, format == "wide", time.Now())
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) // kubectl's spacing
}

// printJobs writes jobs as kubectl get would, at now.
func printJobs(w io.Writer, jobs []api.Job, wide bool, now time.Time) error {
	tw := newTable(w)
	header := "NAMESPACE\tJOB\tKIND\tSTATUS\tFAILED RUNS\tSINCE\tLAST RUN"
	if wide {
		header += "\tLAST PHASE\tMESSAGE\tNEXT TICK\tSILENCED UNTIL"
	}
	fmt.Fprintln(tw, header)
	for _, j := range jobs {
		name := j.Job
		if name == "" {
			name = "-"
		}
		since := "-"
		if j.Failing {
			since = duration.HumanDuration(time.Duration(j.FailingSeconds * float64(time.Second)))
		}
		lastRun := "-"
		if !j.LastResultAt.IsZero() {
			// max: a server clock ahead of ours is no run in the future.
			lastRun = duration.HumanDuration(max(now.Sub(j.LastResultAt), 0)) + " ago"
		}
		row := []string{j.Namespace, name, j.Kind, status(j), strconv.Itoa(j.ConsecutiveFailures), since, lastRun}
		if wide {
			next := "-"
			if s := j.Schedule; s != nil {
				switch {
				case s.NextTick != nil:
					next = s.NextTick.UTC().Format(time.RFC3339)
				case s.Suspended:
					next = "suspended"
				case s.Stopped:
					next = "stopped"
				}
			}
			until := "-"
			if j.Silenced != nil {
				until = j.Silenced.EndsAt.UTC().Format(time.RFC3339)
			}
			row = append(row, orDash(string(j.LastPhase)), truncate(cell(failureMessage(j)), 50), next, until)
		}
		writeRow(tw, row...)
	}
	return tw.Flush()
}

// status is the STATUS column (statusHelp says what each means).
func status(j api.Job) string {
	switch {
	case j.Silenced != nil:
		return "Silenced"
	case !j.Failing:
		return "OK"
	case j.ConsecutiveFailures < j.FailureThreshold:
		return fmt.Sprintf("Failing (%d of %d)", j.ConsecutiveFailures, j.FailureThreshold)
	}
	return "Failing"
}

// failureMessage is what the latest run's first failed node said.
func failureMessage(j api.Job) string {
	if !j.Failing || len(j.LastFailures) == 0 {
		return "-"
	}
	f := j.LastFailures[0]
	switch {
	case f.DisplayName != "" && f.Message != "":
		return f.DisplayName + ": " + f.Message
	case f.Message != "":
		return f.Message
	}
	return orDash(f.DisplayName)
}

// writeRow writes one row of a table, each value as cell shows it.
func writeRow(w io.Writer, values ...string) {
	for i, v := range values {
		values[i] = cell(v)
	}
	fmt.Fprintln(w, strings.Join(values, "\t"))
}

// cell keeps a value on one line and out of the table's column breaks,
// with nothing in it a terminal would obey (escapeTerminal). It is
// idempotent, so that a value may be cut to its cell's width first.
func cell(s string) string {
	return escapeTerminal(strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\t' || r == '\n' || r == '\r' }), " "))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
