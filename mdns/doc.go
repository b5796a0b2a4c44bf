// Package mdns is an mDNS / DNS-SD responder (RFC 6762, RFC 6763) that
// answers for many Shelly Gen2+ devices on one socket, with the records
// real devices send, so Home Assistant, openHAB, matterbridge and the other
// integrations that browse _shelly._tcp and _http._tcp find them.
//
// The entry points:
//
//   - Listen starts a Responder on one named interface (224.0.0.251:5353,
//     joined on that interface only); New starts one on a socket of your
//     own.
//   - Responder.Add announces devices (two unsolicited answers, one second
//     apart), Responder.Remove sends their goodbyes (TTL 0), as a device
//     that stops or falls asleep, and Responder.Close says goodbye for all.
//   - Service is one device's records; HostName and HostPrefix give the
//     host name a real device of that model answers with.
//
// Queries for _shelly._tcp.local., _http._tcp.local. and
// _services._dns-sd._udp.local. are answered with every device's PTR,
// split over as many messages as the link's MTU needs, each device's SRV,
// TXT and A in the additional section; queries for an instance (SRV, TXT)
// or a host (A) with its records. Questions with the unicast-response bit
// (QU) are answered unicast, queries from a port other than 5353 as RFC
// 6762 section 6.7 asks (unicast, the query's id and questions, TTL 10).
// Known answers the querier lists are left out, and a browse is multicast
// at most once a second per type (RFC 6762 section 6).
//
// Why not an existing package: github.com/hashicorp/mdns serves one zone
// per server, each with its own sockets and goroutines, so a simulator of
// 10,000 devices would open 10,000 sockets on port 5353 and answer every
// browse 10,000 times, one device per message. This responder holds a
// fleet in two maps (under 400 bytes per device at 10,000, measured in its
// tests), reads the socket on one goroutine, announces on one more, packs
// each answer as full as the MTU allows (2,000 devices of both types: 400
// messages of 1,472 bytes, or 65 on loopback) and paces long answers (32
// messages, then 2 ms) so receivers keep up. It is written on
// golang.org/x/net/dns/dnsmessage and golang.org/x/net/ipv4.
//
// Not done: probing and conflict resolution (RFC 6762 sections 8.1, 9; a
// fleet's names are unique by construction, and probing 10,000 names
// would cost seconds), IPv6 (real devices answer with A records only),
// negative answers (NSEC).
package mdns
