//go:build race

package mqtt_test

// raceDetector: the race detector doubles the runtime's stack guard, so an idle
// connection's stack shrinks only to 8 KiB under it (4 KiB without).
const raceDetector = true
