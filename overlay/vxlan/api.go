// Package vxlan owns the data path: the VXLAN device (device.go) and the
// per-peer fdb, neighbour and route entries (peers.go), kept apart as in
// flannel's pkg/backend/vxlan.
//
// API CONTRACT (agreed before implementation; the daemon codes against it).
package vxlan

import "net"

// DeviceConfig describes the wanted device.
type DeviceConfig struct {
	VNI           int    // device name is "vxlan6.<VNI>"
	Port          int    // UDP destination port
	Local         net.IP // VTEP: the device's local address
	UnderlayIndex int    // underlay link index
	UnderlayMTU   int
	MTU           int              // 0 = UnderlayMTU - 70 (IPv6 underlay)
	MAC           net.HardwareAddr // stable VTEP MAC; see MACFor
}

// Device is the VXLAN device as it exists in the kernel.
type Device struct {
	Name  string
	Index int
	MTU   int
	MAC   net.HardwareAddr
	Local net.IP
}

// MACFor derives a stable, locally administered unicast MAC from the VTEP
// address, so a node keeps its MAC across restarts and reboots.
func MACFor(vtep net.IP) net.HardwareAddr { panic("vxlan: not implemented") }

// EnsureDevice creates the device, or reuses a compatible existing one (same
// VNI, local, port, underlay, learning off), or deletes and recreates an
// incompatible one. It sets MTU and MAC, brings it up, and enables forwarding.
func EnsureDevice(cfg DeviceConfig) (*Device, error) { panic("vxlan: not implemented") }

// Peer is one remote node.
type Peer struct {
	VTEP       net.IP
	MAC        net.HardwareAddr
	IPv6Subnet *net.IPNet
	IPv4Subnet *net.IPNet // dual-stack only
}

// Reconcile makes the device's peers exactly peers: entries no peer backs are
// removed, missing or changed ones added; untouched entries are not rewritten
// (a daemon restart must not disturb working peers).
func (d *Device) Reconcile(peers []Peer) error { panic("vxlan: not implemented") }

// AddPeer programs (or updates) one peer: permanent neighbour, fdb entry to
// its VTEP, route(s) to its subnet(s) via this device.
func (d *Device) AddPeer(p Peer) error { panic("vxlan: not implemented") }

// RemovePeer removes what AddPeer programmed for p (missing entries are fine).
func (d *Device) RemovePeer(p Peer) error { panic("vxlan: not implemented") }
