package testbed

// Tail is the last n bytes of s (a log), marked as cut when it was longer.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "...\n" + s[len(s)-n:]
}
