//go:build race

package ordershipping_test

// raceEnabled makes the test build the services with -race as well, so that
// they reuse the packages the test binary was compiled from.
const raceEnabled = true
