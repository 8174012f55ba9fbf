package diagram

import (
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
)

// A terminal table is easiest to show in a README as a picture. Rather than
// depend on a terminal emulator, WriteTerminalHTML wraps the (colored) text in
// a page styled like a dark terminal, which a headless browser can then
// screenshot (utils/screenshot.sh).

// ansiPalette maps SGR color numbers (30–37, 90–97 and their backgrounds) to
// CSS colors that read well on the dark background.
var ansiPalette = map[int]string{
	0: "#4b5263", 1: "#e06c75", 2: "#98c379", 3: "#e5c07b",
	4: "#61afef", 5: "#c678dd", 6: "#56b6c2", 7: "#dcdfe4",
	8: "#7f848e", 9: "#ff7b86", 10: "#b5e890", 11: "#ffd68a",
	12: "#82c4ff", 13: "#de9bf0", 14: "#7fd8e3", 15: "#ffffff",
}

// WriteTerminalHTML writes a self-contained page showing text, which may
// contain ANSI color codes, as a terminal would. command, if set, is shown
// as the prompt line that produced the text.
func WriteTerminalHTML(w io.Writer, text, title, command string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>%s</title>
<style>
body { margin: 0; padding: 18px; background: #d9dce1; display: inline-block; }
.term { background: #1e222a; border-radius: 8px; box-shadow: 0 8px 28px rgba(0,0,0,.35); overflow: hidden; display: inline-block; }
.bar { height: 28px; background: #2c313a; display: flex; align-items: center; padding: 0 12px; gap: 7px; }
.dot { width: 12px; height: 12px; border-radius: 50%%; }
.bar .t { margin-left: 10px; color: #9da5b4; font: 12px "DejaVu Sans", sans-serif; }
pre { margin: 0; padding: 12px 16px 14px; color: #d6dbe5; font: 13px/normal "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.prompt { color: #98c379; }
.b { font-weight: bold; }
.f { opacity: .7; }
</style>
</head>
<body><div class="term"><div class="bar"><span class="dot" style="background:#ff5f57"></span><span class="dot" style="background:#febc2e"></span><span class="dot" style="background:#28c840"></span><span class="t">%s</span></div><pre>`,
		html.EscapeString(title), html.EscapeString(title))
	if command != "" {
		fmt.Fprintf(&b, "<span class=\"prompt\">$</span> %s\n", html.EscapeString(command))
	}
	b.WriteString(ansiToHTML(text))
	b.WriteString("</pre></div></body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ansiToHTML turns SGR escape sequences into spans and escapes the rest.
// Other escape sequences are dropped.
func ansiToHTML(s string) string {
	var b strings.Builder
	var fg, bg = -1, -1
	var bold, faint, open bool
	for len(s) > 0 {
		i := strings.IndexByte(s, 0x1b)
		if i < 0 {
			b.WriteString(html.EscapeString(s))
			break
		}
		b.WriteString(html.EscapeString(s[:i]))
		s = s[i+1:]
		if len(s) == 0 || s[0] != '[' {
			continue
		}
		end := strings.IndexFunc(s[1:], func(r rune) bool { return r >= 0x40 && r <= 0x7e })
		if end < 0 {
			break
		}
		params, final := s[1:1+end], s[1+end]
		s = s[2+end:]
		if final != 'm' {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			n, err := strconv.Atoi(p)
			if p == "" {
				n, err = 0, nil
			}
			if err != nil {
				continue
			}
			switch {
			case n == 0:
				fg, bg, bold, faint = -1, -1, false, false
			case n == 1:
				bold = true
			case n == 2:
				faint = true
			case n == 22:
				bold, faint = false, false
			case n >= 30 && n <= 37:
				fg = n - 30
			case n >= 90 && n <= 97:
				fg = n - 90 + 8
			case n == 39:
				fg = -1
			case n >= 40 && n <= 47:
				bg = n - 40
			case n >= 100 && n <= 107:
				bg = n - 100 + 8
			case n == 49:
				bg = -1
			}
		}
		if open {
			b.WriteString("</span>")
			open = false
		}
		if fg >= 0 || bg >= 0 || bold || faint {
			var style, class []string
			if fg >= 0 {
				style = append(style, "color:"+ansiPalette[fg])
			}
			if bg >= 0 {
				style = append(style, "background:"+ansiPalette[bg])
			}
			if bold {
				class = append(class, "b")
			}
			if faint {
				class = append(class, "f")
			}
			fmt.Fprintf(&b, `<span class="%s" style="%s">`, strings.Join(class, " "), strings.Join(style, ";"))
			open = true
		}
	}
	if open {
		b.WriteString("</span>")
	}
	return b.String()
}
