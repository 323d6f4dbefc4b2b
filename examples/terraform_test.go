package examples_test

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/policymodel"
	"github.com/batchlatch/batchlatch/state/filestore"
)

const terraformDir = "terraform"

// Facts the policy's timing rests on (FACTS.md, Cloud Monitoring).
const (
	// A log-based metric can lag this far behind its entries: Google says
	// "may take up to 10 minutes", which is no bound.
	maxIngestionLag = 15 * time.Minute
	// AlertStrategy.autoClose is at least this.
	minAutoClose = 30 * time.Minute
	// Setting evaluationMissingData needs a duration of at least this; every
	// duration is a multiple of it.
	minMissingDataDuration = time.Minute
)

const (
	testProject   = "my-project"
	logMetricType = "google_logging_metric"
	policyType    = "google_monitoring_alert_policy"
)

// tfModule is the Terraform configuration of examples/terraform, parsed with
// HCL (there is no terraform binary here) and evaluated by the test with the
// handful of Terraform functions it uses.
type tfModule struct {
	variables map[string]*hclsyntax.Block
	locals    []*hclsyntax.Attribute
	resources []*hclsyntax.Block
	outputs   []*hclsyntax.Block
	others    []*hclsyntax.Block // terraform, provider
}

func loadTerraform(t *testing.T) *tfModule {
	t.Helper()
	return loadTerraformDir(t, terraformDir)
}

// loadTerraformDir parses the module in dir.
func loadTerraformDir(t *testing.T, terraformDir string) *tfModule {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	for _, want := range []string{"main.tf", "variables.tf", "outputs.tf", "versions.tf"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s/%s is missing (have %v)", terraformDir, want, names)
		}
	}
	m := &tfModule{variables: map[string]*hclsyntax.Block{}}
	parser := hclparse.NewParser()
	for _, p := range paths {
		f, diags := parser.ParseHCLFile(p)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", p, diags)
		}
		body := f.Body.(*hclsyntax.Body)
		if len(body.Attributes) != 0 {
			t.Fatalf("%s: unexpected top-level attributes", p)
		}
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				if _, dup := m.variables[b.Labels[0]]; dup {
					t.Fatalf("%s: variable %q declared twice", p, b.Labels[0])
				}
				m.variables[b.Labels[0]] = b
			case "locals":
				for _, a := range sortedAttrs(b.Body) {
					m.locals = append(m.locals, a)
				}
			case "resource":
				m.resources = append(m.resources, b)
			case "output":
				m.outputs = append(m.outputs, b)
			case "terraform", "provider":
				m.others = append(m.others, b)
			default:
				// data sources, modules...: teach the test about them first.
				t.Fatalf("%s: block %q is not evaluated by this test", p, b.Type)
			}
		}
	}
	return m
}

func sortedAttrs(body *hclsyntax.Body) []*hclsyntax.Attribute {
	attrs := make([]*hclsyntax.Attribute, 0, len(body.Attributes))
	for _, a := range body.Attributes {
		attrs = append(attrs, a)
	}
	slices.SortFunc(attrs, func(a, b *hclsyntax.Attribute) int { return strings.Compare(a.Name, b.Name) })
	return attrs
}

// tfFunctions are the Terraform functions the configuration may use.
var tfFunctions = map[string]function.Function{
	"can":        tryfunc.CanFunc,
	"concat":     stdlib.ConcatFunc,
	"contains":   stdlib.ContainsFunc,
	"regex":      stdlib.RegexFunc,
	"replace":    stdlib.ReplaceFunc, // Terraform's also takes /regex/; plain strings behave the same
	"join":       stdlib.JoinFunc,
	"tonumber":   stdlib.MakeToFunc(cty.Number),
	"trimsuffix": stdlib.TrimSuffixFunc,
	"try":        tryfunc.TryFunc,
}

// varValues evaluates the variables: each default, or the given value,
// converted to the declared type. Variables without a default must be given.
func (m *tfModule) varValues(t *testing.T, given map[string]cty.Value) map[string]cty.Value {
	t.Helper()
	vals := map[string]cty.Value{}
	for name, b := range m.variables {
		ty := cty.DynamicPseudoType
		if a, ok := b.Body.Attributes["type"]; ok {
			var diags hcl.Diagnostics
			if ty, diags = typeexpr.TypeConstraint(a.Expr); diags.HasErrors() {
				t.Fatalf("variable %q: type: %v", name, diags)
			}
		}
		v, ok := given[name]
		if !ok {
			a, has := b.Body.Attributes["default"]
			if !has {
				t.Fatalf("variable %q has no default and the test gives no value", name)
			}
			var diags hcl.Diagnostics
			if v, diags = a.Expr.Value(nil); diags.HasErrors() {
				t.Fatalf("variable %q: default: %v", name, diags)
			}
		}
		converted, err := convert.Convert(v, ty)
		if err != nil {
			t.Fatalf("variable %q: value %#v is not a %s: %v", name, v, ty.FriendlyName(), err)
		}
		vals[name] = converted
	}
	for name := range given {
		if _, ok := m.variables[name]; !ok {
			t.Fatalf("the test sets variable %q, which is not declared", name)
		}
	}
	return vals
}

// evalContext is what Terraform would evaluate the configuration with for
// these variables: var, local, the resources' own attributes (computed ones,
// id and name where not set, unknown) and the functions.
func (m *tfModule) evalContext(t *testing.T, given map[string]cty.Value) *hcl.EvalContext {
	t.Helper()
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(m.varValues(t, given))},
		Functions: tfFunctions,
	}
	// Locals and resources may refer to each other: evaluate in passes until
	// everything is known.
	locals := map[string]cty.Value{}
	resources := map[string]map[string]map[string]cty.Value{} // type → name → attribute
	publish := func() {
		ctx.Variables["local"] = cty.ObjectVal(locals)
		for typ, byName := range resources {
			objs := map[string]cty.Value{}
			for name, attrs := range byName {
				objs[name] = cty.ObjectVal(attrs)
			}
			ctx.Variables[typ] = cty.ObjectVal(objs)
		}
	}
	for {
		publish()
		var pending hcl.Diagnostics
		progress := false
		for _, a := range m.locals {
			if _, done := locals[a.Name]; done {
				continue
			}
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				pending = append(pending, diags...)
				continue
			}
			locals[a.Name], progress = v, true
		}
		for _, b := range m.resources {
			typ, name := b.Labels[0], b.Labels[1]
			if resources[typ][name] != nil {
				continue
			}
			attrs := map[string]cty.Value{"id": cty.UnknownVal(cty.String)}
			ok := true
			for _, a := range sortedAttrs(b.Body) {
				switch a.Name {
				case "depends_on":
					continue
				case "count", "for_each", "provider":
					t.Fatalf("%s.%s: %s is not evaluated by this test", typ, name, a.Name)
				}
				v, diags := a.Expr.Value(ctx)
				if diags.HasErrors() {
					pending, ok = append(pending, diags...), false
					break
				}
				attrs[a.Name] = v
			}
			if !ok {
				continue
			}
			if _, set := attrs["name"]; !set {
				attrs["name"] = cty.UnknownVal(cty.String)
			}
			if resources[typ] == nil {
				resources[typ] = map[string]map[string]cty.Value{}
			}
			resources[typ][name], progress = attrs, true
		}
		if len(pending) == 0 {
			publish()
			return ctx
		}
		if !progress {
			t.Fatalf("cannot evaluate the configuration: %v", pending)
		}
	}
}

// tfBlock is an evaluated block: its attributes and nested blocks.
type tfBlock struct {
	t      *testing.T
	path   string
	labels []string
	attrs  map[string]cty.Value
	blocks map[string][]*tfBlock
	// dependsOn holds the references in depends_on, as "type.name".
	dependsOn []string
}

func evalBlock(t *testing.T, path string, b *hclsyntax.Block, ctx *hcl.EvalContext) *tfBlock {
	t.Helper()
	out := &tfBlock{t: t, path: path, labels: b.Labels, attrs: map[string]cty.Value{}, blocks: map[string][]*tfBlock{}}
	for _, a := range sortedAttrs(b.Body) {
		if a.Name == "depends_on" {
			tuple, ok := a.Expr.(*hclsyntax.TupleConsExpr)
			if !ok {
				t.Fatalf("%s.depends_on is not a list", path)
			}
			for _, e := range tuple.Exprs {
				tr, diags := hcl.AbsTraversalForExpr(e)
				if diags.HasErrors() || len(tr) != 2 {
					t.Fatalf("%s.depends_on: %v", path, diags)
				}
				out.dependsOn = append(out.dependsOn, tr.RootName()+"."+tr[1].(hcl.TraverseAttr).Name)
			}
			continue
		}
		v, diags := a.Expr.Value(ctx)
		if diags.HasErrors() {
			t.Fatalf("%s.%s: %v", path, a.Name, diags)
		}
		out.attrs[a.Name] = v
	}
	for _, nested := range b.Body.Blocks {
		out.blocks[nested.Type] = append(out.blocks[nested.Type], evalBlock(t, path+"."+nested.Type, nested, ctx))
	}
	return out
}

func (b *tfBlock) has(name string) bool { _, ok := b.attrs[name]; return ok }

func (b *tfBlock) str(name string) string {
	b.t.Helper()
	v, ok := b.attrs[name]
	if !ok {
		b.t.Fatalf("%s.%s is not set", b.path, name)
	}
	if !v.IsKnown() || v.IsNull() || v.Type() != cty.String {
		b.t.Fatalf("%s.%s = %#v, want a known string", b.path, name, v)
	}
	return v.AsString()
}

func (b *tfBlock) num(name string) float64 {
	b.t.Helper()
	v, ok := b.attrs[name]
	if !ok || !v.IsKnown() || v.IsNull() || v.Type() != cty.Number {
		b.t.Fatalf("%s.%s = %#v, want a known number", b.path, name, v)
	}
	f, _ := v.AsBigFloat().Float64()
	return f
}

func (b *tfBlock) strings(name string) []string {
	b.t.Helper()
	v, ok := b.attrs[name]
	if !ok || !v.IsKnown() || v.IsNull() || !(v.Type().IsListType() || v.Type().IsTupleType()) {
		b.t.Fatalf("%s.%s = %#v, want a known list", b.path, name, v)
	}
	var out []string
	for _, e := range v.AsValueSlice() {
		if e.Type() != cty.String || !e.IsKnown() {
			b.t.Fatalf("%s.%s: element %#v is not a known string", b.path, name, e)
		}
		out = append(out, e.AsString())
	}
	return out
}

func (b *tfBlock) stringMap(name string) map[string]string {
	b.t.Helper()
	v, ok := b.attrs[name]
	if !ok || !v.IsKnown() || v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		b.t.Fatalf("%s.%s = %#v, want a known map", b.path, name, v)
	}
	out := map[string]string{}
	for k, e := range v.AsValueMap() {
		if e.Type() != cty.String || !e.IsKnown() {
			b.t.Fatalf("%s.%s[%q] is not a known string", b.path, name, k)
		}
		out[k] = e.AsString()
	}
	return out
}

func (b *tfBlock) duration(name string) time.Duration {
	b.t.Helper()
	s := b.str(name)
	if !regexp.MustCompile(`^[0-9]+s$`).MatchString(s) {
		b.t.Fatalf("%s.%s = %q, want seconds like \"120s\" (the API's Duration format)", b.path, name, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.t.Fatal(err)
	}
	return d
}

// block returns the only nested block of that type.
func (b *tfBlock) block(typ string) *tfBlock {
	b.t.Helper()
	if n := len(b.blocks[typ]); n != 1 {
		b.t.Fatalf("%s has %d %s blocks, want 1", b.path, n, typ)
	}
	return b.blocks[typ][0]
}

// evaluated is the whole configuration evaluated for some variables.
type evaluated struct {
	ctx       *hcl.EvalContext
	resources map[string]*tfBlock // "type.name"
	outputs   map[string]*tfBlock
}

func (m *tfModule) eval(t *testing.T, given map[string]cty.Value) evaluated {
	t.Helper()
	if _, ok := given["project"]; !ok {
		given["project"] = cty.StringVal(testProject)
	}
	ctx := m.evalContext(t, given)
	e := evaluated{ctx: ctx, resources: map[string]*tfBlock{}, outputs: map[string]*tfBlock{}}
	for _, b := range m.resources {
		key := b.Labels[0] + "." + b.Labels[1]
		e.resources[key] = evalBlock(t, key, b, ctx)
	}
	for _, b := range m.outputs {
		e.outputs[b.Labels[0]] = evalBlock(t, "output."+b.Labels[0], b, ctx)
	}
	for _, b := range m.others {
		evalBlock(t, b.Type, b, ctx)
	}
	return e
}

// Facts of the Go code the Terraform must agree with, read from its source.

// goSource parses one file of the module.
func goSource(t *testing.T, path string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", path), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sinkResource reads alarm/cloudlogging.go: the monitored resource type the
// Cloud Logging sink writes with, and the pattern of log IDs it accepts.
func sinkResource(t *testing.T) (resourceType string, logID *regexp.Regexp) {
	t.Helper()
	f := goSource(t, "alarm/cloudlogging.go")
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			sel, ok := n.Type.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "MonitoredResource" {
				return true
			}
			for _, el := range n.Elts {
				if kv, ok := el.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Type" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							resourceType, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		case *ast.ValueSpec:
			if len(n.Names) == 1 && n.Names[0].Name == "logIDPattern" && len(n.Values) == 1 {
				if call, ok := n.Values[0].(*ast.CallExpr); ok && len(call.Args) == 1 {
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						logID = regexp.MustCompile(s)
					}
				}
			}
		}
		return true
	})
	if resourceType == "" || logID == nil {
		t.Fatalf("alarm/cloudlogging.go: no MonitoredResource{Type: \"...\"} literal (%q) or logIDPattern (%v): update the test", resourceType, logID)
	}
	return resourceType, logID
}

// A Cloud Logging filter the test can evaluate: clauses "path=value" (the
// value a quoted string or a bare word, number or boolean) or "path:*" (the
// field is present), joined by AND.
type filterClause struct{ path, op, value string }

var filterClauseRE = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_.]*)(=|:)("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.\-*]+)\s*`)

func parseFilter(t *testing.T, filter string) []filterClause {
	t.Helper()
	var out []filterClause
	rest := strings.TrimSpace(filter)
	for {
		m := filterClauseRE.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("filter %q: cannot read %q: the test evaluates only path=value and path:* clauses joined by AND; extend it", filter, rest)
		}
		value := m[3]
		if strings.HasPrefix(value, `"`) {
			var err error
			if value, err = strconv.Unquote(value); err != nil {
				t.Fatalf("filter %q: %v", filter, err)
			}
		}
		if m[2] == ":" && value != "*" {
			t.Fatalf("filter %q: %s:%s: the test evaluates only path:* (presence); extend it", filter, m[1], value)
		}
		out = append(out, filterClause{m[1], m[2], value})
		rest = rest[len(m[0]):]
		if strings.TrimSpace(rest) == "" {
			return out
		}
		and := regexp.MustCompile(`^\s*AND\s+`).FindString(rest)
		if and == "" {
			t.Fatalf("filter %q: want AND before %q", filter, rest)
		}
		rest = rest[len(and):]
	}
}

// clauseValue is the value of the only path=value clause on path.
func clauseValue(t *testing.T, clauses []filterClause, path string) string {
	t.Helper()
	var found []string
	for _, c := range clauses {
		if c.path == path && c.op == "=" {
			found = append(found, c.value)
		}
	}
	if len(found) != 1 {
		t.Fatalf("filter has %d clauses %s=… (%v), want 1", len(found), path, found)
	}
	return found[0]
}

// hasPresence reports whether the filter has the clause path:*.
func hasPresence(clauses []filterClause, path string) bool {
	return slices.Contains(clauses, filterClause{path, ":", "*"})
}

// lookup resolves a dotted LogEntry field path in an entry shaped like the
// LogEntry JSON.
func lookup(entry map[string]any, path string) (any, bool) {
	var cur any = entry
	for _, seg := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[strings.Trim(seg, `"`)]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func matches(entry map[string]any, clauses []filterClause) bool {
	for _, c := range clauses {
		v, ok := lookup(entry, c.path)
		if !ok {
			return false
		}
		if c.op == ":" {
			continue
		}
		switch v := v.(type) {
		case bool:
			if want, err := strconv.ParseBool(c.value); err != nil || v != want {
				return false
			}
		case string:
			if v != c.value {
				return false
			}
		case float64:
			want, err := strconv.ParseFloat(c.value, 64)
			if err != nil || v != want {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// logEntry is the LogEntry the Cloud Logging sink makes of e (see
// alarm/cloudlogging.go: the log, the k8s_container resource of the job's
// namespace, the entry's labels, the payload as JSON).
func logEntry(t *testing.T, e alarm.Entry, project, logName, resourceType string) map[string]any {
	t.Helper()
	var payload map[string]any
	if err := json.Unmarshal([]byte(mustJSON(t, e.Payload)), &payload); err != nil {
		t.Fatal(err)
	}
	labels := map[string]any{}
	for k, v := range e.Labels {
		labels[k] = v
	}
	return map[string]any{
		"logName":     "projects/" + project + "/logs/" + url.PathEscape(logName),
		"severity":    string(e.Severity),
		"labels":      labels,
		"jsonPayload": payload,
		"resource": map[string]any{
			"type":   resourceType,
			"labels": map[string]any{"project_id": project, "namespace_name": e.Labels[alarm.LabelNamespace]},
		},
	}
}

// captureSink keeps what the loop writes.
type captureSink struct {
	mu      sync.Mutex
	entries []alarm.Entry
}

func (s *captureSink) Write(_ context.Context, e alarm.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	return nil
}

func (s *captureSink) Close(context.Context) error { return nil }

func (s *captureSink) all() []alarm.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries)
}

// loopEntries runs batchlatch's alarm loop over two jobs, ml/nightly failing
// and ml/daily just recovered, until it has written ERROR entries, the
// NOTICE, INFO entries with a failing value and heartbeats.
func loopEntries(t *testing.T) []alarm.Entry {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	now := time.Now().UTC()
	for i, r := range []api.Result{
		{Namespace: "ml", WorkflowName: "nightly-1", UID: "n1", CronWorkflow: "nightly", Phase: api.PhaseFailed},
		{Namespace: "ml", WorkflowName: "daily-1", UID: "d1", CronWorkflow: "daily", Phase: api.PhaseError},
		{Namespace: "ml", WorkflowName: "daily-2", UID: "d2", CronWorkflow: "daily", Phase: api.PhaseSucceeded},
	} {
		if _, err := store.Record(ctx, r, now.Add(time.Duration(i-3)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	sink := &captureSink{}
	loop := alarm.NewLoop(store, sink, alarm.LoopConfig{Interval: 10 * time.Millisecond, RecoveryWindow: time.Hour},
		alarm.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); loop.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for {
		got := sink.all()
		kinds := map[string]int{}
		for _, e := range got {
			switch {
			case e.Payload.Heartbeat:
				kinds["heartbeat"]++
			case e.Payload.Failing != nil:
				kinds[string(e.Severity)]++
			}
		}
		if kinds["ERROR"] > 1 && kinds["NOTICE"] > 0 && kinds["INFO"] > 0 && kinds["heartbeat"] > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loop wrote %v, want ERROR, NOTICE and INFO entries about jobs, and heartbeats", kinds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkLogClauses checks the clauses every metric's filter starts with:
// batchlatch's log and the sink's resource type.
func checkLogClauses(t *testing.T, clauses []filterClause, resourceType string) {
	t.Helper()
	if got, want := clauseValue(t, clauses, "logName"), "projects/"+testProject+"/logs/"+alarm.DefaultLogName; got != want {
		t.Errorf("filter logName = %q, want %q", got, want)
	}
	if got := clauseValue(t, clauses, "resource.type"); got != resourceType {
		t.Errorf("filter resource.type = %q, the sink writes %q", got, resourceType)
	}
}

var extractRE = regexp.MustCompile(`^EXTRACT\(([A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"]+"))*)\)$`)

func TestTerraformMetricMatchesEntries(t *testing.T) {
	m := loadTerraform(t)
	e := m.eval(t, map[string]cty.Value{})
	metric := e.get(t, logMetricType+".failing")
	heartbeat := e.get(t, logMetricType+".heartbeat")
	resourceType, logID := sinkResource(t)

	// The log is batchlatch's default; the variable accepts what batchlatch accepts.
	if got := e.ctx.Variables["var"].GetAttr("log_name").AsString(); got != alarm.DefaultLogName {
		t.Errorf("variable log_name defaults to %q, batchlatch writes to %q", got, alarm.DefaultLogName)
	}
	for _, name := range []string{"batchlatch", "team/batchlatch", "a.b-c_d", "", "has space", "ümlaut", strings.Repeat("x", 511), strings.Repeat("x", 512)} {
		accepted := validationPasses(t, m, "log_name", cty.StringVal(name))
		if want := logID.MatchString(name); accepted != want {
			t.Errorf("log_name %q: the variable's validation says %v, batchlatch says %v", name, accepted, want)
		}
	}

	// The failing metric takes every entry that has a failing value; the
	// heartbeat metric takes the heartbeats.
	clauses := parseFilter(t, metric.str("filter"))
	checkLogClauses(t, clauses, resourceType)
	if !hasPresence(clauses, "jsonPayload."+alarm.FieldFailing) || len(clauses) != 3 {
		t.Errorf("failing metric's filter has clauses %v, want only logName, resource.type and jsonPayload.%s:*", clauses, alarm.FieldFailing)
	}
	beats := parseFilter(t, heartbeat.str("filter"))
	checkLogClauses(t, beats, resourceType)
	if got := clauseValue(t, beats, "jsonPayload."+alarm.FieldHeartbeat); got != "true" || len(beats) != 3 {
		t.Errorf("heartbeat metric's filter has clauses %v, want only logName, resource.type and jsonPayload.%s=true", beats, alarm.FieldHeartbeat)
	}
	// A log name with a slash is URL-encoded in logName.
	slashed := m.eval(t, map[string]cty.Value{"log_name": cty.StringVal("team/batchlatch")})
	for _, key := range []string{logMetricType + ".failing", logMetricType + ".heartbeat"} {
		if got := clauseValue(t, parseFilter(t, slashed.get(t, key).str("filter")), "logName"); got != "projects/"+testProject+"/logs/team%2Fbatchlatch" {
			t.Errorf("%s, log_name team/batchlatch: logName = %q, want the log ID URL-encoded", key, got)
		}
	}

	// The metric: a DELTA distribution of the failing values.
	md := metric.block("metric_descriptor")
	if md.str("metric_kind") != "DELTA" || md.str("value_type") != "DISTRIBUTION" {
		t.Errorf("metric_descriptor %s %s, want DELTA DISTRIBUTION", md.str("metric_kind"), md.str("value_type"))
	}
	valuePath := ""
	if mm := extractRE.FindStringSubmatch(metric.str("value_extractor")); mm == nil {
		t.Errorf("value_extractor = %q, want EXTRACT(<field path>)", metric.str("value_extractor"))
	} else {
		valuePath = mm[1]
	}

	// Against the entries batchlatch's loop writes.
	entries := loopEntries(t)
	var errEntry *alarm.Entry
	for _, en := range entries {
		le := logEntry(t, en, testProject, alarm.DefaultLogName, resourceType)
		hasValue := en.Payload.Failing != nil
		if got := matches(le, clauses); got != hasValue {
			t.Errorf("%s entry %q: failing metric's filter matches = %v, want %v", en.Severity, en.Payload.Message, got, hasValue)
		}
		if got := matches(le, beats); got != en.Payload.Heartbeat {
			t.Errorf("%s entry %q: heartbeat filter matches = %v, want %v", en.Severity, en.Payload.Message, got, en.Payload.Heartbeat)
		}
		if matches(logEntry(t, en, testProject, "other", resourceType), clauses) {
			t.Error("the filter matches entries of other logs")
		}
		if !hasValue {
			continue
		}
		// ERROR exactly while failing; the extracted value is the failing value.
		if want := *en.Payload.Failing == 1; (en.Severity == alarm.SeverityError) != want {
			t.Errorf("%s entry with failing %d", en.Severity, *en.Payload.Failing)
		}
		if got, ok := lookup(le, valuePath); !ok || got != float64(*en.Payload.Failing) {
			t.Errorf("value_extractor %s extracts %v from %s entry %q, want %d", valuePath, got, en.Severity, en.Payload.Message, *en.Payload.Failing)
		}
		if en.Severity == alarm.SeverityError && errEntry == nil {
			errEntry = &en
		}
	}
	if errEntry == nil {
		t.Fatal("no ERROR entry")
	}

	// The 0s and the 1s fill finite buckets of their own, and the threshold
	// lies in neither: between the 0s' upper bound and the 1s' lower bound,
	// so a percentile interpolated inside a bucket is on the right side.
	lb := metric.block("bucket_options").block("linear_buckets")
	n, width, offset := lb.num("num_finite_buckets"), lb.num("width"), lb.num("offset")
	bucket := func(v float64) (index int, lower, upper float64) {
		if v < offset {
			return 0, math.Inf(-1), offset
		}
		i := math.Floor((v-offset)/width) + 1
		if i > n {
			return int(n) + 1, offset + n*width, math.Inf(1)
		}
		return int(i), offset + (i-1)*width, offset + i*width
	}
	threshold := policymodel.Shipped.Threshold
	i0, lo0, hi0 := bucket(0)
	i1, lo1, hi1 := bucket(1)
	if math.IsInf(lo0, 0) || math.IsInf(hi1, 0) || i0 == i1 || hi0 > threshold || lo1 <= threshold {
		t.Errorf("linear_buckets %v×%v from %v: 0 in bucket %d [%v, %v), 1 in bucket %d [%v, %v); want finite buckets of their own with the threshold %v between them",
			n, width, offset, i0, lo0, hi0, i1, lo1, hi1, threshold)
	}

	var descriptorLabels []string
	for _, l := range md.blocks["labels"] {
		descriptorLabels = append(descriptorLabels, l.str("key"))
		if l.has("value_type") && l.str("value_type") != "STRING" {
			t.Errorf("label %s: value_type %s, want STRING", l.str("key"), l.str("value_type"))
		}
	}
	wantLabels := []string{alarm.LabelNamespace, alarm.LabelJob, alarm.LabelKind}
	if !sameSet(descriptorLabels, wantLabels) {
		t.Errorf("metric labels = %v, want %v", descriptorLabels, wantLabels)
	}
	le := logEntry(t, *errEntry, testProject, alarm.DefaultLogName, resourceType)
	extractors := metric.stringMap("label_extractors")
	for _, key := range wantLabels {
		ex, ok := extractors[key]
		if !ok {
			t.Errorf("label_extractors has no %q", key)
			continue
		}
		mm := extractRE.FindStringSubmatch(ex)
		if mm == nil {
			t.Errorf("label_extractors[%q] = %q, want EXTRACT(<field path>)", key, ex)
			continue
		}
		got, _ := lookup(le, mm[1])
		if want := errEntry.Labels[key]; got != want || want == "" {
			t.Errorf("label_extractors[%q] = %s extracts %v from an ERROR entry, want %q (its label %s)", key, ex, got, want, key)
		}
		if !strings.HasPrefix(mm[1], "labels.") {
			t.Errorf("label_extractors[%q] = %s: extract the entry label, which every sink sets", key, ex)
		}
	}
	if len(extractors) != len(wantLabels) {
		t.Errorf("label_extractors = %v, want only %v", extractors, wantLabels)
	}

	// The heartbeat metric counts entries.
	hmd := heartbeat.block("metric_descriptor")
	if hmd.str("metric_kind") != "DELTA" || hmd.str("value_type") != "INT64" || heartbeat.has("value_extractor") || len(hmd.blocks["labels"]) != 0 {
		t.Errorf("heartbeat metric %s %s, want a DELTA INT64 counter without labels", hmd.str("metric_kind"), hmd.str("value_type"))
	}
}

// policyOf reads the metric and the threshold condition as the model's Policy.
func policyOf(t *testing.T, metric, policy *tfBlock) policymodel.Policy {
	t.Helper()
	ct := policy.block("conditions").block("condition_threshold")
	agg := ct.block("aggregations")
	var p policymodel.Policy
	switch vt := metric.block("metric_descriptor").str("value_type"); vt {
	case "INT64":
		p.Metric = policymodel.Counter
	case "DISTRIBUTION":
		p.Metric = policymodel.Distribution
	default:
		t.Fatalf("value_type %s: not in the model", vt)
	}
	p.Window = agg.duration("alignment_period")
	switch a := agg.str("per_series_aligner"); {
	case a == "ALIGN_DELTA":
		p.Aligner = policymodel.AlignDelta
	case strings.HasPrefix(a, "ALIGN_PERCENTILE_"):
		p.Aligner = policymodel.AlignPercentile
		pct, err := strconv.Atoi(strings.TrimPrefix(a, "ALIGN_PERCENTILE_"))
		if err != nil {
			t.Fatalf("per_series_aligner %s", a)
		}
		p.Percentile = float64(pct)
	default:
		t.Fatalf("per_series_aligner %s: not in the model", a)
	}
	switch r := agg.str("cross_series_reducer"); r {
	case "REDUCE_SUM":
		p.Reducer = policymodel.ReduceSum
	case "REDUCE_MAX":
		p.Reducer = policymodel.ReduceMax
	default:
		t.Fatalf("cross_series_reducer %s: not in the model", r)
	}
	if c := ct.str("comparison"); c != "COMPARISON_GT" {
		t.Fatalf("comparison %s: the model compares value > threshold", c)
	}
	p.Threshold = ct.num("threshold_value")
	p.Duration = ct.duration("duration")
	switch md := ct.str("evaluation_missing_data"); md {
	case "EVALUATION_MISSING_DATA_INACTIVE":
		p.MissingData = policymodel.MissingInactive
	case "EVALUATION_MISSING_DATA_ACTIVE":
		p.MissingData = policymodel.MissingActive
	case "EVALUATION_MISSING_DATA_NO_OP":
		p.MissingData = policymodel.MissingNoOp
	default:
		t.Fatalf("evaluation_missing_data %s", md)
	}
	p.AutoClose = policy.block("alert_strategy").duration("auto_close")
	return p
}

// get returns the resource "type.name".
func (e evaluated) get(t *testing.T, key string) *tfBlock {
	t.Helper()
	b, ok := e.resources[key]
	if !ok {
		t.Fatalf("no resource %s", key)
	}
	return b
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// validationPasses evaluates every validation block of variable name with
// the variable set to v.
func validationPasses(t *testing.T, m *tfModule, name string, v cty.Value) bool {
	t.Helper()
	b, ok := m.variables[name]
	if !ok {
		t.Fatalf("no variable %q", name)
	}
	given := map[string]cty.Value{"project": cty.StringVal(testProject), name: v}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(m.varValues(t, given))},
		Functions: tfFunctions,
	}
	for _, vb := range b.Body.Blocks {
		if vb.Type != "validation" {
			continue
		}
		cond, diags := vb.Body.Attributes["condition"].Expr.Value(ctx)
		if diags.HasErrors() {
			// Terraform reports an error in a condition as a failed validation too.
			return false
		}
		if cond.Type() != cty.Bool || !cond.True() {
			return false
		}
	}
	return true
}

// docVariables checks that documentation content uses only these Monitoring
// variables (${...}), and no Terraform interpolation is left over.
func docVariables(t *testing.T, doc *tfBlock, allowed ...string) {
	t.Helper()
	if doc.str("mime_type") != "text/markdown" {
		t.Errorf("documentation mime_type = %q", doc.str("mime_type"))
	}
	for _, mm := range regexp.MustCompile(`\$\{([^}]*)\}`).FindAllStringSubmatch(doc.str("content"), -1) {
		if !slices.Contains(allowed, mm[1]) {
			t.Errorf("documentation has ${%s}, want only %v", mm[1], allowed)
		}
	}
}

// checkConditionFilter checks that a policy's condition reads the metric, on
// the resource type the sink writes.
func checkConditionFilter(t *testing.T, policy, filter string, metric *tfBlock, resourceType string) {
	t.Helper()
	clauses := parseFilter(t, filter)
	if got, want := clauseValue(t, clauses, "metric.type"), "logging.googleapis.com/user/"+metric.str("name"); got != want {
		t.Errorf("%s: condition filter metric.type = %q, want %q", policy, got, want)
	}
	if got := clauseValue(t, clauses, "resource.type"); got != resourceType {
		t.Errorf("%s: condition filter resource.type = %q, the sink writes %q", policy, got, resourceType)
	}
}

func TestTerraformAlertPolicy(t *testing.T) {
	m := loadTerraform(t)
	resourceType, _ := sinkResource(t)
	interval := alarm.DefaultInterval
	channels := cty.ListVal([]cty.Value{cty.StringVal("projects/" + testProject + "/notificationChannels/123")})

	for _, tc := range []struct {
		groupBy string
		want    []string
	}{
		{"job", []string{"metric.label." + alarm.LabelNamespace, "metric.label." + alarm.LabelJob, "metric.label." + alarm.LabelKind}},
		{"namespace", []string{"metric.label." + alarm.LabelNamespace}},
	} {
		t.Run("group_by="+tc.groupBy, func(t *testing.T) {
			given := map[string]cty.Value{"group_by": cty.StringVal(tc.groupBy), "notification_channels": channels}
			e := m.eval(t, given)
			metricKey, heartbeatKey := logMetricType+".failing", logMetricType+".heartbeat"
			metric, heartbeat := e.get(t, metricKey), e.get(t, heartbeatKey)
			policy, notWriting := e.get(t, policyType+".failing"), e.get(t, policyType+".not_writing")

			for key, p := range map[string]*tfBlock{metricKey: metric, heartbeatKey: heartbeat, "failing": policy, "not_writing": notWriting} {
				if p.str("project") != testProject {
					t.Errorf("%s: project %q, want var.project", key, p.str("project"))
				}
			}
			// Creating a policy right after its metric can 404: at least
			// never before it.
			if !slices.Contains(policy.dependsOn, metricKey) || !slices.Contains(notWriting.dependsOn, heartbeatKey) {
				t.Errorf("depends_on: %v and %v, want %s and %s", policy.dependsOn, notWriting.dependsOn, metricKey, heartbeatKey)
			}
			for _, p := range []*tfBlock{policy, notWriting} {
				if got := p.strings("notification_channels"); !slices.Equal(got, []string{"projects/" + testProject + "/notificationChannels/123"}) {
					t.Errorf("notification_channels = %v, want var.notification_channels", got)
				}
				if len(p.blocks["conditions"]) != 1 {
					t.Fatalf("policy has %d conditions, want 1", len(p.blocks["conditions"]))
				}
			}

			// The job policy is the one internal/policymodel checks against
			// the targets in every scenario.
			ct := policy.block("conditions").block("condition_threshold")
			checkConditionFilter(t, "failing", ct.str("filter"), metric, resourceType)
			want := policymodel.Shipped
			want.Name = ""
			if got := policyOf(t, metric, policy); got != want {
				t.Errorf("the Terraform's policy is\n%+v\nthe model's is\n%+v", got, want)
			}

			// Its timing is batchlatch's: the weight of a change is computed
			// for the window; the failing 0 entries last the window and the
			// metric's ingestion lag; a loop that starts announces again the
			// recoveries as old as auto_close.
			alignment := want.Window
			if alignment != alarm.DefaultPolicyWindow {
				t.Errorf("alignment_period %s, batchlatch's --policy-window defaults to %s", alignment, alarm.DefaultPolicyWindow)
			}
			if alarm.DefaultRecoveryWindow < alignment+maxIngestionLag {
				t.Errorf("the recovery window %s < alignment_period %s + ingestion lag %s", alarm.DefaultRecoveryWindow, alignment, maxIngestionLag)
			}
			if want.AutoClose != alarm.ReannounceRecoveries || want.AutoClose < minAutoClose {
				t.Errorf("auto_close %s, want alarm.ReannounceRecoveries %s (at least %s)", want.AutoClose, alarm.ReannounceRecoveries, minAutoClose)
			}
			if want.Duration%minMissingDataDuration != 0 || want.Duration < minMissingDataDuration {
				t.Errorf("duration %s: evaluation_missing_data needs a multiple of %s", want.Duration, minMissingDataDuration)
			}

			groupBy := ct.block("aggregations").strings("group_by_fields")
			if !slices.Equal(groupBy, tc.want) {
				t.Errorf("group_by_fields = %v, want %v", groupBy, tc.want)
			}
			for _, f := range groupBy {
				if label, ok := strings.CutPrefix(f, "metric.label."); ok {
					if !slices.ContainsFunc(metric.block("metric_descriptor").blocks["labels"], func(l *tfBlock) bool { return l.str("key") == label }) {
						t.Errorf("group_by_fields has %s, which the metric does not have", f)
					}
				}
			}
			if tr := ct.blocks["trigger"]; len(tr) > 0 && (tr[0].has("percent") || tr[0].num("count") != 1) {
				t.Error("trigger must be count = 1: each series is its own incident")
			}
			doc := policy.block("documentation")
			docVariables(t, doc, "metric.label."+alarm.LabelNamespace, "metric.label."+alarm.LabelJob, "metric.label."+alarm.LabelKind)
			if !strings.Contains(doc.str("content"), "/api/v1/failures") {
				t.Error("documentation lacks /api/v1/failures")
			}
			if got := e.outputs["metric_type"].str("value"); got != "logging.googleapis.com/user/"+metric.str("name") {
				t.Errorf("output metric_type = %q", got)
			}

			// batchlatch's own alert: no heartbeat for longer than the
			// ingestion lag and a write interval, per install.
			ca := notWriting.block("conditions").block("condition_absent")
			checkConditionFilter(t, "not_writing", ca.str("filter"), heartbeat, resourceType)
			if d := ca.duration("duration"); d < maxIngestionLag+interval || d%time.Minute != 0 {
				t.Errorf("not_writing duration %s: want whole minutes, at least the ingestion lag %s and an interval %s", d, maxIngestionLag, interval)
			}
			for _, f := range append(ca.block("aggregations").strings("group_by_fields"), groupBy...) {
				if strings.Contains(f, "pod") {
					t.Errorf("group_by_fields has %s: each writer pod would make its own incident", f)
				}
			}
			docVariables(t, notWriting.block("documentation"), "resource.label.namespace_name")
		})
	}

	t.Run("variable validation", func(t *testing.T) {
		longest := fmt.Sprintf("%ds", int(alarm.MaxWindowPasses*alarm.DefaultInterval/time.Second))
		tooLong := fmt.Sprintf("%ds", int((alarm.MaxWindowPasses+1)*alarm.DefaultInterval/time.Second))
		for _, tc := range []struct {
			name  string
			value cty.Value
			ok    bool
		}{
			{"group_by", cty.StringVal("job"), true},
			{"group_by", cty.StringVal("namespace"), true},
			{"group_by", cty.StringVal("pod"), false},
			{"alignment_period", cty.StringVal("1080s"), true},
			{"alignment_period", cty.StringVal("120s"), true},
			// batchlatch weighs a change for at most MaxWindowPasses passes.
			{"alignment_period", cty.StringVal(longest), true},
			{"alignment_period", cty.StringVal(tooLong), false},
			{"alignment_period", cty.StringVal("60s"), false},
			{"alignment_period", cty.StringVal("150s"), false},
			{"alignment_period", cty.StringVal("12m"), false},
			{"alignment_period", cty.StringVal("s"), false},
			{"not_writing_after", cty.StringVal("1200s"), true},
			{"not_writing_after", cty.StringVal(fmt.Sprintf("%ds", int((maxIngestionLag+alarm.DefaultInterval)/time.Second))), true},
			{"not_writing_after", cty.StringVal("600s"), false},
			{"not_writing_after", cty.StringVal("20m"), false},
		} {
			if got := validationPasses(t, m, tc.name, tc.value); got != tc.ok {
				t.Errorf("%s = %s: validation passes = %v, want %v", tc.name, tc.value.GoString(), got, tc.ok)
			}
		}
	})
}

func TestTerraformFormatted(t *testing.T) {
	// terraform fmt is not available; hclwrite's formatter is what it runs.
	paths, _ := filepath.Glob(filepath.Join(terraformDir, "*.tf"))
	nested, _ := filepath.Glob(filepath.Join(terraformDir, "*", "*.tf"))
	for _, p := range append(paths, nested...) {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(hclwrite.Format(src)); got != string(src) {
			t.Errorf("%s is not formatted as terraform fmt would:\n%s", p, diffLines(string(src), got))
		}
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n- %q\n+ %q", i+1, x, y))
		}
		if len(out) > 5 {
			break
		}
	}
	return strings.Join(out, "\n")
}
