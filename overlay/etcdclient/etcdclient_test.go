package etcdclient

import (
	"os"
	"path/filepath"
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

// TestCredentialsNeverInClear: a password is never sent over a cleartext
// endpoint, and TLS is not mixed with cleartext; the error names the
// endpoint. unix:// is local and allowed.
func TestCredentialsNeverInClear(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	for _, c := range []struct {
		name string
		o    Options
		want string // "" = accepted
	}{
		{"password over http", Options{Endpoints: []string{"http://[2001:db8::1]:2379"}, Username: "u", Password: "p"}, "http://[2001:db8::1]:2379"},
		{"password over the default endpoint", Options{Username: "u", Password: "p"}, DefaultEndpoint},
		{"password, one of two endpoints http", Options{Endpoints: []string{"https://[2001:db8::1]:2379", "http://[2001:db8::2]:2379"}, Username: "u", Password: "p"}, "http://[2001:db8::2]:2379"},
		{"bare host:port", Options{Endpoints: []string{"[2001:db8::1]:2379"}, Username: "u", Password: "p"}, "[2001:db8::1]:2379"},
		{"bare name:port", Options{Endpoints: []string{"etcd1:2379"}}, "etcd1:2379"},
		{"mix without password", Options{Endpoints: []string{"https://[2001:db8::1]:2379", "http://[2001:db8::2]:2379"}}, "http://[2001:db8::2]:2379"},
		{"CA file with http", Options{Endpoints: []string{"http://[2001:db8::1]:2379"}, CAFile: "/ca.pem"}, "http://[2001:db8::1]:2379"},
		{"username without password", Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Username: "u"}, "--etcd-password-file"},
		{"password without username", Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Password: "p"}, "--etcd-username"},
		{"password over https", Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Username: "u", Password: "p"}, ""},
		{"password over unix", Options{Endpoints: []string{"unix:///run/etcd.sock"}, Username: "u", Password: "p"}, ""},
		{"unix beside https", Options{Endpoints: []string{"unix:///run/etcd.sock", "https://[2001:db8::1]:2379"}, Username: "u", Password: "p"}, ""},
		{"plain http, no secrets", Options{Endpoints: []string{"http://[2001:db8::1]:2379"}}, ""},
	} {
		c.o.Prefix = "/p"
		err := c.o.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted, want an error naming %s", c.name, c.want)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: error does not name %s: %v", c.name, c.want, err)
		}
	}
}

// TestPasswordFile: --etcd-password-file is read (one line, newline
// dropped) only with mode 0600 or stricter; the error names file and mode.
func TestPasswordFile(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	dir := t.TempDir()
	f := filepath.Join(dir, "pw")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", PasswordFile: f}
	if err := o.Validate(); err != nil || o.Password != "s3cret" {
		t.Fatalf("0600 file: password %q, %v", o.Password, err)
	}
	if err := o.Validate(); err != nil {
		t.Errorf("a second Validate must keep the password read: %v", err)
	}
	for mode, want := range map[os.FileMode]string{0o640: "0640", 0o604: "0604", 0o644: "0644"} {
		os.Chmod(f, mode)
		o := Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", PasswordFile: f}
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), want) {
			t.Errorf("mode %04o: want an error naming %s and %s, got %v", mode, f, want, err)
		}
	}
	os.Chmod(f, 0o400)
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", PasswordFile: f, Password: "x"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("file and password together: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", PasswordFile: empty}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty password file: %v", err)
	}
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", PasswordFile: filepath.Join(dir, "missing")}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing password file: %v", err)
	}
}

// TestSystemdCredential: $CREDENTIALS_DIRECTORY/etcd-password is the
// password when a user is named and no other source gives one.
func TestSystemdCredential(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	os.WriteFile(filepath.Join(dir, CredentialName), []byte("fromsystemd"), 0o400)
	o := Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u"}
	if err := o.Validate(); err != nil || o.Password != "fromsystemd" {
		t.Errorf("credential: %q %v", o.Password, err)
	}
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u", Password: "given"}
	if err := o.Validate(); err != nil || o.Password != "given" {
		t.Errorf("a given password must win over the credential: %q %v", o.Password, err)
	}
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p"}
	if err := o.Validate(); err != nil || o.Password != "" {
		t.Errorf("no user: the credential must not be read: %q %v", o.Password, err)
	}
	os.Remove(filepath.Join(dir, CredentialName))
	o = Options{Endpoints: []string{"https://[2001:db8::1]:2379"}, Prefix: "/p", Username: "u"}
	if err := o.Validate(); err == nil {
		t.Error("user without any password source accepted")
	}
}
