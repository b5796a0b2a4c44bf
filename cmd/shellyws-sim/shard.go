package main

import (
	"os"
	"strconv"
	"strings"
)

// shardIndexEnv is where -shard /COUNT takes its index from: a Kubernetes
// Indexed Job sets it to the pod's completion index.
const shardIndexEnv = "JOB_COMPLETION_INDEX"

// shard is one process's part of a fleet split over COUNT processes. With
// -devices N per process, shard k runs device numbers k*N … k*N+N-1: the
// ranges are disjoint, and shards 0 … COUNT-1 together are exactly one
// process with -devices COUNT*N.
type shard struct {
	index, count int
}

// first is the device number of the shard's first device.
func (s shard) first(devices int) int { return s.index * devices }

// parseShard parses -shard INDEX/COUNT; an empty INDEX ("/10") is read from
// JOB_COMPLETION_INDEX via getenv.
func parseShard(value string, devices int, getenv func(string) string) (shard, error) {
	idx, cnt, ok := strings.Cut(value, "/")
	if !ok {
		return shard{}, usageErr("-shard %q: want INDEX/COUNT, e.g. 3/10, or /COUNT to take INDEX from $%s", value, shardIndexEnv)
	}
	count, err := strconv.Atoi(cnt)
	if err != nil || count < 1 {
		return shard{}, usageErr("-shard %q: COUNT %q is not a number from 1 up", value, cnt)
	}
	from := ""
	if idx == "" {
		idx = getenv(shardIndexEnv)
		if idx == "" {
			return shard{}, usageErr("-shard %q: no INDEX given and $%s is not set", value, shardIndexEnv)
		}
		from = " (from $" + shardIndexEnv + ")"
	}
	index, err := strconv.Atoi(idx)
	if err != nil || index < 0 || index >= count {
		return shard{}, usageErr("-shard %q: INDEX %q%s is not a number from 0 to %d", value, idx, from, count-1)
	}
	// Device numbers are added to the MAC of -id; keep them well inside the
	// 48 bits so that no two shards ever wrap onto each other.
	if int64(count)*int64(devices) > maxFleet {
		return shard{}, usageErr("-shard %q with -devices %d: %d devices in all, more than %d", value, devices, int64(count)*int64(devices), int64(maxFleet))
	}
	return shard{index: index, count: count}, nil
}

// maxFleet bounds the devices of all shards together.
const maxFleet = 1 << 32

// envOrEmpty is os.Getenv; a variable so tests can replace it.
var envOrEmpty = os.Getenv
