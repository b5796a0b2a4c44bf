package device

// sleeping reports whether the device is a sleeping (battery) device.
func (d *Device) sleeping() bool { return false }

// rebootSleeping ends a sleeping device's wake for a reboot.
func (d *Device) rebootSleeping() {}
