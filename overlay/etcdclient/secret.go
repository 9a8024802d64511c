package etcdclient

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CredentialName is the systemd credential holding the etcd password
// (LoadCredential=etcd-password:/etc/vxlan6/etcd-password in the unit); it
// is read from $CREDENTIALS_DIRECTORY when no other source gives a password.
const CredentialName = "etcd-password"

// resolvePassword fills Password from exactly one source: --etcd-password
// (or VXLAN6D_ETCD_PASSWORD, which sets the same flag), --etcd-password-file,
// or, when a user is named and neither is given, the systemd credential.
func (e *Options) resolvePassword() error {
	if e.passwordFrom != "" {
		return nil
	}
	switch {
	case e.PasswordFile != "" && e.Password != "":
		return fmt.Errorf("--etcd-password-file %s and --etcd-password (or VXLAN6D_ETCD_PASSWORD) are both set: give one", e.PasswordFile)
	case e.PasswordFile != "":
		p, err := readSecretFile(e.PasswordFile)
		if err != nil {
			return fmt.Errorf("--etcd-password-file: %w", err)
		}
		e.Password, e.passwordFrom = p, "--etcd-password-file "+e.PasswordFile
	case e.Password != "":
		e.passwordFrom = "--etcd-password"
	case e.Username != "":
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return nil
		}
		f := filepath.Join(dir, CredentialName)
		p, err := readSecretFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("systemd credential %s: %w", CredentialName, err)
		}
		e.Password, e.passwordFrom = p, "systemd credential "+f
	}
	return nil
}

// readSecretFile reads a password file: a regular file that neither group
// nor others may read or write (0600, 0400 or stricter), one line, the
// trailing newline dropped. Errors name the file (and its mode).
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("open password file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("stat password file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("password file %s is not a regular file (%s)", path, st.Mode())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("password file %s has mode %04o: group or others may access it; chmod 600 %s", path, perm, path)
	}
	buf, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return "", fmt.Errorf("read password file %s: %w", path, err)
	}
	if len(buf) > 4096 {
		return "", fmt.Errorf("password file %s is longer than 4096 bytes", path)
	}
	p := strings.TrimRight(string(buf), "\r\n")
	if p == "" {
		return "", fmt.Errorf("password file %s is empty", path)
	}
	if strings.ContainsAny(p, "\r\n") {
		return "", fmt.Errorf("password file %s has more than one line", path)
	}
	return p, nil
}
