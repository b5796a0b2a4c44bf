// Package stormdata is the record BenchmarkStorm writes with -storm.out and
// the stormchart command reads, defined once for both.
package stormdata

// Run is one storm: handshake attempts per bin after the server crashed.
type Run struct {
	Name    string  `json:"name"`
	Jitter  float64 `json:"randomization_factor"`
	N       int     `json:"devices"`
	DownMS  float64 `json:"down_ms"`
	BinMS   float64 `json:"bin_ms"`
	Bins    []int   `json:"attempts_per_bin"`
	BackS   float64 `json:"back_s"`
	MaxPct  float64 `json:"max_window_pct_of_devices"`
	Refused int     `json:"refused"`
}
