// Package blackbox measures the simulator as its users run it: the
// cmd/shellyws-sim binary as a child process, against a loopback server
// held by the benchmark process, next to a bare github.com/coder/websocket
// echo device (the test binary re-executed) in the same run. It has no API
// of its own.
//
// It measures the simulator process's resident memory per device
// ((RSS(N) − RSS(1)) / (N − 1), from /proc/<pid>/status), the time until
// all N devices are connected, the time until all are back after the server
// restarts and the busiest 100 ms share of those handshakes, the idle CPU of
// the process (from /proc/<pid>/stat), and round trips of Ws.GetStatus
// through the simulator as a share of the bare echo device's, one at a time
// and 64 in flight. Linux only.
//
//	go test ./bench/blackbox -run '^$' -bench Blackbox -benchtime 1x
//	go test ./bench/blackbox -run '^$' -bench Blackbox -benchtime 1x -timeout 30m -args -bb.n=10000
//
// Under a plain go test only TestSmoke runs: the same steps with 5 devices,
// checking that every step completes, not how fast.
package blackbox
