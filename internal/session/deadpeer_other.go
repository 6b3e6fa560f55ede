//go:build !linux

package session

import (
	"net"
	"time"
)

// setUserTimeout: no TCP_USER_TIMEOUT here; keepalive probes alone find
// dead peers.
func setUserTimeout(*net.TCPConn, time.Duration) {}
