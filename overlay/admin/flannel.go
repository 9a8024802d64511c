package admin

import "github.com/vxlan6/vxlan6/overlay/lease"

// normalizeConfig checks a network config before 'config put' writes it.
func normalizeConfig(data []byte) ([]byte, []string, error) {
	_, err := lease.ParseConfig(data)
	return data, nil, err
}
