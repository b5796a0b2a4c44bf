package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPasswordFileFlag: -password-file takes the file's first line without
// its line ending; an empty or unreadable file, or both password flags,
// is a usage error that does not show the file's contents.
func TestPasswordFileFlag(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
		return p
	}
	for _, tc := range []struct{ data, want string }{
		{"pw-LEAK-pw\n", "pw-LEAK-pw"},
		{"pw-LEAK-pw\r\n", "pw-LEAK-pw"},
		{"pw-LEAK-pw", "pw-LEAK-pw"},
		{"with space \nsecond line\n", "with space "},
	} {
		s, err := parseFlags([]string{"-server", "ws://h/", "-password-file", write("pw", tc.data)})
		require.NoError(t, err, "%q", tc.data)
		assert.True(t, s.passwordSet)
		assert.Equal(t, tc.want, s.password, "%q", tc.data)
	}
	s, err := parseFlags([]string{"-password-file", write("demo", "pw-LEAK-pw\n")})
	require.NoError(t, err)
	assert.True(t, s.demo(), "the demo takes it like -password")
	assert.Equal(t, "pw-LEAK-pw", s.password)

	for name, args := range map[string][]string{
		"empty":       {"-server", "ws://h/", "-password-file", write("empty", "")},
		"empty line":  {"-server", "ws://h/", "-password-file", write("nl", "\nsecond-LEAK\n")},
		"missing":     {"-server", "ws://h/", "-password-file", filepath.Join(dir, "nope")},
		"a directory": {"-server", "ws://h/", "-password-file", dir},
		"both":        {"-server", "ws://h/", "-password", "x-LEAK", "-password-file", write("both", "pw-LEAK-pw\n")},
	} {
		_, err := parseFlags(args)
		var ue *usageError
		require.ErrorAs(t, err, &ue, name)
		assert.Contains(t, err.Error(), "-password", name)
		assert.NotContains(t, err.Error(), "LEAK", name)
	}
}

// TestHelpSaysWhyPasswordFileIsSafer: -h names -password-file and why.
func TestHelpSaysWhyPasswordFileIsSafer(t *testing.T) {
	var out bytes.Buffer
	require.Equal(t, 0, run([]string{"-h"}, &out, io.Discard))
	assert.Contains(t, out.String(), "-password-file FILE")
	assert.Contains(t, out.String(), "ps")
	assert.Contains(t, out.String(), "token=T", "the usage text is printed as written")
}
