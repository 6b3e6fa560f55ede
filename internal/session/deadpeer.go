package session

import (
	"net"
	"time"
)

// detectDeadPeer has TCP find a peer that vanished (a laptop closed, a
// network gone) without a close: keepalive probes once the connection has
// been idle for idle, and, where the system has it, a user timeout that
// drops the connection when what was sent stays unacknowledged for dead.
// The session's reader then sees the error and the session ends. This
// replaces pinging each session and waiting for its pong (see heartbeat).
func detectDeadPeer(c net.Conn, idle, dead time.Duration) {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	probes := 3
	every := max((dead-idle)/time.Duration(probes), time.Second)
	tcp.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: idle, Interval: every, Count: probes})
	setUserTimeout(tcp, dead)
}
