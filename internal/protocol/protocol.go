// Package protocol is collab's WebSocket wire protocol in one place: the
// subprotocols and close codes, the client request and its decoder, and a
// type for every message the server sends, each encoded here and nowhere
// else. It depends on the standard library and errcode only, so the
// transport (session), the features (autosave, audience) and the load
// client all speak it without importing one another.
//
// The contract is ../shared/PROTOCOL.md; docs/protocol.md documents the
// additions and differences, and holds the example of every message that
// the golden tests pin.
package protocol

// Subprotocol is the WebSocket subprotocol a client must offer.
const Subprotocol = "collab.v1"

// SubprotocolBatch is collab.v1 with batched frames: a text frame from the
// server may hold several messages, one JSON object per line ('\n'
// between them; no message contains a raw newline). A client offers it
// before collab.v1; the server picks it when offered. Client frames are
// unchanged: one message each.
const SubprotocolBatch = "collab.v1.batch"

// CloseCode is a WebSocket close status. Besides the standard ones (1000
// normal, 1001 server going away: reconnect elsewhere, 1008 no valid hello
// in time, 1009 message too big), codes in 4000-4099 ask the client to
// reconnect and resume with `since`; 4100 and above ask it not to retry
// without a change.
type CloseCode int

const (
	// CloseTooSlow: the session's send queue overflowed; rejoin with since.
	CloseTooSlow CloseCode = 4000
	// CloseTokenExpired: the token's exp passed; reconnect with a new token.
	CloseTokenExpired CloseCode = 4100
)
