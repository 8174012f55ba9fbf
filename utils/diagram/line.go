package diagram

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"raft-consensus/raft/core"
)

// maxNodeDigits bounds node ids so that a lane name can't be a megabyte of
// digits; real clusters have a handful of nodes.
const maxNodeDigits = 9

// validNode accepts "sim" and canonical decimal numbers (no sign, no leading
// zeros: "01" and "1" would otherwise be two lanes for one node).
func validNode(s string) bool {
	if s == SimNode {
		return true
	}
	if s == "" || len(s) > maxNodeDigits || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseClock reads exactly HH:MM:SS.micros, the tracer's format. Anything
// shorter is a truncated line, not a coarser clock.
func parseClock(s string) (time.Duration, bool) {
	if len(s) != len("15:04:05.000000") || s[2] != ':' || s[5] != ':' || s[8] != '.' {
		return 0, false
	}
	field := func(from, to int) (int64, bool) {
		var n int64
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int64(s[i]-'0')
		}
		return n, true
	}
	h, ok1 := field(0, 2)
	m, ok2 := field(3, 5)
	sec, ok3 := field(6, 8)
	us, ok4 := field(9, 15)
	if !ok1 || !ok2 || !ok3 || !ok4 || h > 23 || m > 59 || sec > 59 {
		return 0, false
	}
	return time.Duration(((h*60+m)*60+sec)*1e6+us) * time.Microsecond, true
}

// parseTextLine reads `HH:MM:SS.micros [node] message`. When the line is not
// one, why says what is wrong with it, for the malformed-line report.
func parseTextLine(line string) (at time.Duration, node, msg, why string) {
	clock, rest, found := strings.Cut(line, " [")
	if !found {
		return 0, "", "", "not a trace line"
	}
	var ok bool
	if at, ok = parseClock(clock); !ok {
		return 0, "", "", "bad timestamp"
	}
	node, msg, found = strings.Cut(rest, "] ")
	if !found {
		if strings.HasSuffix(rest, "]") {
			return 0, "", "", "empty message"
		}
		return 0, "", "", "no ] after the node id"
	}
	if !validNode(node) {
		return 0, "", "", "bad node id"
	}
	if msg = cleanMessage(msg); msg == "" {
		return 0, "", "", "empty message"
	}
	return at, node, msg, ""
}

// jsonLine is the tracer's JSON form: time, node, the event's fields
// (kind …) and its text. Msg is the text of an older form without kind.
// Action/Test/Output are go test -json (test2json) fields: such a line
// wraps one line of test output.
type jsonLine struct {
	Time   string  `json:"time"`
	Node   *string `json:"node"`
	Kind   *string `json:"kind"`
	Msg    *string `json:"msg"`
	Action string  `json:"Action"`
	Test   string  `json:"Test"`
	Output *string `json:"Output"`
}

// cleanMessage makes a message safe to print in a terminal cell or an SVG
// text: invalid UTF-8 and control characters (escape sequences would
// repaint the terminal) become visible escapes instead of being obeyed.
func cleanMessage(s string) string {
	s = strings.TrimRight(s, " \t\r")
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteByte("0123456789abcdef"[s[i]>>4])
			b.WriteByte("0123456789abcdef"[s[i]&15])
		case r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r):
			if r < 0x100 {
				b.WriteString(`\x`)
				b.WriteByte("0123456789abcdef"[r>>4])
				b.WriteByte("0123456789abcdef"[r&15])
			} else {
				b.WriteRune(utf8.RuneError)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// decodeJSONLine returns the parsed object, or nil if the line is not JSON.
func decodeJSONLine(line string) *jsonLine {
	var j jsonLine
	if json.Unmarshal([]byte(line), &j) != nil {
		return nil
	}
	return &j
}

// traceFromJSON validates the tracer's JSON form and decodes its event.
func traceFromJSON(j *jsonLine, line string) (at time.Duration, node string, e core.Event, ok bool) {
	if j.Node == nil || !validNode(*j.Node) {
		return 0, "", e, false
	}
	if at, ok = parseClock(j.Time); !ok {
		return 0, "", e, false
	}
	switch {
	case j.Kind != nil:
		if json.Unmarshal([]byte(line), &e) != nil || e.Kind == core.EventNone {
			return 0, "", e, false
		}
	case j.Msg != nil:
		e = freeText(*j.Msg)
	default:
		return 0, "", e, false
	}
	return at, *j.Node, e, cleanMessage(e.Text()) != ""
}
