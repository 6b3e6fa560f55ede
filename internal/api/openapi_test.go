package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/collab-dev/collab/internal/auth"
)

var docMethods = []string{"get", "post", "put", "patch", "delete"}

// openAPIPaths is the description's paths object.
func openAPIPaths(t *testing.T) map[string]map[string]any {
	t.Helper()
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi.json: %v (version %q)", err, doc.OpenAPI)
	}
	return doc.Paths
}

// routeDrift compares a router with openapi.json: the routes it serves
// that are not documented, and the documented ones it does not serve.
func routeDrift(t *testing.T, h http.Handler) (missing, stale []string, served int) {
	param := regexp.MustCompile(`\{([a-z]+):[^}]*\}`)
	routes := map[string]bool{}
	if err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route == "/*" {
			return nil // the editor's files
		}
		route = param.ReplaceAllString(route, "{$1}")
		if (route == "/metrics" || route == "/v1/ws") && method != "GET" {
			return nil // Handle serves every method; GET is the one that means something
		}
		routes[method+" "+route] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range openAPIPaths(t) {
		for _, m := range docMethods {
			if item[m] != nil {
				documented[strings.ToUpper(m)+" "+path] = true
			}
		}
	}
	for r := range routes {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !routes[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(stale)
	return missing, stale, len(routes)
}

func fullRouter(extra func(Router)) http.Handler {
	signer, _ := auth.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	// Everything mounted: the WebSocket, the development sign-in.
	return New(Deps{Signer: signer, Sessions: http.NotFoundHandler(), DevWorkspace: "demo", Web: http.NotFoundHandler(), Extra: extra})
}

// Every route the router serves is documented, and every documented route
// is served, method by method.
func TestOpenAPIMatchesTheRouter(t *testing.T) {
	missing, stale, served := routeDrift(t, fullRouter(nil))
	if len(missing) > 0 || len(stale) > 0 {
		t.Fatalf("served but not in openapi.json: %v; in openapi.json but not served: %v", missing, stale)
	}
	if served < 15 {
		t.Fatalf("only %d routes walked", served)
	}
}

// A route added without its description is caught.
func TestOpenAPICatchesAnUndocumentedRoute(t *testing.T) {
	missing, _, _ := routeDrift(t, fullRouter(func(r Router) { r.Get("/v1/secret", func(http.ResponseWriter, *http.Request) {}) }))
	if len(missing) != 1 || missing[0] != "GET /v1/secret" {
		t.Fatalf("undocumented routes found: %v", missing)
	}
}

// The served description is the embedded one, and valid JSON.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(buf.Bytes(), OpenAPI) {
		t.Fatalf("GET /v1/openapi.json: %d, %d bytes", resp.StatusCode, buf.Len())
	}
}

const openAPIURL = "https://collab.invalid/openapi.json"

var (
	openAPIOnce     sync.Once
	openAPICompiler *jsonschema.Compiler
	openAPIDoc      map[string]any
	openAPIErr      error
	openAPIMu       sync.Mutex
	openAPICache    = map[string]*jsonschema.Schema{}
)

func loadOpenAPI() {
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI))
	if err != nil {
		openAPIErr = err
		return
	}
	openAPIDoc, _ = raw.(map[string]any)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	openAPIErr = c.AddResource(openAPIURL, raw)
	openAPICompiler = c
}

// pathTemplate finds the documented path a request path matches, the one
// with the fewest parameters when several do.
func pathTemplate(paths map[string]any, p string) string {
	best, bestParams := "", 1<<30
	for tmpl := range paths {
		re := "^" + regexp.MustCompile(`\\\{[a-z]+\\\}`).ReplaceAllString(regexp.QuoteMeta(tmpl), `[^/]+`) + "$"
		if regexp.MustCompile(re).MatchString(p) {
			if n := strings.Count(tmpl, "{"); n < bestParams {
				best, bestParams = tmpl, n
			}
		}
	}
	return best
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// checkResponse validates an answer against openapi.json: the route and
// method documented, the status (or default) documented, and a JSON body
// valid against its schema. Every request of the API tests goes through it.
func checkResponse(t *testing.T, method, path string, status int, body []byte) {
	t.Helper()
	openAPIOnce.Do(loadOpenAPI)
	if openAPIErr != nil {
		t.Fatalf("openapi.json: %v", openAPIErr)
	}
	paths := openAPIDoc["paths"].(map[string]any)
	tmpl := pathTemplate(paths, path)
	var op map[string]any
	if tmpl != "" {
		op, _ = paths[tmpl].(map[string]any)[strings.ToLower(method)].(map[string]any)
	}
	if op == nil {
		// Not a route: only the uniform error may answer it.
		if status != http.StatusNotFound && status != http.StatusBadRequest {
			t.Errorf("%s %s: %d from a route not in openapi.json", method, path, status)
			return
		}
		op = map[string]any{"responses": map[string]any{"default": map[string]any{"$ref": "#/components/responses/Error"}}}
		tmpl = "(none)"
	}
	responses := op["responses"].(map[string]any)
	key := strconv.Itoa(status)
	if responses[key] == nil {
		key = "default"
	}
	resp, _ := responses[key].(map[string]any)
	if resp == nil {
		t.Errorf("%s %s: status %d not in openapi.json", method, path, status)
		return
	}
	ptr := "/paths/" + pointerEscape(tmpl) + "/" + strings.ToLower(method) + "/responses/" + key // unless a $ref
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		resp = openAPIDoc["components"].(map[string]any)["responses"].(map[string]any)[ref[strings.LastIndex(ref, "/")+1:]].(map[string]any)
	}
	content, _ := resp["content"].(map[string]any)
	if content == nil || content["application/json"] == nil {
		if len(bytes.TrimSpace(body)) > 0 && json.Valid(body) && status != http.StatusOK {
			t.Errorf("%s %s: %d answered JSON that openapi.json does not describe", method, path, status)
		}
		return
	}
	loc := openAPIURL + "#" + ptr + "/content/application~1json/schema"
	openAPIMu.Lock()
	sch := openAPICache[loc]
	var err error
	if sch == nil {
		if sch, err = openAPICompiler.Compile(loc); err == nil {
			openAPICache[loc] = sch
		}
	}
	openAPIMu.Unlock()
	if err != nil {
		t.Fatalf("openapi.json schema at %s: %v", ptr, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s %s: %d answered non-JSON %q", method, path, status, body)
		return
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s %s: %d answer does not match openapi.json: %v\nbody: %s", method, path, status, err, body)
	}
}

// The validation can fail: a body that breaks the schema is caught.
func TestCheckResponseCatchesAMismatch(t *testing.T) {
	ft := &testing.T{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkResponse(ft, "GET", "/v1/campaigns", 200, []byte(`{"campaigns":[{"id":1}]}`))
	}()
	<-done
	if !ft.Failed() {
		t.Fatal("a campaign list with a numeric id passed the schema")
	}
}
