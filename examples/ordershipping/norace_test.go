//go:build !race

package ordershipping_test

const raceEnabled = false
