package lease

// CheckRecord returns the error a reader of the leases under cfg would skip
// l's record with, nil if it accepts it: a tool writing records
// (vxlan6d lease reserve) refuses what every daemon would ignore, with the
// same rules (VTEP not site-local or inside the pod network, subnets of the
// configured length inside the network, field lengths, MAC).
func CheckRecord(cfg *Config, l *Lease) error {
	value, err := MarshalRecord(l)
	if err != nil {
		return err
	}
	_, err = parseLease(cfg, "", keyValue{key: l.VTEP.String(), value: value}, func(string) {})
	return err
}
