// Package bench holds the performance benchmarks of shellyws; it has no
// API of its own. Each benchmark runs the library next to a bare
// github.com/coder/websocket baseline doing the same work over the same
// loopback, with the server in a child process (the test binary re-executed)
// so that the benchmark process's counters — time, allocations, memory,
// goroutines, CPU — are the device side's alone.
//
// The benchmarks, the commands that run them and the figures they produced
// are in docs/benchmarks.md. The quick start:
//
//	go test ./bench -run '^$' -bench 'RoundTrip|Pipelined|Notify' -count 3
//	go test ./bench -run '^$' -bench 'Fleet|Storm' -benchtime 1x
//	go test ./bench -run '^$' -bench 'Fleet|Storm' -benchtime 1x -args -fleet.n=10000 -storm.out=$PWD/storm.json
//	go run ./bench/cmd/stormchart -in storm.json -out docs/storm.svg
//
// Nothing here runs under a plain go test ./...: every measurement is a
// Benchmark, and the package's only tests are quick checks of its helpers.
package bench
