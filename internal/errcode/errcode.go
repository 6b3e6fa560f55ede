// Package errcode classifies failures into the small set of codes that the
// wire protocol and the HTTP API share, so that every layer can decide what a
// caller sees without string matching.
package errcode

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is a protocol error code: the `code` of a WebSocket `error` message
// and of an HTTP error body.
type Code string

const (
	Invalid      Code = "bad_request"
	Unauthorized Code = "unauthorized"
	Forbidden    Code = "forbidden"
	NotFound     Code = "not_found"
	Conflict     Code = "conflict"
	TooLarge     Code = "too_large"
	RateLimited  Code = "rate_limited"
	Unavailable  Code = "unavailable"
	Internal     Code = "internal"
)

// Error is a failure the caller is meant to see: its message is safe to show.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// New returns an *Error with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Of returns the code of the first *Error in err's chain, or Internal.
func Of(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// Message returns what a caller may be shown about err: the message of a
// classified error, or a generic text for anything else (internal details
// belong in logs, not in replies).
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return Of(err) == code }

// HTTPStatus maps a code to its HTTP status.
func (c Code) HTTPStatus() int {
	switch c {
	case Invalid:
		return http.StatusBadRequest
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case RateLimited:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// WriteHTTP answers an HTTP request with err's status and the uniform error
// body, {"error": {"code", "message"}}: the one shape every HTTP error of
// collab has, from the API and from the WebSocket upgrade alike.
func WriteHTTP(w http.ResponseWriter, err error) {
	code := Of(err)
	body, _ := json.Marshal(map[string]map[string]string{"error": {"code": string(code), "message": Message(err)}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.HTTPStatus())
	w.Write(append(body, '\n'))
}
