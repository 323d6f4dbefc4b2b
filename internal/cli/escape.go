package cli

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// escapeTerminal writes each rune of s that a terminal would obey rather
// than show as Go writes it in a quoted string (ESC as \x1b, NUL as \x00,
// CSI as \u009b, a byte that is not UTF-8 as \xff), so that stored data
// cannot clear the screen, write the clipboard (OSC 52), hide text or
// break a line. Hand-written because kubectl's printers.EscapeTerminal,
// the one library function for it, replaces ESC and CR only: NUL, BEL,
// backspace, DEL, the 8-bit C1 controls (CSI, OSC: several terminals obey
// them) and bidirectional overrides would pass. Every rune that is not
// graphic (unicode.IsGraphic) is escaped, by strconv's quoting.
func escapeTerminal(s string) string {
	if !strings.ContainsFunc(s, needsEscape) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || needsEscape(r) {
			quoted := strconv.Quote(s[i : i+size])
			b.WriteString(quoted[1 : len(quoted)-1])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune) bool { return !unicode.IsGraphic(r) }

// escapeJSON escapes, in JSON that encoding/json wrote, the runes it leaves
// as they are although a terminal would obey them: DEL, the C1 controls
// and the other runes that are not graphic (encoding/json escapes those
// below U+0020 and U+2028, U+2029). They can only be inside strings, where
// \uXXXX means the same rune: the JSON holds the same values. YAML is
// written from it too: sigs.k8s.io/yaml refuses such runes in raw JSON
// ("control characters are not allowed") and writes the escaped ones
// escaped.
func escapeJSON(data []byte) []byte {
	if !bytes.ContainsFunc(data, func(r rune) bool { return r >= 0x7f && needsEscape(r) }) {
		return data
	}
	var b bytes.Buffer
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		switch {
		case r < 0x7f || !needsEscape(r):
			b.Write(data[:size])
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		data = data[size:]
	}
	return b.Bytes()
}
