package mdns_test

import (
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/shellyws/shellyws/mdns"
	"golang.org/x/net/dns/dnsmessage"
)

// A responder on a socket of your own: here both ends are on loopback and
// the "group" is the browser's socket, so the announcement shows.
func Example() {
	browser, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer browser.Close()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	r, err := mdns.New(conn, mdns.WithGroup(browser.LocalAddr().(*net.UDPAddr).AddrPort()))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	err = r.Add(mdns.Service{
		Instance: "shellypro3em-a0dd6ca0c27c", // the device id; the host is ShellyPro3EM-A0DD6CA0C27C
		Port:     80,
		Addrs:    []netip.Addr{netip.MustParseAddr("192.168.68.64")},
		Gen:      2, App: "Pro3EM", Ver: "1.7.5",
	})
	if err != nil {
		log.Fatal(err)
	}

	buf := make([]byte, 9000)
	browser.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := browser.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		log.Fatal(err)
	}
	for _, a := range m.Answers {
		fmt.Println(a.Header.Name, "PTR", a.Body.(*dnsmessage.PTRResource).PTR)
	}
	for _, a := range m.Additionals {
		switch b := a.Body.(type) {
		case *dnsmessage.SRVResource:
			fmt.Println(a.Header.Name, "SRV", b.Target, b.Port)
		case *dnsmessage.TXTResource:
			fmt.Println(a.Header.Name, "TXT", b.TXT)
		case *dnsmessage.AResource:
			fmt.Println(a.Header.Name, "A", netip.AddrFrom4(b.A))
		}
	}
	// Output:
	// _services._dns-sd._udp.local. PTR _shelly._tcp.local.
	// _services._dns-sd._udp.local. PTR _http._tcp.local.
	// _shelly._tcp.local. PTR shellypro3em-a0dd6ca0c27c._shelly._tcp.local.
	// _http._tcp.local. PTR shellypro3em-a0dd6ca0c27c._http._tcp.local.
	// shellypro3em-a0dd6ca0c27c._shelly._tcp.local. SRV ShellyPro3EM-A0DD6CA0C27C.local. 80
	// shellypro3em-a0dd6ca0c27c._http._tcp.local. SRV ShellyPro3EM-A0DD6CA0C27C.local. 80
	// shellypro3em-a0dd6ca0c27c._shelly._tcp.local. TXT [gen=2 app=Pro3EM ver=1.7.5]
	// shellypro3em-a0dd6ca0c27c._http._tcp.local. TXT [gen=2]
	// ShellyPro3EM-A0DD6CA0C27C.local. A 192.168.68.64
}

// Discovery for a fleet on one named interface: one socket, every device
// added to it with its web server's port; goodbyes on Close.
func ExampleListen() {
	r, err := mdns.Listen("lo") // an error names the interface: down, multicast off, no IPv4 address
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	for i, id := range []string{"shellyplus1pm-c049ef8cf4e0", "shellyplus1pm-c049ef8cf4e1"} {
		// Addrs empty: the interface's IPv4 addresses.
		err := r.Add(mdns.Service{Instance: id, Port: 8000 + i, Gen: 2, App: "Plus1PM", Ver: "1.7.5"})
		if err != nil {
			log.Fatal(err)
		}
	}
	// A sleeping device leaves the network, then comes back.
	r.Remove("shellyplus1pm-c049ef8cf4e1")
}
