package vxlan

import (
	"fmt"
	"log/slog"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offloads of the VXLAN device as ethtool reports them. Without TX checksum
// offload every inner packet is checksummed in software before
// encapsulation, and without GSO/TSO the stack segments before the device
// instead of once after it: both cost throughput on the overlay and are
// worth a warning at start (they are on for a kernel vxlan device unless
// someone turned them off).
type Offloads struct {
	TXChecksum bool
	TSO        bool
	GSO        bool
}

func (o Offloads) String() string {
	return fmt.Sprintf("tx-checksum=%v tso=%v gso=%v", o.TXChecksum, o.TSO, o.GSO)
}

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // rest of struct ifreq's union
}

func ethtoolGet(fd int, name string, cmd uint32) (bool, error) {
	ev := ethtoolValue{cmd: cmd}
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&ev)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&ev)
	if errno != 0 {
		return false, errno
	}
	return ev.data != 0, nil
}

// ReadOffloads asks the kernel (ethtool ioctl, in the current netns) which
// offloads device name has.
func ReadOffloads(name string) (Offloads, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Offloads{}, fmt.Errorf("socket for ethtool on %s: %w", name, err)
	}
	defer unix.Close(fd)
	var o Offloads
	for _, f := range []struct {
		cmd uint32
		dst *bool
		nm  string
	}{{unix.ETHTOOL_GTXCSUM, &o.TXChecksum, "tx checksum"}, {unix.ETHTOOL_GTSO, &o.TSO, "TSO"}, {unix.ETHTOOL_GGSO, &o.GSO, "GSO"}} {
		v, err := ethtoolGet(fd, name, f.cmd)
		if err != nil {
			return o, fmt.Errorf("read %s offload of %s: %w", f.nm, name, err)
		}
		*f.dst = v
	}
	return o, nil
}

// LogOffloads says what device name offloads, and warns when TX checksum
// offload or segmentation offload is off. The daemon calls it once per
// device it starts using (not from EnsureDevice, which its periodic resync
// calls every interval: that logged the same line each time).
func LogOffloads(log *slog.Logger, name string) {
	o, err := ReadOffloads(name)
	switch {
	case err != nil:
		log.Warn("cannot read vxlan device offloads", "device", name, "err", err)
	case !o.TXChecksum || !(o.TSO || o.GSO):
		log.Warn("vxlan device offloads off: overlay throughput will suffer", "device", name, "offloads", o.String())
	default:
		log.Info("vxlan device offloads", "device", name, "offloads", o.String(), "udp6Checksum", "on")
	}
}
