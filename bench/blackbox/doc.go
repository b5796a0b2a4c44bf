// Package blackbox measures the simulator as its users run it: the
// cmd/shellyws-sim binary as a child process, against a loopback server,
// next to a baseline in the same run: bare github.com/coder/websocket
// clients (the test binary re-executed) that only answer pings and echo
// frames. It has no API of its own. Linux only.
//
// The server pings every connection every -bb.serverping (30 s by default,
// as Fleet Manager and Home Assistant's remote endpoint do; each connection
// from a random phase; 0: a server that never pings). BenchmarkBlackbox
// measures, for the simulator's fleet of -bb.n devices and then the bare
// clients' fleet of as many:
//   - the time until all are connected;
//   - idle CPU (from /proc/<pid>/stat) per 1,000 devices over two idle
//     windows of -bb.idle (65 s: two keepalive rounds), the first with the
//     server pinging, the second with it silent;
//   - steady RSS per device: the larger of the process's RSS after connect
//     and after the first window, less RSS(1) of a one-device process,
//     over N − 1 (from /proc/<pid>/status);
//
// and, for the simulator, the time until all are back after the server
// restarts (dropping every connection without a close frame) with the
// busiest 100 ms share of those handshakes, and round trips of
// Ws.GetStatus through it as a share of the bare echo device's, one at a
// time and 64 in flight. A run of the defaults (1,000 devices) takes about
// five minutes:
//
//	go test ./bench/blackbox -run '^$' -bench Blackbox -benchtime 1x -timeout 30m
//	go test ./bench/blackbox -run '^$' -bench Blackbox -benchtime 1x -timeout 30m -args -bb.n=10000
//	go test ./bench/blackbox -run '^$' -bench Blackbox -benchtime 1x -timeout 30m -args -bb.n=10000 -bb.serverping=0
//
// BenchmarkShards runs a fleet too large for one process (open files are
// capped per process) as a Kubernetes user does: -bb.shards K simulator
// processes, -shard i/K -devices ⌈N/K⌉ -local-addr 127.0.0.0/24 with the
// same -id, each against a server process of its own (the test binary
// re-executed). -bb.n is all devices, 100,000 by default, and K by default
// as few as hold at most 19,000 devices each. It reports the time until
// every device of every shard sent NotifyFullStatus, the simulators' total
// and per-device steady RSS and idle CPU over -bb.idle with the servers
// pinging, the time until all are back after every server restarts at
// once, and the busiest 100 ms of those handshakes across all servers,
// each against the goal; the machine's cores, open-file limit and
// memory head the report. 100,000 devices need about 9 GiB:
//
//	go test ./bench/blackbox -run '^$' -bench Shards -benchtime 1x -timeout 30m -args -bb.n=4000 -bb.shards=2
//	go test ./bench/blackbox -run '^$' -bench Shards -benchtime 1x -timeout 30m -args -bb.n=20000 -bb.shards=2
//	go test ./bench/blackbox -run '^$' -bench Shards -benchtime 1x -timeout 30m
//
// BenchmarkSleeping and BenchmarkChannelsRSS measure sleeping devices and
// the UDP and MQTT channels; see their comments.
//
// Under a plain go test only tests run, in seconds: TestSmoke (the
// Blackbox steps with 5 devices) and TestShardsSmoke (6 devices in 2
// shards), each with servers that ping every 50 ms, check that every step
// completes and the pings are answered, not how fast; TestServerPings
// checks the pinging server, TestSleepingSmoke the sleeping devices' steps.
package blackbox
