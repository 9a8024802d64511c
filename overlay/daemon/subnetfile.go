package daemon

import (
	"bytes"
	"log/slog"
	"os"

	"github.com/vxlan6/vxlan6/internal/ipnet"
	"github.com/vxlan6/vxlan6/overlay/vtep"
	"github.com/vxlan6/vxlan6/subnetfile"
)

// subnetWriter owns the subnet file, the plugin's only input from the daemon.
type subnetWriter struct {
	path string
	log  *slog.Logger
	m    *metrics
	// written runs after each successful write (the lease file is saved
	// next to every subnet file write).
	written func()
}

// subnetConfig is the subnet file's content for the VTEP choice c: the
// network config, this node's lease and the device's MTU.
func (d *daemon) subnetConfig(c *vtep.Choice) *subnetfile.Config {
	l := d.ka.lease
	sf := &subnetfile.Config{
		Networks: ipnet.Subnets{V6: d.cfg.Networks.V6}, Subnets: ipnet.Subnets{V6: l.Subnets.V6},
		MTU: d.dev.MTU, VTEP: c.Public, HeldBy: d.held.by,
	}
	if d.cfg.EnableIPv4 && l.Subnets.V4 != nil {
		sf.Networks.V4, sf.Subnets.V4 = d.cfg.Networks.V4, l.Subnets.V4
	}
	return sf
}

// sync rewrites the subnet file only if its content would change (deleted,
// edited, or the device MTU changed): an unchanged file keeps its mtime and
// plugins never race a rename for nothing.
func (w *subnetWriter) sync(sf *subnetfile.Config) error {
	if cur, err := os.ReadFile(w.path); err == nil && bytes.Equal(cur, sf.Marshal()) {
		return nil
	}
	w.log.Warn("subnet file missing or out of date, rewriting it", "path", w.path)
	return w.write(sf)
}

func (w *subnetWriter) write(sf *subnetfile.Config) error {
	if err := subnetfile.Write(w.path, sf); err != nil {
		w.m.incError("subnet_file")
		return err
	}
	w.m.update(func(m *metrics) { m.subnetFile, m.subnetContent = w.path, sf.Marshal() })
	if w.written != nil {
		w.written()
	}
	w.log.Info("subnet file written", "path", w.path, "subnetV6", netStr(sf.Subnets.V6), "subnetV4", netStr(sf.Subnets.V4), "mtu", sf.MTU, "vtep", ipStr(sf.VTEP))
	return nil
}
