package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Status is what the daemon tells `vxlan6d status` about itself, in a small
// JSON file beside the subnet file (StatusPath): how the VTEP was chosen is
// known only to the daemon (flags, annotation, autodetection), and status
// must work with the metrics endpoint off.
type Status struct {
	Node           string    `json:"node"`
	VTEP           string    `json:"vtep"`
	Local          string    `json:"local"`
	Interface      string    `json:"interface"`
	Source         string    `json:"source"`
	OperatorChosen bool      `json:"operatorChosen"`
	Device         string    `json:"device"`
	SubnetV6       string    `json:"subnetV6"`
	SubnetV4       string    `json:"subnetV4,omitempty"`
	Reserved       bool      `json:"reserved"`
	EtcdPrefix     string    `json:"etcdPrefix"`
	PID            int       `json:"pid"`
	Version        string    `json:"version"`
	Written        time.Time `json:"written"`
}

// StatusPath is the status file of the daemon writing subnetFile.
func StatusPath(subnetFile string) string {
	return filepath.Join(filepath.Dir(subnetFile), "vxlan6d.status.json")
}

// ReadStatus reads a status file.
func ReadStatus(path string) (*Status, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &s, nil
}

// writeStatusFile records the current choice; a failure is only logged:
// nothing but `vxlan6d status` reads it.
func (d *daemon) writeStatusFile() {
	if d.vtep == nil || d.vtep.cur == nil || d.ka == nil || d.ka.lease == nil {
		return
	}
	c, l := d.vtep.cur, d.ka.lease
	s := Status{Node: d.o.NodeName, VTEP: ipStr(c.Public), Local: ipStr(c.Local), Interface: c.IfName, Source: c.Source,
		OperatorChosen: c.OperatorChosen, SubnetV6: netStr(l.Subnets.V6), SubnetV4: netStr(l.Subnets.V4), Reserved: l.Reserved,
		EtcdPrefix: d.o.Etcd.Prefix, PID: os.Getpid(), Version: d.o.Version, Written: time.Now().UTC()}
	if d.dev != nil {
		s.Device = d.dev.Name
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	path := StatusPath(d.o.SubnetFile)
	// Written then renamed: a reader never sees half a file.
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, append(b, '\n'), 0o644)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		d.log.Warn("write status file", "path", path, "err", err)
	}
}
