// Package posfleet is the domain vocabulary of posfleet, the monitor for fleets
// of card-payment terminals: terminal identity, the MQTT topic scheme, the
// payload of every channel and how it is decoded and validated.
//
// It imports the standard library only. The adapters (broker/, collector/,
// web/, firmware-client/) depend on it, never the other way round.
package posfleet
