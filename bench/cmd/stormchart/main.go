// Command stormchart draws the reconnect storm of the bench package as an
// SVG: handshake attempts per 100 ms after the server's crash, one panel per
// run (jittered backoff beside jitter off), on the same axes.
//
// Usage:
//
//	go test ./bench -run '^$' -bench Storm -benchtime 1x -args -fleet.n=10000 -storm.out=$PWD/storm.json
//	go run ./bench/cmd/stormchart -in storm.json -out docs/storm.svg
//
// The input is the JSON array BenchmarkStorm writes with -storm.out.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"strings"

	"github.com/shellyws/shellyws/bench/stormdata"
)

func main() {
	in := flag.String("in", "storm.json", "the -storm.out file of BenchmarkStorm")
	out := flag.String("out", "storm.svg", "the SVG to write")
	flag.Parse()
	data, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var runs []stormdata.Run
	if err := json.Unmarshal(data, &runs); err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	if len(runs) == 0 {
		log.Fatalf("%s holds no runs", *in)
	}
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	if err := draw(f, runs); err != nil {
		f.Close()
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}

// Layout, in SVG units.
const (
	panelW  = 520
	panelH  = 300
	marginL = 60
	marginR = 20
	marginT = 70
	marginB = 80
	gap     = 40
)

func draw(w io.Writer, runs []stormdata.Run) error {
	// Shared axes: the longest run and the highest bin, in % of devices.
	maxBins, maxPct := 0, 0.0
	for _, r := range runs {
		maxBins = max(maxBins, len(r.Bins))
		for _, c := range r.Bins {
			maxPct = max(maxPct, pct(c, r.N))
		}
	}
	binMS := runs[0].BinMS
	spanS := float64(maxBins) * binMS / 1000
	xTick := niceStep(spanS, 8)
	spanS = math.Ceil(spanS/xTick) * xTick
	yTick := niceStep(maxPct, 5)
	yMax := math.Max(yTick, math.Ceil(maxPct/yTick)*yTick)

	width := marginL + len(runs)*panelW + (len(runs)-1)*gap + marginR
	height := marginT + panelH + marginB
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16" font-weight="bold">Handshake attempts per %g ms after a server crash, %d devices</text>`+"\n", marginL, binMS, runs[0].N)
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">Server down (answering 503) for %g s, shaded; bars: attempts in each %g ms bin as %% of the devices.</text>`+"\n", marginL, runs[0].DownMS/1000, binMS)
	for i, r := range runs {
		x0 := float64(marginL + i*(panelW+gap))
		y0 := float64(marginT)
		panel(&b, r, x0, y0, spanS, xTick, yMax, yTick)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func panel(b *strings.Builder, r stormdata.Run, x0, y0, spanS, xTick, yMax, yTick float64) {
	px := func(s float64) float64 { return x0 + s/spanS*panelW }
	py := func(p float64) float64 { return y0 + panelH - p/yMax*panelH }
	title := fmt.Sprintf("%s (randomization factor %g)", r.Name, r.Jitter)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, y0-10, esc(title))
	// Downtime.
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="#f3e0e0"/>`+"\n", px(0), y0, px(r.DownMS/1000)-px(0), panelH)
	// Grid and y labels.
	for p := 0.0; p <= yMax+1e-9; p += yTick {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", px(0), py(p), px(spanS), py(p))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%g%%</text>`+"\n", x0-6, py(p)+4, p)
	}
	for s := 0.0; s <= spanS+1e-9; s += xTick {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", px(s), y0+panelH, px(s), y0+panelH+5)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", px(s), y0+panelH+18, s)
	}
	// Bars.
	bw := r.BinMS / 1000 / spanS * panelW
	for i, c := range r.Bins {
		if c == 0 {
			continue
		}
		p := pct(c, r.N)
		fmt.Fprintf(b, `<rect x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#3b6fb6"><title>%.1f–%.1f s: %d attempts (%.1f%%)</title></rect>`+"\n",
			px(float64(i)*r.BinMS/1000), py(p), math.Max(bw-0.5, 0.5), py(0)-py(p),
			float64(i)*r.BinMS/1000, float64(i+1)*r.BinMS/1000, c, p)
	}
	// Axes.
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", px(0), y0, px(0), y0+panelH)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", px(0), y0+panelH, px(spanS), y0+panelH)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">seconds since the crash</text>`+"\n", x0+panelW/2, y0+panelH+38)
	// Key figures.
	total := 0
	for _, c := range r.Bins {
		total += c
	}
	note := fmt.Sprintf("busiest 100 ms: %.1f%% of devices · all back in %.1f s · %.2f attempts/device", r.MaxPct, r.BackS, float64(total)/float64(r.N))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#333">%s</text>`+"\n", x0+panelW/2, y0+panelH+58, esc(note))
}

func pct(c, n int) float64 {
	if n == 0 {
		return 0
	}
	return 100 * float64(c) / float64(n)
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that cuts span
// into at most about n pieces.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
