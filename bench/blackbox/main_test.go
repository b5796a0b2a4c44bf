//go:build linux

package blackbox

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv, when set, turns the test binary into a child instead of
// running tests: "bare", the bare echo device (bare_test.go), or "server",
// a shard's server (serverproc_test.go).
const childEnv = "SHELLYWS_BLACKBOX_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		goleak.VerifyTestMain(m)
	case "server":
		os.Exit(runServerChild())
	default:
		os.Exit(runBare())
	}
}
