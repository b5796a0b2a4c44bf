//go:build unix

package main

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestParseShard(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == shardIndexEnv {
				return v
			}
			return ""
		}
	}
	for _, tc := range []struct {
		value, env string
		want       shard
	}{
		{"0/1", "", shard{0, 1}},
		{"3/10", "7", shard{3, 10}}, // an explicit index wins over the environment
		{"/10", "9", shard{9, 10}},
		{"/10", "0", shard{0, 10}},
	} {
		got, err := parseShard(tc.value, 100, env(tc.env))
		require.NoError(t, err, tc.value)
		assert.Equal(t, tc.want, got, tc.value)
	}
	for _, tc := range []struct{ value, env, msg string }{
		{"3", "", "want INDEX/COUNT"},
		{"3/", "", `COUNT ""`},
		{"3/0", "", `COUNT "0"`},
		{"10/10", "", `INDEX "10" is not a number from 0 to 9`},
		{"-1/10", "", `INDEX "-1"`},
		{"a/10", "", `INDEX "a"`},
		{"/10", "", "$JOB_COMPLETION_INDEX is not set"},
		{"/10", "10", `INDEX "10" (from $JOB_COMPLETION_INDEX)`},
		{"0/100000", "", "more than"},
	} {
		_, err := parseShard(tc.value, 100000, env(tc.env))
		var ue *usageError
		require.ErrorAs(t, err, &ue, tc.value)
		assert.Contains(t, err.Error(), tc.msg, tc.value)
	}

	_, err := parseFlags([]string{"-server", "ws://127.0.0.1:1/", "-shard", "1/2"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "-shard needs -id")
	s, err := parseFlags([]string{"-server", "ws://127.0.0.1:1/", "-id", "shellyplus1pm-000000000010", "-devices", "5", "-shard", "1/2"})
	require.NoError(t, err)
	assert.Equal(t, 5, s.shard.first(s.devices))
}

// fleetIDs runs the simulator with args until n devices have connected to
// srv and returns their ids in the order they connected.
func fleetIDs(t *testing.T, srv *shellywstest.Server, n int, env []string, args ...string) []string {
	t.Helper()
	p := startSimulatorEnv(t, env, args...)
	ids := make([]string, 0, n)
	for range n {
		c := srv.AcceptT(t)
		c.ExpectFullStatusT(t)
		ids = append(ids, c.Src())
	}
	p.stop(t)
	return ids
}

// TestShardsSplitTheFleet runs two shards of -devices N, the second taking
// its index from JOB_COMPLETION_INDEX as a Kubernetes pod does, and one
// process of -devices 2N: the shards' ids are disjoint and together exactly
// the big process's.
func TestShardsSplitTheFleet(t *testing.T) {
	const n = 4
	const base = "shellyplus1pm-aabbccddee00"
	srv := shellywstest.NewServer(t)
	common := []string{"-server", srv.URL(), "-id", base, "-devices"}

	shard0 := fleetIDs(t, srv, n, nil, append(common, "4", "-shard", "0/2")...)
	shard1 := fleetIDs(t, srv, n, []string{shardIndexEnv + "=1"}, append(common, "4", "-shard", "/2")...)
	whole := fleetIDs(t, srv, 2*n, nil, append(common, "8")...)

	for _, ids := range [][]string{shard0, shard1, whole} {
		slices.Sort(ids)
		require.Len(t, slices.Compact(slices.Clone(ids)), len(ids), "ids repeat within a process: %v", ids)
	}
	for _, id := range shard0 {
		assert.NotContains(t, shard1, id, "shards overlap")
	}
	assert.Equal(t, whole, slices.Sorted(slices.Values(append(slices.Clone(shard0), shard1...))))
	// Shard k holds device numbers k*N … k*N+N-1.
	assert.Equal(t, device.DeriveID(base, 0), shard0[0])
	assert.Equal(t, device.DeriveID(base, n-1), shard0[n-1])
	assert.Equal(t, device.DeriveID(base, n), shard1[0])
	assert.Equal(t, device.DeriveID(base, 2*n-1), shard1[n-1])
}

func TestShardFlagExitStatus(t *testing.T) {
	p := startSimulatorEnv(t, nil, "-server", "ws://127.0.0.1:1/", "-id", "shellyplus1pm-aabbccddee00", "-shard", "/4")
	assert.Equal(t, 2, p.exitCode(t, waitTimeout))
	assert.Contains(t, p.out.String(), "$JOB_COMPLETION_INDEX is not set")
}

// startSimulatorEnv is startSimulator with env added to the environment
// (and JOB_COMPLETION_INDEX removed unless env sets it).
func startSimulatorEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(simulatorBinary(t), args...)
	for _, kv := range cmd.Environ() {
		if len(kv) > len(shardIndexEnv) && kv[:len(shardIndexEnv)+1] == shardIndexEnv+"=" {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	return startCmd(t, cmd)
}
