package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/auth"
)

// The document schema over HTTP: admin only to set or remove, compiled
// before it is stored, readable by the workspace, absent as 404.
func TestDocumentSchemaOverHTTP(t *testing.T) {
	f := newFixture(t)
	admin, editor, other := f.token("ann", "w1", auth.Admin), f.token("bob", "w1", auth.Editor), f.token("eve", "w2", auth.Admin)
	schema := `{"type":"object","properties":{"name":{"type":"string","maxLength":20}}}`
	if code, m := f.do("GET", "/v1/schema", editor, ""); code != http.StatusNotFound || errCode(m) != "not_found" {
		t.Fatalf("no schema yet: %d %v", code, m)
	}
	if code, m := f.do("PUT", "/v1/schema", editor, schema); code != http.StatusForbidden {
		t.Fatalf("editor set the schema: %d %v", code, m)
	}
	for _, bad := range []string{`{"type":"nope"}`, `[1]`, `not json`, `{"$ref":"#/missing"}`} {
		if code, m := f.do("PUT", "/v1/schema", admin, bad); code != http.StatusBadRequest || !strings.Contains(m["error"].(map[string]any)["message"].(string), "schema") {
			t.Fatalf("%s: %d %v", bad, code, m)
		}
	}
	if code, m := f.do("PUT", "/v1/schema", admin, schema); code != http.StatusOK || m["type"] != "object" {
		t.Fatalf("set: %d %v", code, m)
	}
	if code, m := f.do("GET", "/v1/schema", editor, ""); code != http.StatusOK || m["properties"] == nil {
		t.Fatalf("get: %d %v", code, m)
	}
	if code, _ := f.do("GET", "/v1/schema", other, ""); code != http.StatusNotFound {
		t.Fatalf("another workspace reads it: %d", code)
	}
	if code, _ := f.do("DELETE", "/v1/schema", editor, ""); code != http.StatusForbidden {
		t.Fatalf("editor removed it: %d", code)
	}
	if code, _ := f.do("DELETE", "/v1/schema", admin, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := f.do("GET", "/v1/schema", admin, ""); code != http.StatusNotFound {
		t.Fatalf("after delete: %d", code)
	}
}
