package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/audience/runner"
	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/people"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/sqlstore"
)

type statusLog struct {
	got  []string
	fail bool // Redis unreachable
}

func (s *statusLog) SetStatus(_ context.Context, id, status string) error {
	if s.fail {
		return errcode.New(errcode.Unavailable, "the draft store is unavailable")
	}
	s.got = append(s.got, id+":"+status)
	return nil
}

// fakeSaver records saves; when it has a store, it answers the version
// that holds the draft there, as the flusher does when a save finds
// nothing left to write.
type fakeSaver struct {
	saves []string
	err   error
	st    store.Store
}

func (f *fakeSaver) Save(ctx context.Context, ws, id string, trigger campaign.Trigger) (int64, error) {
	f.saves = append(f.saves, id+":"+string(trigger))
	if f.err != nil || f.st == nil {
		return 0, f.err
	}
	c, err := f.st.Campaign(ctx, ws, id)
	if err != nil {
		return 0, err
	}
	return c.Version, nil
}

type fakeRestorer struct{ got string }

func (f *fakeRestorer) Restore(_ context.Context, ws, id string, v int64, user, name string) (int64, error) {
	f.got = ws + "/" + id + "/" + user
	if v == 99 {
		return 0, errcode.New(errcode.NotFound, "no version 99")
	}
	return 7, nil
}

type fixture struct {
	st       *sqlstore.DB
	restorer *fakeRestorer
	saver    *fakeSaver
	t        *testing.T
	srv      *httptest.Server
	signer   *auth.Signer
	status   *statusLog
	ready    error
}

func newFixture(t *testing.T) *fixture {
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, _ := auth.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	f := &fixture{st: st, t: t, signer: signer, status: &statusLog{}, restorer: &fakeRestorer{}, saver: &fakeSaver{st: st}}
	h := New(Deps{Store: st, Signer: signer, People: people.NewRecorder(st, slog.Default()), Catalog: runner.NewCatalog(st), Status: f.status, Restorer: f.restorer, Saver: f.saver, Limits: campaign.Limits{MaxDocBytes: 1024},
		Ready: []Checker{{Name: "store", Check: st.Ping}, {Name: "fake", Check: func(context.Context) error { return f.ready }}}})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) token(user, ws string, role auth.Role) string {
	tok, _ := f.signer.Sign(auth.Claims{User: user, Workspace: ws, Role: role}, time.Hour)
	return tok
}

func (f *fixture) do(method, path, token, body string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkResponse(f.t, method, req.URL.Path, resp.StatusCode, raw)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestCampaignLifecycleOverHTTP(t *testing.T) {
	f := newFixture(t)
	ed, admin := f.token("ann", "w1", auth.Editor), f.token("root", "w1", auth.Admin)
	code, c := f.do("POST", "/v1/campaigns", ed, `{"name":"Spring sale"}`)
	if code != 201 || c["status"] != "draft" || c["version"].(float64) != 1 || c["doc"].(map[string]any)["name"] != "Spring sale" {
		t.Fatalf("create: %d %v", code, c)
	}
	id := c["id"].(string)
	code, c = f.do("POST", "/v1/campaigns", ed, `{"name":"With doc","doc":{"name":"x","messages":{}}}`)
	if code != 201 || c["doc"].(map[string]any)["messages"] == nil {
		t.Fatalf("create with doc: %d %v", code, c)
	}
	code, list := f.do("GET", "/v1/campaigns", ed, "")
	if code != 200 || len(list["campaigns"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, list)
	}
	code, got := f.do("GET", "/v1/campaigns/"+id, ed, "")
	if code != 200 || got["live"] != nil || got["draft"].(map[string]any)["name"] != "Spring sale" {
		t.Fatalf("get: %d %v", code, got)
	}
	// A draft with no message and no canvas is not launched unless forced;
	// the answer lists what is missing, and the checklist says the same.
	code, refused := f.do("POST", "/v1/campaigns/"+id+"/launch", ed, "")
	problems, _ := refused["error"].(map[string]any)["problems"].([]any)
	if code != 409 || errCode(refused) != "conflict" || len(problems) != 2 {
		t.Fatalf("unready launch: %d %v", code, refused)
	}
	code, checks := f.do("GET", "/v1/campaigns/"+id+"/checks", ed, "")
	if code != 200 || checks["ready"] != false || len(checks["problems"].([]any)) != 2 {
		t.Fatalf("checks: %d %v", code, checks)
	}
	for _, step := range []struct {
		action, token string
		code          int
		status        string
	}{
		{"stop", ed, 409, ""},
		{"launch?force=true", ed, 200, "active"},
		{"launch", ed, 409, ""},
		{"stop", ed, 200, "stopped"},
		{"resume", ed, 200, "active"},
		{"archive", ed, 403, ""},
		{"archive", admin, 200, "archived"},
		{"resume", admin, 409, ""},
		{"explode", admin, 404, ""},
	} {
		code, body := f.do("POST", "/v1/campaigns/"+id+"/"+step.action, step.token, "")
		if code != step.code || (step.status != "" && body["status"] != step.status) {
			t.Fatalf("%s: %d %v", step.action, code, body)
		}
	}
	if strings.Join(f.status.got, ",") != id+":active,"+id+":stopped,"+id+":active,"+id+":archived" {
		t.Fatalf("status announcements %v", f.status.got)
	}
	if strings.Join(f.saver.saves, ",") != id+":manual,"+id+":archive" { // the unready launch saved, to check what was typed
		t.Fatalf("archive did not save the draft first: %v", f.saver.saves)
	}
	_, got = f.do("GET", "/v1/campaigns/"+id, ed, "")
	if got["live"].(map[string]any)["name"] != "Spring sale" {
		t.Fatalf("live after launch: %v", got)
	}
	code, vs := f.do("GET", "/v1/campaigns/"+id+"/versions", ed, "")
	if code != 200 || len(vs["versions"].([]any)) != 1 || vs["versions"].([]any)[0].(map[string]any)["trigger"] != "create" {
		t.Fatalf("versions: %d %v", code, vs)
	}
}

func TestBadHTTPInput(t *testing.T) {
	f := newFixture(t)
	ed, viewer, other := f.token("ann", "w1", auth.Editor), f.token("vic", "w1", auth.Viewer), f.token("eve", "w2", auth.Admin)
	_, c := f.do("POST", "/v1/campaigns", ed, `{"name":"Spring"}`)
	id := c["id"].(string)

	expired, _ := f.signer.Sign(auth.Claims{User: "u", Workspace: "w1", Role: auth.Editor}, -time.Minute)
	forger, _ := auth.NewSigner([]byte("ffffffffffffffffffffffffffffffff"))
	forged, _ := forger.Sign(auth.Claims{User: "u", Workspace: "w1", Role: auth.Admin}, time.Hour)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u","ws":"w1","role":"admin"}`)) + "."

	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "GET", "/v1/campaigns", "", "", 401, "unauthorized"},
		{"expired token", "GET", "/v1/campaigns", expired, "", 401, "unauthorized"},
		{"forged token", "GET", "/v1/campaigns", forged, "", 401, "unauthorized"},
		{"alg none token", "GET", "/v1/campaigns", none, "", 401, "unauthorized"},
		{"malformed JSON", "POST", "/v1/campaigns", ed, `{"name":`, 400, "bad_request"},
		{"empty body", "POST", "/v1/campaigns", ed, ``, 400, "bad_request"},
		{"unknown field", "POST", "/v1/campaigns", ed, `{"name":"x","colour":"red"}`, 400, "bad_request"},
		{"trailing data", "POST", "/v1/campaigns", ed, `{"name":"x"}{"name":"y"}`, 400, "bad_request"},
		{"invalid UTF-8 in a name", "POST", "/v1/campaigns", ed, "{\"name\":\"x\xff\"}", 400, "bad_request"},
		{"invalid UTF-8 in a document", "POST", "/v1/campaigns", ed, "{\"name\":\"x\",\"doc\":{\"k\":\"\xc3\"}}", 400, "bad_request"},
		{"missing name", "POST", "/v1/campaigns", ed, `{"doc":{}}`, 400, "bad_request"},
		{"doc not an object", "POST", "/v1/campaigns", ed, `{"name":"x","doc":[1]}`, 400, "bad_request"},
		{"doc over the limit", "POST", "/v1/campaigns", ed, `{"name":"x","doc":{"pad":"` + strings.Repeat("p", 2000) + `"}}`, 413, "too_large"},
		{"body over the limit", "POST", "/v1/campaigns", ed, `{"name":"x","doc":{"pad":"` + strings.Repeat("p", 100<<10) + `"}}`, 413, "too_large"},
		{"viewer creates", "POST", "/v1/campaigns", viewer, `{"name":"x"}`, 403, "forbidden"},
		{"viewer launches", "POST", "/v1/campaigns/" + id + "/launch", viewer, ``, 403, "forbidden"},
		{"unknown id", "GET", "/v1/campaigns/c_nope", ed, "", 404, "not_found"},
		{"weird id", "GET", "/v1/campaigns/%27%3B--", ed, "", 404, "not_found"},
		{"other workspace reads", "GET", "/v1/campaigns/" + id, other, "", 404, "not_found"},
		{"other workspace launches", "POST", "/v1/campaigns/" + id + "/launch", other, "", 404, "not_found"},
		{"other workspace history", "GET", "/v1/campaigns/" + id + "/versions", other, "", 404, "not_found"},
		{"unknown route", "GET", "/v1/nothing", ed, "", 404, "not_found"},
		{"viewer restores", "POST", "/v1/campaigns/" + id + "/versions/1/restore", viewer, "", 403, "forbidden"},
		{"bad version", "POST", "/v1/campaigns/" + id + "/versions/x/restore", ed, "", 400, "bad_request"},
		{"missing version", "POST", "/v1/campaigns/" + id + "/versions/99/restore", ed, "", 404, "not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do(tc.method, tc.path, tc.token, tc.body)
			if code != tc.status || errCode(body) != tc.code {
				t.Fatalf("got %d %v", code, body)
			}
			if msg := body["error"].(map[string]any)["message"]; msg == "" {
				t.Fatal("empty message")
			}
		})
	}
	if code, body := f.do("POST", "/v1/campaigns/"+id+"/versions/1/restore", ed, ""); code != 200 || body["rev"].(float64) != 7 || f.restorer.got != "w1/"+id+"/ann" ||
		!slices.Contains(f.saver.saves, id+":restore") {
		t.Fatalf("restore: %d %v %s, saves %v (a restore is saved at once, as a restore)", code, body, f.restorer.got, f.saver.saves)
	}
	// Nothing above changed the campaign.
	_, got := f.do("GET", "/v1/campaigns/"+id, ed, "")
	if got["status"] != "draft" || got["version"].(float64) != 1 {
		t.Fatalf("changed: %v", got)
	}
	_, list := f.do("GET", "/v1/campaigns", other, "")
	if len(list["campaigns"].([]any)) != 0 {
		t.Fatalf("other workspace lists: %v", list)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t)
	if code, b := f.do("GET", "/healthz", "", ""); code != 200 || b["status"] != "ok" {
		t.Fatalf("healthz %d %v", code, b)
	}
	if code, b := f.do("GET", "/readyz", "", ""); code != 200 || b["checks"].(map[string]any)["store"] != "ok" {
		t.Fatalf("readyz %d %v", code, b)
	}
	f.ready = errors.New("redis: connection refused")
	if code, b := f.do("GET", "/readyz", "", ""); code != 503 || b["checks"].(map[string]any)["fake"] != "redis: connection refused" {
		t.Fatalf("readyz down %d %v", code, b)
	}
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"collab_http_requests_total", "collab_sessions", "collab_edits_accepted_total", "collab_edit_conflicts_total", "collab_oldest_unflushed_edit_age_seconds"} {
		if !strings.Contains(string(raw), name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}

func TestProfilesAndAudiencesOverHTTP(t *testing.T) {
	f := newFixture(t)
	ed, viewer, other := f.token("ann", "w1", auth.Editor), f.token("vic", "w1", auth.Viewer), f.token("eve", "w2", auth.Admin)
	post := func(token, ctype, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/profiles", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := post(ed, "application/x-ndjson", "{\"id\":\"p1\",\"country\":\"FR\"}\n{\"id\":\"p2\"}\n"); code != 200 || m["imported"].(float64) != 2 {
		t.Fatalf("ndjson: %d %v", code, m)
	}
	if code, m := post(ed, "text/csv", "id,country\np3,DE\n"); code != 200 || m["imported"].(float64) != 1 {
		t.Fatalf("csv: %d %v", code, m)
	}
	code, m := post(ed, "", "{\"id\":\"p4\"}\n{oops\n{\"id\":\"p5\"}\n")
	lines := m["error"].(map[string]any)["lines"].([]any)
	if code != 400 || len(lines) != 1 || lines[0].(map[string]any)["line"].(float64) != 2 {
		t.Fatalf("bad line: %d %v", code, m)
	}
	for _, body := range []struct{ typ, text string }{
		{"application/x-ndjson", "{\"id\":\"p6\",\"city\":\"Par\xe9s\"}\n"},
		{"text/csv", "id,city\np7,Par\xe9s\n"},
	} {
		code, m := post(ed, body.typ, body.text)
		if lines, _ := m["error"].(map[string]any)["lines"].([]any); code != 400 || len(lines) != 1 {
			t.Fatalf("%s with invalid UTF-8: %d %v", body.typ, code, m)
		}
	}
	if code, m := post(ed, "text/csv", "name\nx\n"); code != 400 || errCode(m) != "bad_request" {
		t.Fatalf("csv without id: %d %v", code, m)
	}
	if code, m := post(ed, "image/png", "x"); code != 400 {
		t.Fatalf("wrong type: %d %v", code, m)
	}
	if code, _ := post(viewer, "", "{\"id\":\"p9\"}\n"); code != 403 {
		t.Fatalf("viewer import: %d", code)
	}
	if code, list := f.do("GET", "/v1/audiences", ed, ""); code != 200 || len(list["audiences"].([]any)) != 0 {
		t.Fatalf("list: %d %v", code, list)
	}
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/v1/audiences/a_nope", ed, 404},
		{"/v1/audiences/a_nope?limit=x", ed, 400},
		{"/v1/audiences/a_nope?limit=900", ed, 400},
		{"/v1/audiences", "", 401},
		{"/v1/audiences", other, 200},
	} {
		if code, body := f.do("GET", tc.path, tc.token, ""); code != tc.status {
			t.Fatalf("%s: %d %v", tc.path, code, body)
		}
	}
}

// An archive that cannot reach Redis, or cannot save the draft first, does
// not happen: the store keeps the campaign editable and Redis its status.
func TestArchiveAllOrNothing(t *testing.T) {
	f := newFixture(t)
	admin := f.token("root", "w1", auth.Admin)
	_, c := f.do("POST", "/v1/campaigns", admin, `{"name":"Keep"}`)
	id := c["id"].(string)
	f.status.fail = true
	if code, body := f.do("POST", "/v1/campaigns/"+id+"/archive", admin, ""); code != 503 {
		t.Fatalf("archive with Redis down: %d %v", code, body)
	}
	if _, got := f.do("GET", "/v1/campaigns/"+id, admin, ""); got["status"] != "draft" {
		t.Fatalf("archived without Redis: %v", got)
	}
	f.status.fail = false
	f.saver.err = errcode.New(errcode.Unavailable, "the database is unavailable")
	if code, body := f.do("POST", "/v1/campaigns/"+id+"/archive", admin, ""); code != 503 {
		t.Fatalf("archive with a failing save: %d %v", code, body)
	}
	if _, got := f.do("GET", "/v1/campaigns/"+id, admin, ""); got["status"] != "draft" {
		t.Fatalf("archived without its last edits: %v", got)
	}
	if strings.Join(f.status.got, ",") != id+":archived,"+id+":draft" {
		t.Fatalf("Redis status not put back: %v", f.status.got)
	}
}

// TestHistoryOverHTTP: history names people, versions can be read one by
// one and labelled, and a restore's answer names the version that saved it.
func TestHistoryOverHTTP(t *testing.T) {
	f := newFixture(t)
	tok, _ := f.signer.Sign(auth.Claims{User: "ann", Name: "Ann Lee", Workspace: "w1", Role: auth.Editor}, time.Hour)
	viewer := f.token("vic", "w1", auth.Viewer)
	_, c := f.do("POST", "/v1/campaigns", tok, `{"name":"Spring sale"}`)
	id := c["id"].(string)
	// A timer save of revs 1–7 (the restore's rev, from the fake restorer)
	// lands before the restore's own save, which then finds nothing to do;
	// the timer's save records the restore, as the flusher does from the
	// draft log (TestRestoreVersion), and the answer names that version.
	if _, err := f.st.SaveDraft(context.Background(), store.DraftSave{Workspace: "w1", ID: id, BaseVersion: 1, RevFrom: 1, Rev: 7,
		Doc: json.RawMessage(`{"name":"Spring"}`), By: "ann", Authors: []string{"ann"}, Trigger: campaign.TriggerTimer, RestoredFrom: 1}); err != nil {
		t.Fatal(err)
	}
	code, r := f.do("POST", "/v1/campaigns/"+id+"/versions/1/restore", tok, "")
	if code != 200 || r["version"] != float64(2) {
		t.Fatalf("restore: %d %v", code, r)
	}
	code, vs := f.do("GET", "/v1/campaigns/"+id+"/versions", tok, "")
	list := vs["versions"].([]any)
	top := list[0].(map[string]any)
	if code != 200 || top["trigger"] != "restore" || top["restored_from"] != float64(1) || vs["people"].(map[string]any)["ann"] != "Ann Lee" {
		t.Fatalf("history after restore: %d %v", code, vs)
	}

	for _, tc := range []struct {
		name, token, version, body string
		code                       int
	}{
		{"label", tok, "1", `{"label":"  Sent to legal "}`, 200},
		{"viewer", viewer, "1", `{"label":"x"}`, 403},
		{"no such version", tok, "9", `{"label":"x"}`, 404},
		{"bad version", tok, "zero", `{"label":"x"}`, 400},
		{"missing label", tok, "1", `{}`, 400},
		{"unknown field", tok, "1", `{"label":"x","color":"red"}`, 400},
		{"too long", tok, "1", `{"label":"` + strings.Repeat("é", 121) + `"}`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := f.do("PATCH", "/v1/campaigns/"+id+"/versions/"+tc.version, tc.token, tc.body)
			if code != tc.code {
				t.Fatalf("%d %v", code, body)
			}
		})
	}
	code, one := f.do("GET", "/v1/campaigns/"+id+"/versions/1", tok, "")
	v := one["version"].(map[string]any)
	if code != 200 || v["label"] != "Sent to legal" || v["doc"].(map[string]any)["name"] != "Spring sale" {
		t.Fatalf("version 1: %d %v", code, one)
	}
	if code, _ := f.do("GET", "/v1/campaigns/"+id+"/versions/1", f.token("eve", "w2", auth.Admin), ""); code != 404 {
		t.Fatalf("another workspace read a version: %d", code)
	}
}

// TestRuleBuilderOverHTTP: the attribute list and the live count, which
// flags an attribute no profile holds (with the one it likely meant); an
// import is seen at once, not after the list's minute in cache.
func TestRuleBuilderOverHTTP(t *testing.T) {
	f := newFixture(t)
	ed := f.token("ann", "w1", auth.Editor)
	importProfiles := func(body string) {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/profiles", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ed)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("import: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	importProfiles(`{"id":"p1","country":"FR","signup":"2024-01-02T00:00:00Z"}` + "\n" + `{"id":"p2","country":"DE"}` + "\n")
	code, m := f.do("GET", "/v1/attributes", ed, "")
	if code != 200 || m["profiles"] != float64(2) || len(m["attributes"].([]any)) != 3 {
		t.Fatalf("attributes: %d %v", code, m)
	}
	code, m = f.do("POST", "/v1/audiences/count", ed, `{"rule":{"all":[{"field":"country","op":"eq","value":"FR"},{"field":"signup date","op":"not_empty"}]}}`)
	unknown := m["unknown"].([]any)
	if code != 200 || m["count"] != float64(0) || m["exact"] != true || len(unknown) != 1 ||
		unknown[0].(map[string]any)["field"] != "signup date" || unknown[0].(map[string]any)["suggestion"] != "signup" {
		t.Fatalf("count with a typo: %d %v", code, m)
	}
	importProfiles(`{"id":"p3","country":"FR","zodiac":"leo"}` + "\n")
	code, m = f.do("POST", "/v1/audiences/count", ed, `{"rule":{"field":"zodiac","op":"eq","value":"leo"}}`)
	if code != 200 || m["count"] != float64(1) || len(m["unknown"].([]any)) != 0 {
		t.Fatalf("count after an import: %d %v", code, m)
	}
	for _, body := range []string{`{"rule":{"field":"country","op":"sounds_like","value":"x"}}`, `{}`, `{"rule":1,"x":2}`} {
		if code, m := f.do("POST", "/v1/audiences/count", ed, body); code != 400 {
			t.Fatalf("bad rule %s: %d %v", body, code, m)
		}
	}
	if code, _ := f.do("GET", "/v1/attributes", "", ""); code != 401 {
		t.Fatalf("attributes without a token: %d", code)
	}
}

// TestAudienceExportOverHTTP: an audience downloads as CSV with its
// columns, values as written (text plain, others as JSON, missing empty);
// another workspace's audience is not found.
func TestAudienceExportOverHTTP(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dec, _ := audience.NewDecoder(strings.NewReader(`{"id":"p1","email":"a@x.fr","age":34}`+"\n"+`{"id":"p2","email":"b, \"quoted\"@x.fr"}`+"\n"), "ndjson")
	if _, err := f.st.ImportProfiles(ctx, "w1", dec.Next); err != nil {
		t.Fatal(err)
	}
	c, _ := audience.ParseCanvas(json.RawMessage(`{"activities":{"b":{"type":"build_audience","config":{"rule":{"field":"email","op":"not_empty"},"columns":["email","age"]}}}}`))
	pop, err := (&audience.Planner{Canvas: c, Workspace: "w1", Dialect: f.st.Dialect()}).Plan("b")
	if err != nil {
		t.Fatal(err)
	}
	saved, err := f.st.SaveAudience(ctx, store.AudienceSave{Workspace: "w1", Mode: "create_or_update", Label: "All", UpdateMode: "replace", Population: pop, NewID: "a_all"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(token string) (int, string, string) {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/audiences/"+saved.Audience+"/members.csv", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	code, ctype, body := get(f.token("vic", "w1", auth.Viewer))
	want := "id,email,age\np1,a@x.fr,34\np2,\"b, \"\"quoted\"\"@x.fr\",\n"
	if code != 200 || !strings.HasPrefix(ctype, "text/csv") || body != want {
		t.Fatalf("export: %d %s\n%q\nwant %q", code, ctype, body, want)
	}
	if code, _, _ := get(f.token("eve", "w2", auth.Admin)); code != 404 {
		t.Fatalf("another workspace's audience: %d", code)
	}
}
