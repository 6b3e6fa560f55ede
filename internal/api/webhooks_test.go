package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/collab-dev/collab/internal/auth"
)

// Endpoints over HTTP: admin only, the secret shown once, bad URLs
// refused, another workspace's endpoints out of reach, and a delivery log
// that shows a save's event.
func TestWebhookEndpointsOverHTTP(t *testing.T) {
	f := newFixture(t)
	admin, editor, otherAdmin := f.token("ann", "w1", auth.Admin), f.token("bob", "w1", auth.Editor), f.token("eve", "w2", auth.Admin)

	if code, m := f.do("POST", "/v1/webhooks", editor, `{"url":"https://hooks.example/in"}`); code != http.StatusForbidden || errCode(m) != "forbidden" {
		t.Fatalf("editor created a webhook: %d %v", code, m)
	}
	for _, body := range []string{`{"url":"ftp://hooks.example"}`, `{"url":"https://u:p@hooks.example"}`, `{"url":""}`, `{"url":"https://h.example","events":["x"]}`, `not json`} {
		if code, m := f.do("POST", "/v1/webhooks", admin, body); code != http.StatusBadRequest || errCode(m) != "bad_request" {
			t.Fatalf("%s: %d %v", body, code, m)
		}
	}
	code, created := f.do("POST", "/v1/webhooks", admin, `{"url":"https://hooks.example/in"}`)
	id, _ := created["id"].(string)
	secret, _ := created["secret"].(string)
	if code != http.StatusCreated || !strings.HasPrefix(id, "wh_") || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create: %d %v", code, created)
	}
	code, list := f.do("GET", "/v1/webhooks", admin, "")
	hooks, _ := list["webhooks"].([]any)
	if code != http.StatusOK || len(hooks) != 1 {
		t.Fatalf("list: %d %v", code, list)
	}
	if h := hooks[0].(map[string]any); h["id"] != id || h["secret"] != nil || h["url"] != "https://hooks.example/in" {
		t.Fatalf("listed %v (the secret must not be shown again)", h)
	}
	if _, list := f.do("GET", "/v1/webhooks", otherAdmin, ""); len(list["webhooks"].([]any)) != 0 {
		t.Fatalf("another workspace sees %v", list)
	}

	// A campaign's creation has no event; its launch does.
	_, c := f.do("POST", "/v1/campaigns", admin, `{"name":"Spring"}`)
	cid, _ := c["id"].(string)
	if code, m := f.do("POST", "/v1/campaigns/"+cid+"/launch?force=true", admin, ""); code != http.StatusOK {
		t.Fatalf("launch: %d %v", code, m)
	}
	code, log := f.do("GET", "/v1/webhooks/"+id+"/deliveries", admin, "")
	ds, _ := log["deliveries"].([]any)
	if code != http.StatusOK || len(ds) != 1 {
		t.Fatalf("deliveries: %d %v", code, log)
	}
	if d := ds[0].(map[string]any); d["type"] != "campaign.status_changed" || d["campaign"] != cid || d["state"] != "pending" {
		t.Fatalf("delivery %v", d)
	}
	if code, m := f.do("GET", "/v1/webhooks/"+id+"/deliveries?limit=0", admin, ""); code != http.StatusBadRequest {
		t.Fatalf("limit 0: %d %v", code, m)
	}
	if code, m := f.do("GET", "/v1/webhooks/"+id+"/deliveries", otherAdmin, ""); code != http.StatusNotFound || errCode(m) != "not_found" {
		t.Fatalf("another workspace's log: %d %v", code, m)
	}
	if code, _ := f.do("DELETE", "/v1/webhooks/"+id, otherAdmin, ""); code != http.StatusNotFound {
		t.Fatalf("another workspace deleted it: %d", code)
	}
	if code, _ := f.do("DELETE", "/v1/webhooks/"+id, admin, ""); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, _ := f.do("DELETE", "/v1/webhooks/"+id, admin, ""); code != http.StatusNotFound {
		t.Fatalf("second delete: %d", code)
	}
}
