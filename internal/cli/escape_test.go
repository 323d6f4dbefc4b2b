package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestEscapesKeepTheValue(t *testing.T) {
	for _, s := range []string{
		"plain", "tab\tnewline\n", "\x1b]52;c;aGk=\x07", "\x00\x7f", "\u0085\u009b\u009d", "\u202e\u2066", "\U000e0001tag", "héllo wörld 日本", "\u00a0nbsp",
	} {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		escaped := escapeJSON(data)
		var back string
		if err := json.Unmarshal(escaped, &back); err != nil || back != s {
			t.Errorf("%q: escapeJSON wrote %s, read back as %q (%v)", s, escaped, back, err)
		}
		if !terminalSafe(string(escaped)) {
			t.Errorf("%q: escapeJSON wrote %q", s, escaped)
		}
		if got := escapeTerminal(s); !terminalSafe(got) {
			t.Errorf("%q: escapeTerminal wrote %q", s, got)
		}
	}
	if got := escapeTerminal("a\x1b[2J\xffb\u009b"); got != `a\x1b[2J\xffb\u009b` {
		t.Errorf("escapeTerminal: %q", got)
	}
	if got := escapeTerminal("日本 \u00a0ok"); got != "日本 \u00a0ok" {
		t.Errorf("escapeTerminal changed graphic runes: %q", got)
	}
}

// terminalSafe reports whether out holds nothing a terminal would act on
// (cmd/batchlatch's CLI tests have the same check).
func terminalSafe(out string) bool {
	for i, r := range out {
		if r == utf8.RuneError && !strings.HasPrefix(out[i:], "\uFFFD") || r != '\n' && !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}
