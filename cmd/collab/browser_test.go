package main

// End-to-end tests of the browser editor: the real binary's wiring (embedded
// Redis-compatible server and SQLite, as `go run ./cmd/collab` runs), the
// real editor in web/, and headless Chromium driven over the DevTools
// protocol. Every user is an independent browser context (own storage, own
// WebSocket). On failure each page's screenshot is saved; every main screen
// is also saved as it is reached, for reviewers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/metrics"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/testenv"
)

// screenDir is where screenshots go: COLLAB_E2E_SCREENSHOTS, or a fixed
// directory under the system temp dir.
func screenDir(t *testing.T) string {
	dir := os.Getenv("COLLAB_E2E_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "collab-e2e")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type e2e struct {
	t       *testing.T
	dir     string // data dir, kept across restarts
	addr    string
	srv     *server
	browser context.Context
	logs    *syncBuffer
	pages   []*page
	// wrapStore, when set before the server starts, wraps its store.
	wrapStore func(store.Store) store.Store
}

func newE2E(t *testing.T, wrap ...func(store.Store) store.Store) *e2e {
	chromium := testenv.Chromium(t)
	e := &e2e{t: t, dir: t.TempDir(), addr: freeAddr(t), logs: &syncBuffer{}}
	if len(wrap) > 0 {
		e.wrapStore = wrap[0]
	}
	e.startServer()
	t.Cleanup(func() {
		if e.srv != nil {
			e.srv.shutdown(10 * time.Second)
		}
	})
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	e.browser = browser
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range e.pages {
				p.shot("failure-" + p.name)
			}
			t.Logf("server log:\n%s", tail(e.logs.String(), 4000))
		}
		for _, p := range e.pages {
			p.cancel()
		}
		cancelBrowser()
		cancelAlloc()
	})
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (e *e2e) startServer() {
	e.t.Helper()
	cfg := &config{Addr: e.addr, DataDir: e.dir, FlushInterval: time.Second, RedisPrefix: "collab", LogLevel: "info", LogFormat: "json", wrapStore: e.wrapStore}
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment to free
		if e.srv, err = start(context.Background(), cfg, newLogger(cfg, e.logs)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("start server: %v", err)
}

func (e *e2e) stopServer() {
	if err := e.srv.shutdown(10 * time.Second); err != nil {
		e.t.Fatalf("shutdown: %v", err)
	}
	e.srv = nil
}

// api calls the HTTP API as the demo workspace's admin.
func (e *e2e) api(method, path, contentType, body string) map[string]any {
	e.t.Helper()
	tok, _ := e.srv.signer.Sign(auth.Claims{User: "e2e", Name: "E2E", Workspace: "demo", Role: auth.Admin}, time.Hour)
	req, _ := http.NewRequest(method, "http://"+e.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return m
}

// draftField reads a field of the campaign's saved draft: the durable store.
func (e *e2e) draftField(id string, keys ...string) any {
	var v any = e.api("GET", "/v1/campaigns/"+id, "", "")["draft"]
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// eventually polls cond until it holds or the deadline passes.
func (e *e2e) eventually(what string, timeout time.Duration, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// page is one user's browser context.
type page struct {
	e      *e2e
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	base   string
}

// open starts a fresh browser context for name, on base (the server, or a
// proxy in front of it), and signs in through the development login form.
func (e *e2e) open(name, base string) *page {
	e.t.Helper()
	p := &page{e: e, name: strings.ToLower(name), base: base}
	// The page's own errors go to the test log: a failing test says why.
	listen := chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			desc := d.Text
			if d.Exception != nil {
				desc += " " + d.Exception.Description
			}
			e.t.Logf("%s: page exception at %s:%d: %s", p.name, d.URL, d.LineNumber+1, desc)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				e.t.Logf("%s: console %s: %s", p.name, ev.Type, strings.Join(parts, " "))
			}
		}
	})
	p.ctx, p.cancel = chromedp.NewContext(e.browser, chromedp.WithNewBrowserContext(), listen)
	// The first Run creates the tab and ties its life to the context it
	// gets: give it the page's own, not a per-action timeout.
	if err := chromedp.Do(p.ctx); err != nil {
		e.t.Fatalf("open a browser context for %s: %v", name, err)
	}
	e.pages = append(e.pages, p)
	p.do(chromedp.Navigate(base + "/"))
	p.waitJS("login form", `!!document.querySelector("#login-name")`)
	p.do(chromedp.SendKeys("#login-name", name), chromedp.Click("form.login button[type=submit]"))
	p.waitJS("campaign list", `!!document.querySelector("#campaigns")`)
	return p
}

func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.e.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.e.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *page) js(expr string) any {
	p.e.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		p.e.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	return v
}

func (p *page) str(expr string) string {
	s, _ := p.js(expr).(string)
	return s
}

// waitJS waits until expr is truthy in the page.
func (p *page) waitJS(what, expr string) {
	p.e.t.Helper()
	p.e.eventually(p.name+": "+what, 15*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		return err == nil && ok
	})
}

// text returns the text of the first element matching sel, or "".
func (p *page) text(sel string) string {
	return p.str(fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel))
}

// waitText waits for the first element matching sel to contain substr; on
// a timeout it says what the element held, which is what explains a failure.
func (p *page) waitText(sel, substr string) {
	p.e.t.Helper()
	var last string
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
		if err == nil {
			last = got
		}
		cancel()
		if err == nil && strings.Contains(last, substr) {
			return
		}
		if time.Now().After(deadline) {
			if len(last) > 600 {
				last = last[:600] + "…"
			}
			p.e.t.Fatalf("timed out after 15s waiting for %s: %s to contain %q (has %q, err %v)", p.name, sel, substr, last, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *page) value(sel string) string {
	return p.str(fmt.Sprintf(`(document.querySelector(%q)||{}).value||""`, sel))
}

// typeInto replaces a field's content by typing, as a user would.
func (p *page) typeInto(sel, text string) {
	p.e.t.Helper()
	p.waitJS(sel, fmt.Sprintf(`document.querySelector(%q)`, sel))
	p.redrawn("type into "+sel, func() {
		p.js(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.select && el.select(); })()`, sel))
	}, chromedp.SendKeys(sel, text))
}

// redrawn runs act after prepare, again (up to three times) when the page
// replaced the element between the lookup and the action: a teammate's
// push or a run's progress draws a panel anew at any moment.
func (p *page) redrawn(what string, prepare func(), act chromedp.Action[chromedp.Void]) {
	p.e.t.Helper()
	for attempt := 0; ; attempt++ {
		prepare()
		ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
		err := chromedp.Do(ctx, act)
		cancel()
		if err == nil {
			return
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "Could not find node") {
			p.e.t.Fatalf("%s: %s: %v", p.name, what, err)
		}
	}
}

// choose sets a select's or an input's value and fires change, as picking
// from a list does.
func (p *page) choose(sel, value string) {
	p.e.t.Helper()
	p.waitJS(sel, fmt.Sprintf(`document.querySelector(%q)`, sel))
	p.js(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.focus(); el.value = %q;
		el.dispatchEvent(new Event("input", {bubbles: true})); el.dispatchEvent(new Event("change", {bubbles: true})); })()`, sel, value))
}

func (p *page) click(sel string) {
	p.e.t.Helper()
	p.redrawn("click "+sel, func() {
		p.waitJS(sel+" enabled", fmt.Sprintf(`(el => el && !el.disabled)(document.querySelector(%q))`, sel))
	}, chromedp.Click(sel))
}

func (p *page) goTo(hash string) {
	p.e.t.Helper()
	p.do(chromedp.Navigate(p.base + "/" + hash))
}

var shotMu sync.Mutex

// shot saves a full-page screenshot and returns its path.
func (p *page) shot(name string) string {
	shotMu.Lock()
	defer shotMu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.e.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(screenDir(p.e.t), name+".png")
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.e.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	p.e.t.Logf("screenshot: %s", path)
	return path
}

// createCampaign makes a campaign through the list page and returns its id.
func (p *page) createCampaign(name string) string {
	p.e.t.Helper()
	p.goTo("#/")
	p.waitJS("campaign list", `document.querySelector("#create-campaign input")`)
	p.typeInto("#create-campaign input", name)
	p.click("#create-campaign button[type=submit]")
	p.waitJS("editor", `location.hash.startsWith("#/c/")`)
	id := strings.Split(strings.TrimPrefix(p.str("location.hash"), "#/c/"), "/")[0]
	p.waitIndicator("All changes saved")
	return id
}

func (p *page) openCampaign(id, tab string) {
	p.e.t.Helper()
	p.goTo("#/c/" + id + "/" + tab)
	p.waitIndicator("All changes saved")
}

func (p *page) waitIndicator(substr string) {
	p.e.t.Helper()
	p.waitText("#save-state", substr)
}

// TestBrowserEditor: two teammates, each in their own browser context, on
// one campaign.
func TestBrowserEditor(t *testing.T) {
	e := newE2E(t)
	px := testenv.NewRelay(t, e.addr) // Bob's network: it can be held
	ann := e.open("Ann", "http://"+e.addr)
	bob := e.open("Bob", "http://"+px.Addr())
	ann.shot("screen-campaign-list")

	id := ann.createCampaign("Spring sale")
	bob.openCampaign(id, "details")

	e.run("live edit, presence, autosave", func(t *testing.T) {
		ann.typeInto("#f-description", "Twenty percent off everything")
		bob.waitJS("Ann's text in Bob's browser", `document.querySelector("#f-description").value === "Twenty percent off everything"`)
		// Presence: Bob moves to the Message tab, Ann sees it.
		bob.click("#tab-message")
		ann.waitJS("Bob on the Message tab", `document.querySelector('#presence [data-user="bob"][data-tab="message"]')`)
		ann.waitText("#presence", "Bob · Message")
		// The field Ann is in shows in Bob's presence list.
		ann.js(`document.querySelector("#f-goal").focus()`)
		bob.waitJS("Ann in the goal field", `document.querySelector('#presence [data-user="ann"][data-field="/goal"]')`)
		ann.waitIndicator("All changes saved at")
		if got := e.draftField(id, "description"); got != "Twenty percent off everything" {
			t.Fatalf("store holds description %v", got)
		}
		ann.shot("screen-editor-details")
		bob.click("#tab-details")
	})

	e.run("first writer wins, the other sees the conflict banner", func(t *testing.T) {
		px.Hold() // Bob hears nothing from now on: he edits an old version
		before := conflicts()
		ann.typeInto("#f-name", "Alpha launch")
		ann.waitIndicator("All changes saved at")
		bob.typeInto("#f-name", "Bravo launch")
		e.eventually("the server to refuse Bob's edit", 10*time.Second, func() bool { return conflicts() > before })
		px.Release()
		bob.waitJS("conflict banner", `!document.querySelector("#conflict").hidden`)
		bob.waitText("#conflict", "Ann")
		bob.waitText("#conflict", "Campaign name")
		bob.waitText("#conflict", "Alpha launch")
		bob.waitJS("winner's value in the field", `document.querySelector("#f-name").value === "Alpha launch"`)
		bob.shot("screen-conflict-banner")
		bob.waitIndicator("All changes saved")
		if got := e.draftField(id, "name"); got != "Alpha launch" {
			t.Fatalf("store holds name %v, want the first writer's", got)
		}
	})

	e.run("full-screen editor is staged until Done", func(t *testing.T) {
		ann.click("#tab-message")
		ann.click("#open-email")
		ann.waitJS("editor", `document.querySelector("#message-editor")`)
		ann.waitJS("focus in the editor", `document.querySelector("#message-editor").contains(document.activeElement)`)
		ann.typeInto("#ed-subject", "Spring is here")
		ann.typeInto("#ed-html", "<h1>Hello spring</h1>")
		ann.waitJS("preview", `document.querySelector("#message-editor iframe").srcdoc.includes("Hello spring")`)
		ann.shot("screen-message-editor")
		// Staged, not saved: wait past the stage debounce and two autosave intervals.
		time.Sleep(2500 * time.Millisecond)
		if got := e.draftField(id, "messages", "email", "subject"); got != "" {
			t.Fatalf("staged subject reached the store before Done: %v", got)
		}
		bob.click("#tab-message")
		if got := bob.text("#email-subject"); strings.Contains(got, "Spring is here") {
			t.Fatalf("staged subject shown to a teammate: %q", got)
		}
		// A reload offers the staged content back.
		ann.do(chromedp.Reload())
		ann.waitIndicator("All changes saved")
		ann.click("#open-email")
		ann.waitJS("staged content offered back", `document.querySelector("#ed-subject").value === "Spring is here"`)
		ann.waitJS("notice", `!document.querySelector("#editor-notice").hidden`)
		ann.click("#editor-done")
		ann.waitJS("editor closed", `!document.querySelector("#message-editor")`)
		ann.waitJS("focus back on the button", `document.activeElement && document.activeElement.id === "open-email"`)
		e.eventually("subject in the store after Done", 5*time.Second, func() bool {
			return e.draftField(id, "messages", "email", "subject") == "Spring is here"
		})
		bob.waitText("#email-subject", "Spring is here")
	})

	e.run("save audience from the canvas", func(t *testing.T) {
		var ndjson strings.Builder
		for i := 0; i < 40; i++ {
			country := []string{"FR", "DE"}[i%2]
			fmt.Fprintf(&ndjson, `{"id":"p%03d","country":%q,"email":"p%03d@example.com","age":%d}`+"\n", i, country, i, 20+i)
		}
		e.api("POST", "/v1/profiles", "application/x-ndjson", ndjson.String())

		ann.click("#tab-canvas")
		bob.click("#tab-canvas")
		build := ann.addActivity("build_audience")
		ann.choose(`[data-key="`+build+`.rule.0.field"]`, "country")
		ann.choose(`[data-key="`+build+`.rule.0.value"]`, "FR")
		ann.choose(`[data-key="`+build+`.columns"]`, "email, country")
		save := ann.addActivity("save_audience")
		ann.typeInto("#"+save+"-label", "French shoppers")
		ann.selectNode(build)
		ann.choose("#"+build+"-connect-to", save)
		ann.click("#" + build + "-connect")
		ann.waitJS("transition", `document.querySelector('#transitions [data-to="`+save+`"]')`)
		bob.waitJS("Bob sees the canvas", `document.querySelector("#node-`+save+`")`)
		ann.selectNode(build)
		ann.click("#run-" + build)
		ann.waitText("#result-"+build, "20")
		bob.waitText("#node-"+build+" .node-count", "20 profiles")
		ann.selectNode(save)
		ann.click("#run-" + save)
		ann.waitText("#saved-"+save, "Created")
		ann.waitText("#saved-"+save, "20")
		bob.selectNode(save)
		bob.waitText("#saved-"+save, "French shoppers")
		bob.waitText("#saved-"+save, "20")
		ann.waitText("#transitions", "20")
		ann.shot("screen-audience-canvas")

		ann.goTo("#/audiences")
		ann.waitText("#audiences", "French shoppers")
		ann.typeInto("#audience-search", "french")
		ann.waitJS("search result", `document.querySelectorAll("#audiences tbody tr").length === 1`)
		ann.shot("screen-audiences")
		ann.click(`#audiences a`)
		ann.waitText("#audience-title", "French shoppers")
		ann.waitJS("columns", `[...document.querySelectorAll("#audience-rows th")].map(th => th.textContent).join(",") === "id,email,country"`)
		ann.waitText("#page-info", "of 20")
		if n := ann.js(`document.querySelectorAll("#audience-rows tbody tr").length`); n != float64(20) {
			t.Fatalf("rows shown: %v", n)
		}
		ann.shot("screen-audience-detail")
	})

	e.run("history lists versions and restores one", func(t *testing.T) {
		ann.openCampaign(id, "history")
		ann.waitJS("versions", `document.querySelectorAll("#versions tbody tr").length >= 3`)
		ann.waitText("#versions", "editor")
		ann.shot("screen-history")
	})
}

// run runs a subtest whose helpers report to the subtest itself.
func (e *e2e) run(name string, fn func(t *testing.T)) {
	parent := e.t
	parent.Run(name, func(t *testing.T) {
		e.t = t
		defer func() { e.t = parent }()
		fn(t)
	})
	if parent.Failed() {
		parent.FailNow() // later steps build on this one
	}
}

func conflicts() float64 {
	return testutil.ToFloat64(metrics.Conflicts)
}

// TestBrowserSurvivesServerRestart: the server goes away under an open
// editor; the editor says so, keeps what is typed meanwhile, reconnects
// with backoff and saves it.
func TestBrowserSurvivesServerRestart(t *testing.T) {
	e := newE2E(t)
	ann := e.open("Ann", "http://"+e.addr)
	id := ann.createCampaign("Restart drill")
	ann.typeInto("#f-description", "typed before")
	ann.waitIndicator("All changes saved at")

	e.stopServer() // sessions closed with 1001, drafts flushed, Redis gone
	ann.waitIndicator("Offline — changes kept")
	ann.typeInto("#f-description", "typed while the server was down")
	ann.typeInto("#f-goal", "survive restarts")
	time.Sleep(400 * time.Millisecond) // past the typing pause: the edits are queued, not sent
	ann.waitIndicator("Offline — changes kept")
	ann.shot("screen-offline")

	e.startServer() // a fresh in-process Redis: a new epoch, the client resyncs
	ann.waitIndicator("All changes saved at")
	if got := e.draftField(id, "description"); got != "typed while the server was down" {
		t.Fatalf("store holds description %v", got)
	}
	if got := e.draftField(id, "goal"); got != "survive restarts" {
		t.Fatalf("store holds goal %v", got)
	}
	if v := ann.value("#f-description"); v != "typed while the server was down" {
		t.Fatalf("editor shows %q after reconnecting", v)
	}
}

// addActivity adds an activity from the palette and returns its id (the
// new node is selected).
func (p *page) addActivity(typ string) string {
	p.e.t.Helper()
	before := p.js(`[...document.querySelectorAll(".node")].map((n) => n.dataset.id).join(",")`)
	p.click(`.palette-item[data-type="` + typ + `"]`)
	p.waitJS("a new "+typ+" node", fmt.Sprintf(`[...document.querySelectorAll(".node.type-%s")].some((n) => !%q.split(",").includes(n.dataset.id))`, typ, before))
	return p.str(fmt.Sprintf(`[...document.querySelectorAll(".node.type-%s")].map((n) => n.dataset.id).find((id) => !%q.split(",").includes(id))`, typ, before))
}

// selectNode selects a node as a click would (Enter on it).
func (p *page) selectNode(id string) {
	p.e.t.Helper()
	p.waitJS("node "+id, `document.querySelector("#node-`+id+`")`)
	p.js(`document.querySelector("#node-` + id + `").focus()`)
	p.do(chromedp.KeyEvent("\r"))
	p.waitJS("inspector of "+id, `document.querySelector('#inspector[data-id="`+id+`"]')`)
}

// center returns the middle of an element (in the viewport), scrolling
// it into view first.
func (p *page) center(sel string) (float64, float64) {
	p.e.t.Helper()
	p.waitJS(sel, fmt.Sprintf(`document.querySelector(%q)`, sel))
	r := p.js(fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.scrollIntoView({block: "center", inline: "center"});
		const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, sel)).([]any)
	return r[0].(float64), r[1].(float64)
}

// drag presses the mouse at one point, moves it in steps and releases it
// at another, as a hand would.
func (p *page) drag(x0, y0, x1, y1 float64) {
	p.e.t.Helper()
	p.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x0, y0, chromedp.ButtonLeft, func(m *input.DispatchMouseEventParams) { m.ClickCount = 1 }))
	for i := 1; i <= 10; i++ {
		f := float64(i) / 10
		p.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x0+(x1-x0)*f, y0+(y1-y0)*f, chromedp.ButtonLeft, func(m *input.DispatchMouseEventParams) { m.Buttons = 1 }))
		time.Sleep(30 * time.Millisecond)
	}
	p.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x1, y1, chromedp.ButtonLeft, func(m *input.DispatchMouseEventParams) { m.ClickCount = 1 }))
}
