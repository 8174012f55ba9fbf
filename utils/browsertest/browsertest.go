// Package browsertest finds the headless Chromium that the browser tests
// (go test -tags browser) drive. CI installs chromium, so a missing browser
// is a failure, not a skip. CHROMIUM overrides the binary.
package browsertest

import (
	"os"
	"testing"
)

// Chromium returns the browser's path, or fails the test saying how to get one.
func Chromium(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("chromium not found at %s (apt-get install -y chromium, or set CHROMIUM): %v", bin, err)
	}
	return bin
}
