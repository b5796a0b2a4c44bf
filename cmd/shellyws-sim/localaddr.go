package main

import (
	"context"
	"math/big"
	"net"
	"net/netip"
	"time"
)

// localAddrs are the source addresses of -local-addr CIDR. Device i of the
// process dials from host address i mod hosts: for 127.0.0.0/24 that is
// 127.0.0.1 … 127.0.0.254 (device 0 from .1, device 253 from .254, device
// 254 from .1 again). The network and broadcast addresses are skipped in
// IPv4 prefixes up to /30; a /31 uses both addresses and a /32 its one. In
// IPv6 only the all-zeros (subnet-router anycast) address is skipped.
type localAddrs struct {
	first netip.Addr // the first host address
	hosts uint64     // how many, capped at maxLocalHosts
}

// maxLocalHosts caps the host count of a large prefix: more source
// addresses than devices are never used.
const maxLocalHosts = maxDevices

// parseLocalAddr parses and checks -local-addr.
func parseLocalAddr(cidr string) (*localAddrs, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, usageErr("-local-addr %q: want an address prefix in CIDR notation, e.g. 127.0.0.0/24", cidr)
	}
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	first := p.Addr()
	var hosts uint64
	switch {
	case hostBits == 0:
		hosts = 1
	case p.Addr().Is4() && hostBits == 1:
		hosts = 2
	case p.Addr().Is4():
		hosts = 1<<hostBits - 2 // no network or broadcast address
		first = first.Next()
	default:
		hosts = maxLocalHosts
		if hostBits < 20 {
			hosts = 1<<hostBits - 1
		}
		first = first.Next()
	}
	hosts = min(hosts, maxLocalHosts)
	return &localAddrs{first: first, hosts: hosts}, nil
}

// addr is the source address of device i.
func (l *localAddrs) addr(i int) netip.Addr {
	n := new(big.Int).SetBytes(l.first.AsSlice())
	n.Add(n, new(big.Int).SetUint64(uint64(i)%l.hosts))
	b := n.FillBytes(make([]byte, l.first.BitLen()/8))
	a, _ := netip.AddrFromSlice(b)
	return a
}

// last is the last address devices devices use.
func (l *localAddrs) last(devices int) netip.Addr {
	return l.addr(int(min(uint64(devices), l.hosts)) - 1)
}

// checkBindable fails unless the first and last address devices would use
// belong to this machine: a dial from any other fails with "cannot assign
// requested address", better said once at start than at every retry.
func (l *localAddrs) checkBindable(cidr string, devices int) error {
	for _, a := range []netip.Addr{l.first, l.last(devices)} {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(a, 0).String())
		if err != nil {
			return usageErr("-local-addr %s: address %s is not on this machine: %v", cidr, a, err)
		}
		_ = ln.Close()
	}
	return nil
}

// dialFunc is the signature of shellyws.WithDialContext.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// dialers returns the dial function of each device 0 … devices-1: a
// net.Dialer bound to the device's source address and an ephemeral port,
// otherwise what the library's default dial does. Devices sharing an
// address share a dialer, so a large fleet holds at most hosts of them.
func (l *localAddrs) dialers(devices int) func(i int) dialFunc {
	n := int(min(uint64(devices), l.hosts))
	fs := make([]dialFunc, n)
	for i := range fs {
		d := &net.Dialer{
			LocalAddr: &net.TCPAddr{IP: l.addr(i).AsSlice()},
			KeepAlive: 30 * time.Second,
		}
		fs[i] = d.DialContext
	}
	return func(i int) dialFunc { return fs[i%n] }
}
