// Command mktemplates writes device/templates.json: the shapes NewModel
// builds a device from, taken from real devices' answers in
// device/profile/dumps (number literals and key order as the devices sent
// them, every MAC replaced by AABBCCDDEEFF). Run it with go generate in
// device/ after the dumps change.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/shellyws/shellyws/internal/jsonv"
)

// placeholderMAC is the MAC every template is written with.
const placeholderMAC = "AABBCCDDEEFF"

// source is one template: a component of one dump.
type source struct {
	name, dump, key string
}

var sources = []source{
	{"sys", "pro2pm-gen2", "sys"},
	{"wifi", "pro2pm-gen2", "wifi"},
	{"cloud", "pro2pm-gen2", "cloud"},
	{"mqtt", "pro2pm-gen2", "mqtt"},
	{"ble", "pro2pm-gen2", "ble"},
	{"switch", "pro2pm-gen2", "switch:0"},
	{"switch/plain", "plus1-gen2", "switch:0"},
	{"input", "pro2pm-gen2", "input:0"},
	{"cover", "pro2pm-gen2-cover", "cover:0"},
	{"light", "prodimmer1pm-gen2", "light:0"},
	{"rgb", "plusrgbwpm-gen2-rgb", "rgb:0"},
	{"cct", "duobulb-gen3", "cct:0"},
	{"temperature", "plusht-gen2", "temperature:0"},
	{"humidity", "plusht-gen2", "humidity:0"},
	{"devicepower", "plusht-gen2", "devicepower:0"},
	{"em", "pro3em-gen2", "em:0"},
	{"emdata", "pro3em-gen2", "emdata:0"},
	{"em1", "proem50-gen2", "em1:0"},
	{"em1data", "proem50-gen2", "em1data:0"},
}

func main() {
	dir := filepath.Join("profile", "dumps")
	var out bytes.Buffer
	out.WriteString("{\n\"note\":\"Written by internal/mktemplates from device/profile/dumps (see its README for sources and licenses); every MAC is AABBCCDDEEFF.\",\n")
	info, _, err := load(dir, "pro2pm-gen2")
	if err != nil {
		log.Fatal(err)
	}
	out.WriteString("\"info\":")
	b, err := jsonv.AppendJSON(nil, info.info, info.mac, placeholderMAC, nil)
	if err != nil {
		log.Fatal(err)
	}
	out.Write(b)
	out.WriteString(",\n\"components\":{")
	for i, s := range sources {
		d, ok, err := load(dir, s.dump)
		if err != nil || !ok {
			log.Fatalf("%s: %v", s.dump, err)
		}
		if i > 0 {
			out.WriteString(",")
		}
		fmt.Fprintf(&out, "\n%q:{\"source\":%q,", s.name, s.dump+".json "+s.key)
		for j, part := range []struct {
			name string
			obj  *jsonv.Object
		}{{"config", d.config}, {"status", d.status}} {
			v, ok := part.obj.Get(s.key)
			if !ok {
				v = &jsonv.Object{}
			}
			if part.name == "status" {
				v = fresh(v)
			}
			if j > 0 {
				out.WriteString(",")
			}
			fmt.Fprintf(&out, "%q:", part.name)
			b, err := jsonv.AppendJSON(nil, v, d.mac, placeholderMAC, nil)
			if err != nil {
				log.Fatal(err)
			}
			out.Write(b)
		}
		out.WriteString("}")
	}
	out.WriteString("\n}}\n")
	if err := os.WriteFile("templates.json", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// fresh turns a captured status into a new device's: outputs off, sources
// "init", energy counters at zero; readings and shapes stay as captured.
func fresh(v jsonv.Value) jsonv.Value {
	o, ok := v.(*jsonv.Object)
	if !ok {
		return v
	}
	for i, k := range o.Keys {
		switch k {
		case "output":
			o.Vals[i] = false
		case "source":
			o.Vals[i] = "init"
		case "apower", "current", "pf":
			o.Vals[i] = zero(o.Vals[i])
		case "aenergy", "ret_aenergy":
			e := o.Vals[i].(*jsonv.Object)
			for j, ek := range e.Keys {
				switch ek {
				case "total":
					e.Vals[j] = zero(e.Vals[j])
				case "by_minute":
					arr := e.Vals[j].([]jsonv.Value)
					for n := range arr {
						arr[n] = zero(arr[n])
					}
				case "minute_ts":
					e.Vals[j] = json.Number("0")
				}
			}
		}
	}
	return o
}

// zero is 0 written as the literal n was: 0.0 for 3.5, 0 for 3.
func zero(n jsonv.Value) jsonv.Value {
	if s, ok := n.(json.Number); ok && strings.Contains(string(s), ".") {
		return json.Number("0.0")
	}
	return json.Number("0")
}

type dump struct {
	mac                  string
	info, config, status *jsonv.Object
}

var cache = map[string]*dump{}

func load(dir, name string) (*dump, bool, error) {
	if d, ok := cache[name]; ok {
		return d, true, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return nil, false, err
	}
	v, err := jsonv.Parse(data)
	if err != nil {
		return nil, false, err
	}
	top := v.(*jsonv.Object)
	d := &dump{info: top.Object("Shelly.GetDeviceInfo"), config: top.Object("Shelly.GetConfig"), status: top.Object("Shelly.GetStatus")}
	d.mac, _ = d.info.String("mac")
	for _, o := range []*jsonv.Object{d.info, d.config, d.status} {
		jsonv.TemplateMAC(o, d.mac)
	}
	cache[name] = d
	return d, true, nil
}
