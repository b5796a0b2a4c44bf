package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv, when set in the environment, turns the test binary into the
// benchmark server (see child_test.go) instead of running benchmarks.
const childEnv = "SHELLYWS_BENCH_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(serveChild())
	}
	goleak.VerifyTestMain(stopChildAfter{m})
}

// stopChildAfter stops the server child once the benchmarks are done, before
// goleak looks for leaked goroutines.
type stopChildAfter struct{ m *testing.M }

func (s stopChildAfter) Run() int {
	code := s.m.Run()
	stopChild()
	return code
}
