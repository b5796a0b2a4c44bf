package device_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/device"
	"github.com/shellyws/shellyws/device/profile"
)

// deviceInfo calls Shelly.GetDeviceInfo on d directly.
func deviceInfo(t *testing.T, d *device.Device) device.DeviceInfo {
	t.Helper()
	res, err := d.Dispatch(context.Background(), &shellyws.Request{Method: "Shelly.GetDeviceInfo"})
	require.NoError(t, err)
	raw, err := json.Marshal(res)
	require.NoError(t, err)
	var info device.DeviceInfo
	require.NoError(t, json.Unmarshal(raw, &info))
	return info
}

// TestOneIdentityEveryProfile: for every built-in model, a device's src
// (the component id), its Shelly.GetDeviceInfo id, its auth realm and its
// MAC are one id; an id of another model is refused.
func TestOneIdentityEveryProfile(t *testing.T) {
	for _, name := range profile.Names() {
		p, err := profile.Builtin(name)
		require.NoError(t, err)
		id := p.ID("0a1b2c3d4e5f")
		d, err := device.New(device.Options{Model: p, ID: id, Extra: []shellyws.Option{
			shellyws.WithAuthStore(shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(id, "pw"))),
		}})
		require.NoError(t, err, name)
		assert.Equal(t, id, d.ID(), name)
		assert.Equal(t, id, d.Component().ID(), "%s: src", name)
		info := deviceInfo(t, d)
		assert.Equal(t, id, info.ID, "%s: Shelly.GetDeviceInfo id", name)
		assert.Equal(t, "0A1B2C3D4E5F", info.MAC, name)
		assert.Equal(t, "0A1B2C3D4E5F", d.MAC(), name)
		require.NotNil(t, info.AuthDomain, name)
		assert.Equal(t, id, *info.AuthDomain, "%s: realm", name)

		other := "shellynotthis-0a1b2c3d4e5f"
		if p.IDPrefix != "shellyplus1pm" {
			other = "shellyplus1pm-0a1b2c3d4e5f"
		}
		_, err = device.New(device.Options{Model: p, ID: other})
		require.Error(t, err, "%s with id %s", name, other)
		assert.Contains(t, err.Error(), "does not fit model "+name, name)
	}
}

// TestNewIDPicksProfile: profile.New with the profile ForID picks, the
// first built-in profile with the id's prefix; an id no model has is
// refused, naming the prefixes there are; a model refuses an id not its
// own.
func TestNewIDPicksProfile(t *testing.T) {
	byID := func(id string) (*device.Device, error) {
		m, err := profile.ForID(id)
		if err != nil {
			return nil, err
		}
		return device.New(device.Options{Model: m, ID: id})
	}
	d, err := byID("shellypro4pm-f008d1d8b8b8")
	require.NoError(t, err)
	assert.Equal(t, "pro4pm-gen2", d.Model().Name, "before pro4pmv2-gen2 in -profile help's order")
	info := deviceInfo(t, d)
	assert.Equal(t, "shellypro4pm-f008d1d8b8b8", info.ID)
	assert.Equal(t, "SPSW-004PE16EU", info.Model)

	d, err = byID("ShellyWallDisplay-F008D1D8B8B8")
	require.NoError(t, err)
	assert.Equal(t, "walldisplay-gen2", d.Model().Name)
	assert.Equal(t, "ShellyWallDisplay-F008D1D8B8B8", deviceInfo(t, d).ID)

	d, err = byID(testID)
	require.NoError(t, err)
	assert.Equal(t, profile.Default, d.Model().Name)

	_, err = byID("shellynosuch-f008d1d8b8b8")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no profile has ids shellynosuch-")
	assert.Contains(t, err.Error(), "shellypro4pm, ")

	wd, err := profile.Builtin("walldisplay-gen2")
	require.NoError(t, err)
	_, err = device.New(device.Options{Model: wd, ID: "ShellyWallDisplay-f008d1d8b8b8"})
	require.Error(t, err, "the Wall Display writes its MAC in upper case")
	assert.Contains(t, err.Error(), "ShellyWallDisplay-F008D1D8B8B8")
	_, err = device.New(withModel(device.Options{ID: "shellyplus1pm-F008D1D8B8B8"}))
	require.Error(t, err, "a Plus 1PM writes its MAC in lower case")
	assert.Contains(t, err.Error(), "lowercase")
}
