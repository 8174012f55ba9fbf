// Command plot reads the JSON result lines of bench/compare.sh (the
// benchmark output of raft-consensus and of its baselines, hashicorp/raft
// and dragonboat), prints the table of medians per workload with the ratio
// of raft-consensus to the best baseline, and draws throughput against
// clients for each (memory storage) as a PNG.
//
// Throughput and latency come from the runs without failovers
// (-failovers 0); the failover median pools the samples of the runs with
// them, whose short load phase is not counted as a throughput run.
//
//	go run ./bench/plot -out images/bench-throughput.png bench/results/*.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// result is one line of either program's output (the common schema).
type result struct {
	Impl          string    `json:"impl"`
	Store         string    `json:"store"`
	Clients       int       `json:"clients"`
	OpsPerSec     float64   `json:"ops_per_sec"`
	P50Ms         float64   `json:"p50_ms"`
	P90Ms         float64   `json:"p90_ms"`
	P99Ms         float64   `json:"p99_ms"`
	Size          int       `json:"size"`
	FailoverMs    *float64  `json:"failover_ms"`
	FailoverAllMs []float64 `json:"failover_all_ms"`
	LoadAvg       float64   `json:"loadavg"`
}

const (
	hashicorp  = "hashicorp"
	dragonboat = "dragonboat"
	ours       = "raft-consensus"
)

// impls are the implementations, in the order of the table: the
// baselines, then this project.
var impls = []string{hashicorp, dragonboat, ours}

func main() {
	out := flag.String("out", "images/bench-throughput.png", "throughput PNG to write (empty: none)")
	latOut := flag.String("latency-out", "", "latency PNG to write: p50, p90 and p99 of each implementation at 16 clients, memory and durable (empty: none)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: plot [-out file.png] results.jsonl...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var rs []result
	for _, name := range flag.Args() {
		got, err := readResults(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "plot:", err)
			os.Exit(1)
		}
		rs = append(rs, got...)
	}
	printTable(os.Stdout, rs)
	if *out != "" {
		if err := drawThroughput(rs, *out); err != nil {
			fmt.Fprintln(os.Stderr, "plot:", err)
			os.Exit(1)
		}
	}
	if *latOut != "" {
		if err := drawLatency(rs, *latOut); err != nil {
			fmt.Fprintln(os.Stderr, "plot:", err)
			os.Exit(1)
		}
	}
}

func readResults(name string) ([]result, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rs []result
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		if !slices.Contains(impls, r.Impl) {
			return nil, fmt.Errorf("%s:%d: unknown impl %q", name, line, r.Impl)
		}
		rs = append(rs, r)
	}
	return rs, sc.Err()
}

// workload is a store, a client count and a command size; the baseline's
// bolt store is the counterpart of our disk store.
type workload struct {
	durable bool
	clients int
	size    int // bytes per command; 0 in older results: the default 64
}

// defaultSize is the bench's default command size.
const defaultSize = 64

func (w workload) String() string {
	clients := fmt.Sprintf("%d clients", w.clients)
	if w.clients == 1 {
		clients = "1 client"
	}
	s := clients + ", memory"
	if w.durable {
		s = clients + ", fsync (bolt / disk)"
	}
	if w.size != defaultSize {
		s += fmt.Sprintf(", %d-byte commands", w.size)
	}
	return s
}

func groupBy(rs []result) map[workload]map[string][]result {
	g := map[workload]map[string][]result{}
	for _, r := range rs {
		if len(r.FailoverAllMs) > 0 {
			continue // a failover run
		}
		size := r.Size
		if size == 0 {
			size = defaultSize
		}
		w := workload{durable: r.Store != "mem", clients: r.Clients, size: size}
		if g[w] == nil {
			g[w] = map[string][]result{}
		}
		g[w][r.Impl] = append(g[w][r.Impl], r)
	}
	return g
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func field(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

func list(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}

// printTable writes, per workload, the medians of throughput, p50 and p99
// of each implementation and the ratio of ours to the best baseline, then
// the failover medians over every crash sample of each implementation.
func printTable(w io.Writer, rs []result) {
	g := groupBy(rs)
	keys := make([]workload, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b workload) int {
		if a.durable != b.durable {
			if a.durable {
				return 1
			}
			return -1
		}
		if (a.size == defaultSize) != (b.size == defaultSize) {
			if a.size == defaultSize {
				return -1
			}
			return 1
		}
		if a.size != b.size {
			return a.size - b.size
		}
		return a.clients - b.clients
	})
	present := presentImpls(rs)
	ops := func(r result) float64 { return r.OpsPerSec }
	p50 := func(r result) float64 { return r.P50Ms }
	p99 := func(r result) float64 { return r.P99Ms }
	load := func(r result) float64 { return r.LoadAvg }
	header := "| workload | runs |"
	for _, what := range []string{"ops/s", "p50 ms", "p99 ms"} {
		for _, impl := range present {
			header += " " + impl + " " + what + " |"
		}
	}
	header += " ours / best baseline | load avg |"
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, "| --- | --- |"+strings.Repeat(" ---: |", 3*len(present)+1)+" --- |")
	for _, k := range keys {
		var runs []string
		var all []result
		for _, impl := range present {
			runs = append(runs, strconv.Itoa(len(g[k][impl])))
			all = append(all, g[k][impl]...)
		}
		row := fmt.Sprintf("| %v | %s |", k, strings.Join(runs, "/"))
		for _, col := range []struct {
			f    func(result) float64
			prec int
		}{{ops, 0}, {p50, 3}, {p99, 3}} {
			for _, impl := range present {
				row += " " + strconv.FormatFloat(median(field(g[k][impl], col.f)), 'f', col.prec, 64) + " |"
			}
		}
		best := math.NaN()
		for _, impl := range present {
			if impl != ours {
				if m := median(field(g[k][impl], ops)); !math.IsNaN(m) && (math.IsNaN(best) || m > best) {
					best = m
				}
			}
		}
		row += fmt.Sprintf(" %.2f× | %.1f–%.1f |", median(field(g[k][ours], ops))/best,
			slices.Min(field(all, load)), slices.Max(field(all, load)))
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs behind each median (ops/s):")
	fmt.Fprintln(w)
	for _, k := range keys {
		for _, impl := range present {
			rs := g[k][impl]
			if len(rs) == 0 {
				continue
			}
			fmt.Fprintf(w, "- %v, %s: %s (p50 %s; p99 %s)\n", k, impl,
				list(field(rs, ops), 0), list(field(rs, p50), 3), list(field(rs, p99), 3))
		}
	}
	samples := map[string][]float64{}
	for _, r := range rs {
		if len(r.FailoverAllMs) > 0 {
			samples[r.Impl] = append(samples[r.Impl], r.FailoverAllMs...)
		}
	}
	if len(samples) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| leader failover | crashes | median ms | min ms | max ms |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
		for _, impl := range present {
			s := samples[impl]
			if len(s) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f |\n", impl, len(s), median(s), slices.Min(s), slices.Max(s))
		}
	}
}

// presentImpls are the implementations that have results, in table order.
func presentImpls(rs []result) []string {
	var out []string
	for _, impl := range impls {
		if slices.ContainsFunc(rs, func(r result) bool { return r.Impl == impl }) {
			out = append(out, impl)
		}
	}
	return out
}

// drawThroughput plots the median throughput of each implementation
// against the number of clients (memory storage), with the range of the
// runs as error bars, on a log₂ axis of clients.
func drawThroughput(rs []result, path string) error {
	g := groupBy(rs)
	p := plot.New()
	p.Title.Text = "Throughput against clients: 3 nodes, TCP on 127.0.0.1, 64-byte writes, memory storage"
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = "concurrent clients"
	p.Y.Label.Text = "writes applied per second (median of runs; bars: min–max)"
	p.X.Scale = plot.LogScale{}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	var clients []int
	for k := range g {
		if !k.durable && k.size == defaultSize && !slices.Contains(clients, k.clients) {
			clients = append(clients, k.clients)
		}
	}
	if len(clients) == 0 {
		return errors.New("no memory-storage results to plot")
	}
	slices.Sort(clients)
	var ticks []plot.Tick
	for _, c := range clients {
		ticks = append(ticks, plot.Tick{Value: float64(c), Label: strconv.Itoa(c)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		ts := plot.DefaultTicks{}.Ticks(min, max)
		for i := range ts {
			if ts[i].Label != "" {
				ts[i].Label = strconv.FormatFloat(ts[i].Value/1000, 'f', -1, 64) + "k"
			}
		}
		return ts
	})

	styles := []struct {
		impl  string
		color color.Color
		shape draw.GlyphDrawer
	}{
		{hashicorp, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, draw.CircleGlyph{}},
		{dragonboat, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, draw.TriangleGlyph{}},
		{ours, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, draw.BoxGlyph{}},
	}
	top := 0.0
	for _, st := range styles {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, c := range clients {
			runs := g[workload{clients: c, size: defaultSize}][st.impl]
			if len(runs) == 0 {
				continue
			}
			ops := field(runs, func(r result) float64 { return r.OpsPerSec })
			m := median(ops)
			pts = append(pts, plotter.XY{X: float64(c), Y: m})
			errs = append(errs, struct{ Low, High float64 }{m - slices.Min(ops), slices.Max(ops) - m})
			top = max(top, slices.Max(ops))
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		line.Color = st.color
		line.Width = vg.Points(1.5)
		points.Color = st.color
		points.Shape = st.shape
		points.Radius = vg.Points(3)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = st.color
		bars.Width = vg.Points(1)
		p.Add(line, points, bars)
		p.Legend.Add(st.impl, line, points)
	}
	// Room above the highest bar for the legend.
	p.Y.Min, p.Y.Max = 0, top*1.15
	return p.Save(9*vg.Inch, 5.5*vg.Inch, path)
}

// implStyles are the colours and glyphs of the implementations.
var implStyles = map[string]color.Color{
	hashicorp:  color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	dragonboat: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	ours:       color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// drawLatency draws, for 16 clients, the median p50, p90 and p99 of each
// implementation as grouped bars: memory on the left, durable on the right
// (each on its own linear scale: they differ tenfold).
func drawLatency(rs []result, path string) error {
	g := groupBy(rs)
	present := presentImpls(rs)
	var panels [][]*plot.Plot
	row := []*plot.Plot{}
	drawn := false
	for _, st := range []struct {
		title string
		w     workload
	}{
		{"memory storage", workload{clients: 16, size: defaultSize}},
		{"durable (fsync): bolt, pebble, DiskStorage", workload{durable: true, clients: 16, size: defaultSize}},
	} {
		p := plot.New()
		p.Title.Text = "16 clients, " + st.title
		p.Title.TextStyle.Font.Size = vg.Points(10)
		p.Y.Label.Text = "write latency, ms (median of runs)"
		p.Legend.Top = true
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
		width := vg.Points(16)
		top := 0.0
		for i, impl := range present {
			runs := g[st.w][impl]
			if len(runs) == 0 {
				continue
			}
			vals := plotter.Values{
				median(field(runs, func(r result) float64 { return r.P50Ms })),
				median(field(runs, func(r result) float64 { return r.P90Ms })),
				median(field(runs, func(r result) float64 { return r.P99Ms })),
			}
			top = max(top, vals[2])
			bars, err := plotter.NewBarChart(vals, width)
			if err != nil {
				return err
			}
			bars.Color = implStyles[impl]
			bars.LineStyle.Width = 0
			bars.Offset = vg.Length(i-1) * width
			p.Add(bars)
			p.Legend.Add(impl, bars)
			drawn = true
		}
		p.NominalX("p50", "p90", "p99")
		p.Y.Min, p.Y.Max = 0, top*1.3
		row = append(row, p)
	}
	if !drawn {
		return errors.New("no 16-client results to draw latency from")
	}
	panels = append(panels, row)
	img := vgimg.New(11*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	canvases := plot.Align(panels, draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}, dc)
	for j, p := range row {
		p.Draw(canvases[0][j])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
