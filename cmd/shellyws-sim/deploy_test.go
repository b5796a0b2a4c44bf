package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// TestDeployJob checks deploy/simulator-job.yaml: an Indexed Job whose
// pods' arguments pass the simulator's own flag parsing, with one shard per
// completion index and a million devices in all.
func TestDeployJob(t *testing.T) {
	data, err := os.ReadFile("../../deploy/simulator-job.yaml")
	require.NoError(t, err)
	var job struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			CompletionMode string `yaml:"completionMode"`
			Completions    int    `yaml:"completions"`
			Parallelism    int    `yaml:"parallelism"`
			Template       struct {
				Spec struct {
					RestartPolicy string `yaml:"restartPolicy"`
					Containers    []struct {
						Args []string `yaml:"args"`
						Env  []struct {
							Name, Value string
						} `yaml:"env"`
						Resources struct {
							Limits map[string]string `yaml:"limits"`
						} `yaml:"resources"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false)
	require.NoError(t, dec.Decode(&job))
	assert.Equal(t, "batch/v1", job.APIVersion)
	assert.Equal(t, "Job", job.Kind)
	assert.Equal(t, "Indexed", job.Spec.CompletionMode, "pods take their shard from JOB_COMPLETION_INDEX")
	assert.Equal(t, job.Spec.Completions, job.Spec.Parallelism, "every shard runs at once")
	require.Len(t, job.Spec.Template.Spec.Containers, 1)
	c := job.Spec.Template.Spec.Containers[0]

	last := strconv.Itoa(job.Spec.Completions - 1)
	saved := envOrEmpty
	envOrEmpty = func(name string) string {
		if name == shardIndexEnv {
			return last
		}
		return ""
	}
	defer func() { envOrEmpty = saved }()
	s, err := parseFlags(c.Args)
	require.NoError(t, err, "the pod's arguments: %q", c.Args)
	assert.Equal(t, job.Spec.Completions, s.shard.count, "-shard COUNT is the number of completions")
	assert.Equal(t, job.Spec.Completions-1, s.shard.index)
	assert.Equal(t, 1_000_000, s.shard.count*s.devices)
	// A cluster gives a pod one address: every device's connection to the
	// one server address needs a local port of it, and the manifest's
	// sysctl opens 1024-65535 (64,512 ports), some of which the pod's
	// other connections use.
	if s.localAddr == "" {
		assert.LessOrEqual(t, s.devices, 60_000, "devices per pod must fit the local ports of one address")
	}
	assert.Contains(t, string(data), `value: "1024 65535"`, "the port range the devices per pod rely on")

	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	limit, ok := c.Resources.Limits["memory"]
	require.True(t, ok, "a memory limit, for GOMEMLIMIT to stay under")
	assert.Less(t, mebibytes(t, env["GOMEMLIMIT"]), mebibytes(t, limit))
}

// mebibytes parses the Kubernetes and Go quantities the manifest uses.
func mebibytes(t *testing.T, q string) int {
	t.Helper()
	for suffix, mult := range map[string]int{"MiB": 1, "Mi": 1, "GiB": 1024, "Gi": 1024} {
		if v, ok := strings.CutSuffix(q, suffix); ok {
			n, err := strconv.Atoi(v)
			require.NoError(t, err, q)
			return n * mult
		}
	}
	t.Fatalf("quantity %q: want Mi, MiB, Gi or GiB", q)
	return 0
}
