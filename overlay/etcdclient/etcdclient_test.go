package etcdclient

import (
	"strings"
	"testing"
)

func TestEtcdTLSFilesNamed(t *testing.T) {
	e := Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", CAFile: "/nonexistent/ca.pem"}
	if _, err := e.ClientConfig(); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
	e = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p"}
	cfg, err := e.ClientConfig()
	if err != nil || cfg.TLS == nil {
		t.Errorf("https endpoint without files must still use TLS: %v %v", err, cfg.TLS)
	}
}
