package lease

import "testing"

// ConfigKeyFor is the key a Registry on the same prefix uses, so code
// without a Registry (etcdclient's dial) cannot drift from it.
func TestConfigKeyForMatchesRegistry(t *testing.T) {
	for prefix, want := range map[string]string{
		"":            DefaultPrefix + "/config",
		"/p":          "/p/config",
		"/p/":         "/p/config",
		"/a/b//":      "/a/b/config",
		DefaultPrefix: DefaultPrefix + "/config",
	} {
		if got := ConfigKeyFor(prefix); got != want {
			t.Errorf("ConfigKeyFor(%q) = %q, want %q", prefix, got, want)
		}
		if got := New(nil, prefix).ConfigKey(); got != want {
			t.Errorf("New(nil, %q).ConfigKey() = %q, want %q", prefix, got, want)
		}
	}
}
