package admin

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// DefaultEnvFile is read by every command when it exists and --env-file is
// not given: the file vxlan6d.service names as its EnvironmentFile, so the
// admin commands on a host reach etcd (TLS files and all) the way the
// daemon does.
const DefaultEnvFile = "/etc/vxlan6/vxlan6d.env"

// readEnvFile parses a file in systemd's EnvironmentFile syntax: KEY=VALUE
// lines; blank lines and lines starting with # or ; are comments; a value may
// be in single or double quotes (double quotes know \" \\ \n and friends);
// a backslash at the end of a line continues the value on the next one;
// whitespace around KEY and an unquoted VALUE is dropped.
//
// Hand-written: systemd's own parser is C, and the Go dotenv libraries
// disagree with it on comments and continuation lines; 50 lines keep the
// file's meaning exactly the one vxlan6d.service gets.
func readEnvFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read env file %s: %w", path, err)
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		for strings.HasSuffix(line, `\`) && sc.Scan() {
			n++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(sc.Text())
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("env file %s line %d: want KEY=VALUE, got %q", path, n, line)
		}
		val, err := envValue(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("env file %s line %d (%s): %w", path, n, k, err)
		}
		env[k] = val
	}
	return env, sc.Err()
}

// envValue unquotes one value the way systemd does.
func envValue(v string) (string, error) {
	if len(v) == 0 || (v[0] != '"' && v[0] != '\'') {
		return v, nil
	}
	q := v[0]
	if len(v) < 2 || v[len(v)-1] != q {
		return "", fmt.Errorf("unterminated quote in %s", v)
	}
	body := v[1 : len(v)-1]
	if q == '\'' {
		return body, nil
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 == len(body) {
			b.WriteByte(c)
			continue
		}
		i++
		switch body[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		default:
			b.WriteByte(body[i])
		}
	}
	return b.String(), nil
}
