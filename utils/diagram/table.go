package diagram

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/jedib0t/go-pretty/v6/text"
)

// TableOptions shape the terminal table.
type TableOptions struct {
	Width        int  // total width in terminal cells; 0 means 120
	NoHeartbeats bool // hide empty AppendEntries and their successful replies
	Color        bool // ANSI colors by event kind
	Relative     bool // time since the first event instead of the clock
}

// minNodeColumn keeps columns readable when there are many nodes; the table
// then grows wider than asked rather than wrapping every word.
const minNodeColumn = 14

// Title is the heading of a run in tables and pages.
func (r *Run) Title() string {
	name := r.Name
	if name == "" {
		name = "trace"
	}
	if r.Result != "" {
		name += " — " + r.Result
		if r.Elapsed != "" {
			name += " " + r.Elapsed
		}
	}
	return name
}

// Table renders a run as a table with a time column and one column per node,
// one row per event.
func Table(r *Run, opt TableOptions) string {
	nodes := r.Nodes()
	col := map[string]int{}
	header := table.Row{"time"}
	for i, n := range nodes {
		col[n] = i + 1
		if n == SimNode {
			header = append(header, n)
		} else {
			header = append(header, "node "+n)
		}
	}

	t := table.NewWriter()
	t.SetTitle(r.Title())
	t.SetStyle(table.StyleLight)
	t.Style().Format.Header = text.FormatDefault
	t.Style().Title.Align = text.AlignLeft
	t.AppendHeader(header)

	width := opt.Width
	if width <= 0 {
		width = 120
	}
	timeWidth := len("00:00:00.000000")
	if opt.Relative {
		timeWidth = len("+000.000000s")
	}
	// Each column costs its text plus two spaces of padding and a border.
	nodeWidth := minNodeColumn
	if len(nodes) > 0 {
		nodeWidth = max(minNodeColumn, (width-1-(timeWidth+3))/len(nodes)-3)
	}
	configs := []table.ColumnConfig{{Number: 1, WidthMin: timeWidth}}
	for i := range nodes {
		configs = append(configs, table.ColumnConfig{
			Number: i + 2, WidthMax: nodeWidth, WidthMaxEnforcer: text.WrapSoft,
		})
	}
	t.SetColumnConfigs(configs)

	var start time.Duration
	if len(r.Events) > 0 {
		start = r.Events[0].At
	}
	rows := 0
	for i := range r.Events {
		e := &r.Events[i]
		if opt.NoHeartbeats && e.Heartbeat {
			continue
		}
		row := make(table.Row, len(nodes)+1)
		for j := range row {
			row[j] = ""
		}
		row[0] = e.Clock()
		if opt.Relative {
			row[0] = fmt.Sprintf("+%.6fs", (e.At - start).Seconds())
		}
		msg := e.Msg
		if opt.Color {
			row[0] = text.Colors{text.FgHiBlack}.Sprint(row[0])
			msg = colorsFor(e).Sprint(msg)
		}
		row[col[e.Node]] = msg
		t.AppendRow(row)
		rows++
	}
	if rows == 0 {
		row := table.Row{"(no events)"}
		for range nodes {
			row = append(row, "") // a nil cell would print as <nil>
		}
		t.AppendRow(row)
	}
	return t.Render()
}

// WriteTable writes the table of a run followed by a newline.
func WriteTable(w io.Writer, r *Run, opt TableOptions) error {
	_, err := io.WriteString(w, Table(r, opt)+"\n")
	return err
}

func colorsFor(e *Event) text.Colors {
	switch e.Kind {
	case KindSafety:
		return text.Colors{text.BgRed, text.FgHiWhite, text.Bold}
	case KindFault:
		return text.Colors{text.FgHiRed, text.Bold}
	case KindRole:
		switch e.Role {
		case RoleLeader:
			return text.Colors{text.FgHiGreen, text.Bold}
		case RoleCandidate, RolePreCandidate:
			return text.Colors{text.FgHiYellow, text.Bold}
		}
		return text.Colors{text.FgCyan, text.Bold}
	case KindTerm, KindLeader:
		return text.Colors{text.FgMagenta}
	case KindElection, KindVote:
		return text.Colors{text.FgYellow}
	case KindSend, KindRecv:
		if e.Heartbeat {
			return text.Colors{text.FgHiBlack}
		}
		if e.RPC.Reject || (e.RPC.Name == "VoteReply" && !e.RPC.Granted) {
			return text.Colors{text.FgRed}
		}
		return text.Colors{text.FgBlue}
	case KindCommit:
		return text.Colors{text.FgGreen, text.Bold}
	case KindClient:
		return text.Colors{text.FgHiCyan}
	case KindSnapshot, KindTransfer:
		return text.Colors{text.FgHiMagenta}
	}
	return nil
}

// Summary is a one-line description of a run for listings.
func (r *Run) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d events", r.Title(), len(r.Events))
	if n := r.Nodes(); len(n) > 0 {
		fmt.Fprintf(&b, ", nodes %s", strings.Join(n, " "))
	}
	if d := r.Duration(); d > 0 {
		fmt.Fprintf(&b, ", %v", d)
	}
	return b.String()
}
