package mdns

import "strings"

// hostPrefixes maps a device id's prefix (lower case) to the host-name
// prefix real devices answer with: shellypro3em-a0dd6ca0c27c is on host
// ShellyPro3EM-A0DD6CA0C27C.local. Built from the 103 recorded answer
// packets of Luligu/matterbridge-shelly, src/mock/*.mdns.json (snapshot
// bba3c45): for each Gen2+ packet (TXT gen=), the SRV target of each
// instance named <prefix>-<12 hex digits>; 59 prefixes.
var hostPrefixes = map[string]string{
	"shelly0110dimg3":   "Shelly0110DimG3",
	"shelly1g3":         "Shelly1G3",
	"shelly1g4":         "Shelly1G4",
	"shelly1mini":       "Shelly1Mini",
	"shelly1minig3":     "Shelly1MiniG3",
	"shelly1minig4":     "Shelly1MiniG4",
	"shelly1pmg3":       "Shelly1PMG3",
	"shelly1pmg4":       "Shelly1PMG4",
	"shelly1pmmini":     "Shelly1PMMini",
	"shelly1pmminig3":   "Shelly1PMMiniG3",
	"shelly1pmminig4":   "Shelly1PMMiniG4",
	"shelly2lg3":        "Shelly2LG3",
	"shelly2pmg3":       "Shelly2PMG3",
	"shelly2pmg4":       "Shelly2PMG4",
	"shelly3em63g3":     "Shelly3EM63G3",
	"shellyazplug":      "ShellyAZPlug",
	"shellybludongle":   "ShellyBluDongle",
	"shellyblugw":       "ShellyBluGw",
	"shellyblugwg3":     "ShellyBluGwG3",
	"shellyddimmerg3":   "ShellyDDimmerG3",
	"shellyemg3":        "ShellyEMG3",
	"shellyemminig4":    "ShellyEMMiniG4",
	"shellyfloodg4":     "ShellyFloodG4",
	"shellyhtg3":        "ShellyHTG3",
	"shellyi4g3":        "ShellyI4G3",
	"shellyi4g4":        "ShellyI4G4",
	"shellyoutdoorsg3":  "ShellyOutdoorSG3",
	"shellyplugsg3":     "ShellyPlugSG3",
	"shellyplugusg4":    "ShellyPlugUSG4",
	"shellyplus010v":    "ShellyPlus010V",
	"shellyplus1":       "ShellyPlus1",
	"shellyplus1pm":     "ShellyPlus1PM",
	"shellyplus2pm":     "ShellyPlus2PM",
	"shellyplusht":      "ShellyPlusHT",
	"shellyplusi4":      "ShellyPlusI4",
	"shellyplusplugit":  "ShellyPlusPlugIT",
	"shellyplusplugs":   "ShellyPlusPlugS",
	"shellypluspluguk":  "ShellyPlusPlugUK",
	"shellyplusrgbwpm":  "ShellyPlusRGBWPM",
	"shellyplussmoke":   "ShellyPlusSmoke",
	"shellyplusuni":     "ShellyPlusUni",
	"shellypluswdus":    "ShellyPlusWDUS",
	"shellypmminig3":    "ShellyPMMiniG3",
	"shellypro0110pm":   "ShellyPro0110PM",
	"shellypro1pm":      "ShellyPro1PM",
	"shellypro2cb":      "ShellyPro2CB",
	"shellypro2cover":   "ShellyPro2Cover",
	"shellypro2pm":      "ShellyPro2PM",
	"shellypro3":        "ShellyPro3",
	"shellypro3cb":      "ShellyPro3CB",
	"shellypro3em":      "ShellyPro3EM",
	"shellypro4pm":      "ShellyPro4PM",
	"shellyprodm1pm":    "ShellyProDM1PM",
	"shellyprodm2pm":    "ShellyProDM2PM",
	"shellyproem50":     "ShellyProEM50",
	"shellyprorgbwwpm":  "ShellyProRGBWWPM",
	"shellypstripg4":    "ShellyPStripG4",
	"shellyshutter":     "ShellyShutter",
	"shellywalldisplay": "ShellyWallDisplay",
}

// HostPrefix returns the host-name prefix a real device of this id prefix
// answers with ("shellyplus1pm" gives "ShellyPlus1PM"), matched
// case-insensitively; a prefix no recorded device had is returned as given.
func HostPrefix(idPrefix string) string {
	if p, ok := hostPrefixes[strings.ToLower(idPrefix)]; ok {
		return p
	}
	return idPrefix
}

// HostName returns the host label (without ".local") a real device with
// this id answers with: HostPrefix of the part before the last '-', then
// '-' and the rest in upper case. "shellypro3em-a0dd6ca0c27c" gives
// "ShellyPro3EM-A0DD6CA0C27C"; an id without '-' is returned as given.
func HostName(id string) string {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return id
	}
	return HostPrefix(id[:i]) + "-" + strings.ToUpper(id[i+1:])
}
