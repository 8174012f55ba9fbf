package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ParseCommand splits one input line into words: the command (a number or
// a word) and its arguments. Words are separated by white space; "double
// quotes" and 'single quotes' keep spaces inside one word (set greeting
// "hello world"). Inside double quotes a backslash escapes " and \; single
// quotes take everything literally. A blank line, or one whose first
// non-blank character is #, is a comment: no words and no error; a # alone
// as a word starts a comment that runs to the end of the line (set x 5 #
// why), while # inside a word is kept (set x #5).
func ParseCommand(line string) ([]string, error) {
	return splitWords(line)
}

// splitWords is the tokenizer behind ParseCommand.
func splitWords(line string) ([]string, error) {
	if trimmed := strings.TrimLeftFunc(line, unicode.IsSpace); trimmed == "" || trimmed[0] == '#' {
		return nil, nil
	}
	var (
		words  []string
		cur    strings.Builder
		inWord bool // cur holds a word, maybe an empty one ("")
	)
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		switch {
		case r == '"' || r == '\'':
			end, err := readQuoted(line, i, &cur)
			if err != nil {
				return nil, err
			}
			i, inWord = end, true
			continue
		case r == '#' && !inWord && (i+1 == len(line) || unicode.IsSpace(rune(line[i+1]))):
			return words, nil // a comment to the end of the line
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			// Invalid UTF-8 is kept byte for byte: values are strings, not text.
			cur.WriteString(line[i : i+size])
			inWord = true
		}
		i += size
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// readQuoted copies the quoted string that starts at line[start] into cur
// and returns the index just past its closing quote.
func readQuoted(line string, start int, cur *strings.Builder) (int, error) {
	quote := line[start]
	for i := start + 1; i < len(line); i++ {
		c := line[i]
		switch {
		case c == quote:
			return i + 1, nil
		case quote == '"' && c == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\'):
			cur.WriteByte(line[i+1])
			i++
		default:
			cur.WriteByte(c)
		}
	}
	return 0, fmt.Errorf("unterminated %c quote — close it, e.g. set greeting %chello world%c", quote, quote, quote)
}

// quoteIfNeeded shows a key or value so that it can be typed back: as is
// when it is one plain word, quoted otherwise.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for i, r := range s {
		if unicode.IsSpace(r) || r == '"' || r == '\'' || r == '\\' || !unicode.IsGraphic(r) || (i == 0 && r == '#') {
			return strconv.Quote(s)
		}
	}
	return s
}

// echoRunes bounds what an error message repeats of the user's input.
const echoRunes = 40

// echo shows a word the user typed in an error message: as quoteIfNeeded
// does, cut short if it is long (a pasted page is not repeated back).
func echo(s string) string {
	if r := []rune(s); len(r) > echoRunes {
		return quoteIfNeeded(string(r[:echoRunes])) + fmt.Sprintf("… (%d bytes in all)", len(s))
	}
	return quoteIfNeeded(s)
}

var errNotNumber = errors.New("not a number")

// parseNodeID reads a node id: a plain non-negative decimal number (no
// sign, no hex), so that -1 never becomes core.None by accident.
func parseNodeID(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, errNotNumber
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, errNotNumber
		}
	}
	return strconv.Atoi(s)
}

// parseMemberChanges reads the change command's arguments: +3 adds server
// 3, -0 removes server 0.
func parseMemberChanges(args []string) (adds, removes []int, err error) {
	seen := map[int]bool{}
	for _, a := range args {
		if len(a) < 2 || a[0] != '+' && a[0] != '-' {
			return nil, nil, fmt.Errorf("%s is not a change — write +ID to add a server and -ID to remove one, e.g. \"change +3 -0\"", echo(a))
		}
		id, err := parseNodeID(a[1:])
		if err != nil || id >= 1000 {
			return nil, nil, fmt.Errorf("%s is not a node id — ids are numbers from 0 to 999, e.g. \"change +3 -0\"", echo(a[1:]))
		}
		if seen[id] {
			return nil, nil, fmt.Errorf("node %d is named twice", id)
		}
		seen[id] = true
		if a[0] == '+' {
			adds = append(adds, id)
		} else {
			removes = append(removes, id)
		}
	}
	return adds, removes, nil
}
