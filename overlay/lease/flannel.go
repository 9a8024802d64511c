package lease

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// flannel compatibility: the network config keeps flannel's field names,
// so an operator may paste flannel's net-conf.json. ParseFlannelConfig reads
// it with flannel's defaults where they make sense here and refuses what
// cannot apply; docs/flannel.md lists every key.

// flannelKeys are the top-level keys understood (flannel's, in their
// canonical spelling; encoding/json matches them case-insensitively, as
// flannel does). Notes say what a key does here when that is not obvious.
var flannelKeys = map[string]string{
	"EnableIPv6": "", "EnableIPv4": "", "IPv6Network": "", "IPv6SubnetLen": "", "Network": "", "SubnetLen": "",
	"SubnetMin": "", "SubnetMax": "", "IPv6SubnetMin": "", "IPv6SubnetMax": "", "Backend": "",
	"EnableNFTables": "EnableNFTables has no effect: vxlan6d picks its firewall backend itself",
}

// backendKeys are the Backend keys understood; refused ones say why when set.
var backendKeys = map[string]string{
	"Type": "", "VNI": "", "Port": "", "MTU": "", "FastPath": "",
	"GBP":           "Backend.GBP (group-based policy) is not supported",
	"DirectRouting": "Backend.DirectRouting is not supported: vxlan6 always tunnels",
	"Learning":      "Backend.Learning is not supported: vxlan6 programs fdb entries from etcd",
	"MacPrefix":     "Backend.MacPrefix is not supported: the VTEP MAC derives from the VTEP address",
}

// ParsedConfig is a config read with flannel's key set: the config, the
// keys nobody knows (an error for 'config put', a warning for the daemon)
// and notes on flannel defaults applied or keys without effect.
type ParsedConfig struct {
	*Config
	Unknown []string
	Notes   []string
}

// ParseFlannelConfig reads a network config in vxlan6's or flannel's shape:
//   - Network given and EnableIPv4 absent: IPv4 is on (flannel's default);
//     SubnetLen then defaults to 24 as in flannel;
//   - SubnetMin/SubnetMax and IPv6SubnetMin/IPv6SubnetMax bound the subnets
//     handed out (first and last subnet, inclusive);
//   - refused: a Backend.Type other than vxlan (flannel's default udp,
//     host-gw, wireguard...), an IPv4-only network, and the vxlan options
//     vxlan6 does not have (GBP, DirectRouting, Learning, MacPrefix).
func ParseFlannelConfig(data []byte) (*ParsedConfig, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse config JSON: %w", err)
	}
	pc := &ParsedConfig{}
	top = canonical(top, flannelKeys, "", &pc.Unknown, &pc.Notes)
	var backend map[string]json.RawMessage
	if b, ok := top["Backend"]; ok {
		if err := json.Unmarshal(b, &backend); err != nil {
			return nil, fmt.Errorf("Backend: %w", err)
		}
		backend = canonical(backend, backendKeys, "Backend.", &pc.Unknown, nil)
		if err := refuseBackend(backend); err != nil {
			return nil, err
		}
		top["Backend"], _ = json.Marshal(backend)
	} else if _, v4 := top["Network"]; v4 {
		pc.Notes = append(pc.Notes, "no Backend: flannel would use udp, which vxlan6 does not have; vxlan6 uses vxlan")
	}
	if err := applyFlannelDefaults(top, &pc.Notes); err != nil {
		return nil, err
	}
	delete(top, "EnableNFTables")
	plain, _ := json.Marshal(top)
	cfg, err := ParseConfig(plain)
	if err != nil {
		return nil, err
	}
	pc.Config = cfg
	sort.Strings(pc.Unknown)
	return pc, nil
}

// canonical renames m's keys to their canonical spelling (json's
// case-insensitive match) and collects the unknown ones and the notes.
func canonical(m map[string]json.RawMessage, known map[string]string, prefix string, unknown, notes *[]string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for k, v := range m {
		name := ""
		for kk := range known {
			if strings.EqualFold(k, kk) {
				name = kk
			}
		}
		if name == "" {
			*unknown = append(*unknown, prefix+k)
			continue
		}
		if n := known[name]; n != "" && notes != nil {
			*notes = append(*notes, n)
		}
		out[name] = v
	}
	return out
}

func refuseBackend(b map[string]json.RawMessage) error {
	var typ string
	if t, ok := b["Type"]; ok {
		if err := json.Unmarshal(t, &typ); err != nil {
			return fmt.Errorf("Backend.Type: %w", err)
		}
	}
	if typ != "" && !strings.EqualFold(typ, DefaultBackendType) {
		return fmt.Errorf("Backend.Type %q cannot apply: vxlan6 only has the vxlan backend (flannel's udp, its default, host-gw, wireguard, ipip... are not supported)", typ)
	}
	for k, why := range backendKeys {
		v, ok := b[k]
		if why == "" || !ok {
			continue
		}
		s := strings.TrimSpace(string(v))
		if s != "false" && s != `""` && s != "null" && s != "0" {
			return errors.New(why)
		}
		delete(b, k)
	}
	return nil
}

// applyFlannelDefaults turns IPv4 on when Network is given without
// EnableIPv4 (with flannel's SubnetLen 24) and refuses an IPv4-only network.
func applyFlannelDefaults(top map[string]json.RawMessage, notes *[]string) error {
	_, hasV4 := top["Network"]
	if _, has6 := top["IPv6Network"]; !has6 && hasV4 {
		return errors.New("an IPv4-only network (Network without IPv6Network) cannot apply: vxlan6 is IPv6-first; add IPv6Network (e.g. \"fd10:244::/48\")")
	}
	if !hasV4 {
		return nil
	}
	if _, ok := top["EnableIPv4"]; !ok {
		top["EnableIPv4"] = json.RawMessage("true")
		*notes = append(*notes, "Network is given: IPv4 is on (flannel's default EnableIPv4 true)")
	}
	if _, ok := top["SubnetLen"]; !ok && string(top["EnableIPv4"]) == "true" {
		top["SubnetLen"] = json.RawMessage("24")
		*notes = append(*notes, "SubnetLen defaults to 24 (flannel's default)")
	}
	return nil
}

// warnedUnknown keeps the daemon's unknown-key warning to once per key.
var warnedUnknown sync.Map

// parseStoredConfig is how the config in etcd is read (GetConfig): the
// flannel shape is understood, unknown keys are a warning (once), never an
// error, so a newer 'config put' does not stop older daemons.
func parseStoredConfig(key string, data []byte, log *slog.Logger) (*Config, error) {
	pc, err := ParseFlannelConfig(data)
	if err != nil {
		return nil, err
	}
	for _, k := range pc.Unknown {
		if _, seen := warnedUnknown.LoadOrStore(key+" "+k, true); !seen {
			log.Warn("network config has a key vxlan6 does not know; ignoring it", "key", key, "field", k)
		}
	}
	return pc.Config, nil
}
