package shellywstest_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

func TestServerConfig(t *testing.T) {
	srv := shellywstest.NewServer(t)
	cfg := srv.Config()
	require.NoError(t, cfg.Validate())
	assert.True(t, cfg.Enable)
	require.NotNil(t, cfg.Server)
	assert.Equal(t, srv.URL(), *cfg.Server)
	assert.Equal(t, shellyws.DefaultConfig().SSLCA, cfg.SSLCA)

	other := srv.Config()
	*other.Server = "ws://changed"
	assert.Equal(t, srv.URL(), *cfg.Server, "each config is a fresh value")

	// A device with it connects.
	dev, err := shellyws.New(devID, shellywstest.FastBackoff(),
		shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
	require.NoError(t, err)
	shellywstest.RunComponent(t, dev)
	srv.AcceptT(t).ExpectFullStatusT(t)
}
