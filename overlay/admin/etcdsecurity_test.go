package admin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxlan6/vxlan6/overlay/etcdserver"
)

// TestEtcdPasswordSources: the password comes from VXLAN6D_ETCD_PASSWORD or
// --etcd-password-file (never needing argv), and a password with a
// cleartext endpoint is refused naming the endpoint.
func TestEtcdPasswordSources(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	tls := map[string]string{"VXLAN6D_ETCD_ENDPOINTS": "https://[2001:db8::1]:2379", "VXLAN6D_ETCD_USERNAME": "vx"}
	env := map[string]string{"VXLAN6D_ETCD_PASSWORD": "fromenv"}
	for k, v := range tls {
		env[k] = v
	}
	o, err := parseRun(t, []string{"--node-name", "n1"}, env)
	if err != nil || o.Etcd.Password != "fromenv" {
		t.Errorf("VXLAN6D_ETCD_PASSWORD: %q %v", o.Etcd.Password, err)
	}
	f := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(f, []byte("fromfile\n"), 0o600)
	o, err = parseRun(t, []string{"--node-name", "n1", "--etcd-password-file", f}, tls)
	if err != nil || o.Etcd.Password != "fromfile" {
		t.Errorf("--etcd-password-file: %q %v", o.Etcd.Password, err)
	}
	_, err = parseRun(t, []string{"--node-name", "n1", "--etcd-endpoints", "http://[2001:db8::1]:2379", "--etcd-username", "vx"}, map[string]string{"VXLAN6D_ETCD_PASSWORD": "x"})
	if err == nil || !strings.Contains(err.Error(), "http://[2001:db8::1]:2379") {
		t.Errorf("password over http: %v", err)
	}
}

// TestEtcdServerDefaultsLoopback: `vxlan6d etcd` without
// --listen-client-urls listens on loopback only; a cleartext listener
// beyond the host is reported (and warned about).
func TestEtcdServerDefaultsLoopback(t *testing.T) {
	c := etcdserver.Config{DataDir: "/d"}
	exposed, err := checkEtcdServer(&c)
	if err != nil || len(c.ClientURLs) != 1 || c.ClientURLs[0] != DefaultEtcdListen || len(exposed) != 0 {
		t.Errorf("default: %v %v %v", c.ClientURLs, exposed, err)
	}
	c = etcdserver.Config{DataDir: "/d", ClientURLs: []string{"unix:///run/e.sock", "http://[::1]:2379", "http://[2001:db8::10]:2379", "https://[2001:db8::10]:2380"}}
	exposed, err = checkEtcdServer(&c)
	if err != nil || len(exposed) != 1 || exposed[0] != "http://[2001:db8::10]:2379" {
		t.Errorf("exposed: %v %v", exposed, err)
	}
	for _, bad := range []etcdserver.Config{
		{DataDir: "/d", ClientCertAuth: true},
		{DataDir: "/d", CertFile: "c"},
		{DataDir: "/d", InitialCluster: "a=http://127.0.0.1:1"},
		{},
	} {
		if _, err := checkEtcdServer(&bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
