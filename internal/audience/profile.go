package audience

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Profile is one targetable person of a workspace: an id and attributes.
type Profile struct {
	ID    string
	Attrs json.RawMessage // a JSON object, without the id
}

// LineError is a bad line of an import.
type LineError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// MaxProfileBytes bounds one profile's line.
const MaxProfileBytes = 64 << 10

// Decoder reads profiles one at a time from NDJSON (one object per line)
// or CSV (a header row naming the columns, one of them "id"), so that an
// import of any size needs the memory of one line.
type Decoder struct {
	next func() (Profile, error)
	line int
}

// NewDecoder returns a decoder for format "ndjson" or "csv".
func NewDecoder(r io.Reader, format string) (*Decoder, error) {
	d := &Decoder{}
	switch format {
	case "ndjson":
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), MaxProfileBytes+1)
		d.next = func() (Profile, error) {
			for sc.Scan() {
				d.line++
				line := bytes.TrimSpace(sc.Bytes())
				if len(line) == 0 {
					continue
				}
				return profileFromJSON(line, d.line)
			}
			if err := sc.Err(); err != nil {
				if errors.Is(err, bufio.ErrTooLong) {
					return Profile{}, &LineError{Line: d.line + 1, Reason: fmt.Sprintf("line over %d bytes", MaxProfileBytes)}
				}
				return Profile{}, err
			}
			return Profile{}, io.EOF
		}
	case "csv":
		cr := csv.NewReader(r)
		cr.ReuseRecord = true
		header, err := cr.Read()
		if err != nil {
			return nil, &LineError{Line: 1, Reason: "a CSV import starts with a header row naming the columns, one of them id"}
		}
		header = append([]string(nil), header...)
		idCol := -1
		for i, h := range header {
			header[i] = strings.TrimSpace(h)
			if header[i] == "id" {
				idCol = i
			}
		}
		if idCol < 0 {
			return nil, &LineError{Line: 1, Reason: "the header row has no id column"}
		}
		d.line = 1
		d.next = func() (Profile, error) {
			rec, err := cr.Read()
			if err == io.EOF {
				return Profile{}, io.EOF
			}
			d.line++
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					return Profile{}, &LineError{Line: pe.Line, Reason: pe.Err.Error()}
				}
				return Profile{}, err
			}
			if len(rec) != len(header) {
				return Profile{}, &LineError{Line: d.line, Reason: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))}
			}
			attrs := make(map[string]any, len(rec))
			for _, v := range rec {
				if !utf8.ValidString(v) {
					return Profile{}, &LineError{Line: d.line, Reason: "not valid UTF-8"}
				}
			}
			for i, v := range rec {
				if i != idCol && v != "" {
					attrs[header[i]] = csvValue(v)
				}
			}
			if err := checkID(rec[idCol]); err != nil {
				return Profile{}, &LineError{Line: d.line, Reason: err.Error()}
			}
			raw, _ := json.Marshal(attrs)
			return Profile{ID: rec[idCol], Attrs: raw}, nil
		}
	default:
		return nil, fmt.Errorf("unknown import format %q (ndjson or csv)", format)
	}
	return d, nil
}

// Next returns the next profile, a *LineError for a bad line (the decoder
// can go on after it), or io.EOF.
func (d *Decoder) Next() (Profile, error) { return d.next() }

// profileFromJSON reads the id and keeps the line itself as the
// attributes (the id among them is harmless: rules read the id column, and
// carried columns never include it). Decoding into a struct validates the
// whole line without building a map of it.
func profileFromJSON(line []byte, n int) (Profile, error) {
	if line[0] != '{' {
		return Profile{}, &LineError{Line: n, Reason: "not a JSON object"}
	}
	if !utf8.Valid(line) {
		return Profile{}, &LineError{Line: n, Reason: "not valid UTF-8"}
	}
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return Profile{}, &LineError{Line: n, Reason: "not a JSON object: " + err.Error()}
	}
	var id string
	if err := json.Unmarshal(head.ID, &id); err != nil {
		return Profile{}, &LineError{Line: n, Reason: `"id" must be a string`}
	}
	if err := checkID(id); err != nil {
		return Profile{}, &LineError{Line: n, Reason: err.Error()}
	}
	return Profile{ID: id, Attrs: append([]byte(nil), line...)}, nil
}

func checkID(id string) error {
	if id == "" || len(id) > 256 || strings.ContainsAny(id, "\x00\n\r") {
		return errors.New("id must be 1 to 256 bytes without control characters")
	}
	return nil
}

// csvValue types a CSV cell: numbers and booleans become JSON numbers and
// booleans, everything else stays a string (dates included).
func csvValue(v string) any {
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil && !strings.ContainsAny(v, "xXeEnN_") && v[0] != '+' {
		return json.Number(v)
	}
	return v
}
