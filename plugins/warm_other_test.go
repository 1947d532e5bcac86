//go:build !linux

package plugins_test

const envPeerDial = "SDCTL_TEST_PEER_DIAL"

func runPeerDial() int { return 2 }
