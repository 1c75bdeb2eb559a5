//go:build race

package broker_test

// raceEnabled: the race detector instruments the code, which makes stack
// frames larger.
const raceEnabled = true
