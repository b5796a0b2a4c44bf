//go:build !race

package evws

const raceEnabled = false
