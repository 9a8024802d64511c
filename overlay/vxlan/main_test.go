package vxlan

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps the package's Info logs out of test and benchmark output;
// warnings still show.
func TestMain(m *testing.M) {
	slog.SetLogLoggerLevel(slog.LevelWarn)
	os.Exit(m.Run())
}
