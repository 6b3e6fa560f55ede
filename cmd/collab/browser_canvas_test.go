package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/store"
)

// slowStore makes counts wait for their context while slow is set: a run
// that takes as long as the user lets it, to be cancelled.
type slowStore struct {
	store.Store
	slow *atomic.Bool
}

func (s slowStore) CountPopulation(ctx context.Context, p audience.Population) (int64, error) {
	if s.slow.Load() {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return s.Store.CountPopulation(ctx, p)
}

// TestBrowserAudienceCanvas: the canvas as an Adobe Journey Optimizer user
// drives it, two teammates on one campaign and a third who comes later:
// nodes from the palette (mouse and keyboard), the rule builder's
// attribute picker and live count, a typo flagged before running, an error
// in plain words, connecting and moving by dragging and with the keyboard,
// a teammate's selection on the node, counts on the arrows for everyone, a
// late joiner seeing the last counts, a cancelled run, the audiences list
// and its CSV, and the canvas at 1280 and 390 px.
func TestBrowserAudienceCanvas(t *testing.T) {
	var slow atomic.Bool
	e := newE2E(t, func(st store.Store) store.Store { return slowStore{Store: st, slow: &slow} })
	var ndjson strings.Builder
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&ndjson, `{"id":"p%03d","country":%q,"email":"p%03d@example.com","signup":"2025-0%d-01T00:00:00Z"}`+"\n", i, []string{"FR", "DE"}[i%2], i, 1+i%9)
	}
	e.api("POST", "/v1/profiles", "application/x-ndjson", ndjson.String())
	ann := e.open("Ann", "http://"+e.addr)
	bob := e.open("Bob", "http://"+e.addr)
	id := ann.createCampaign("Autumn audiences")
	ann.openCampaign(id, "canvas")
	bob.openCampaign(id, "canvas")

	var build, save string
	e.run("build audience from the palette, with the attribute picker and a live count", func(t *testing.T) {
		build = ann.addActivity("build_audience")
		ann.typeInto("#"+build+"-name", "French")
		field := `[data-key="` + build + `.rule.0.field"]`
		ann.waitJS("attributes offered", `[...document.querySelectorAll("#attr-keys option")].map((o) => o.value).includes("country")`)
		ann.choose(field, "country")
		ann.waitText(`#inspector .attr-hint`, "string · 100% filled")
		// The operators fit a string; values are offered from frequent ones.
		ops := ann.js(`[...document.querySelector('[data-key="` + build + `.rule.0.op"]').options].map((o) => o.value).join(",")`)
		if strings.Contains(ops.(string), "within_days") || !strings.Contains(ops.(string), "starts_with") {
			t.Fatalf("operators for a string: %v", ops)
		}
		ann.waitJS("values offered", `[...document.querySelectorAll("#inspector datalist option")].map((o) => o.value).includes("FR")`)
		ann.choose(`[data-key="`+build+`.rule.0.value"]`, "FR")
		ann.waitText("#live-"+build, "20 profiles")
		bob.waitText("#node-"+build, "French")
		ann.shot("screen-canvas-rule-builder")
	})

	e.run("a typo'd attribute is flagged before running", func(t *testing.T) {
		ann.click(`[data-key="` + build + `.rule.addc"]`)
		ann.waitJS("second condition", `document.querySelector('[data-key="`+build+`.rule.1.field"]')`)
		ann.choose(`[data-key="`+build+`.rule.1.field"]`, "signup date")
		ann.waitText("#live-"+build+" .unknown-attrs", "No profile has the attribute “signup date” — did you mean “signup”?")
		ann.waitJS("field marked", `document.querySelector('[data-key="`+build+`.rule.1.field"]').classList.contains("unknown")`)
		ann.shot("screen-canvas-unknown-attribute")
		ann.click(`[data-key="` + build + `.rule.1.field"] ~ button[aria-label="Remove condition"]`)
		ann.waitJS("typo gone", `!document.querySelector("#live-`+build+` .unknown-attrs")`)
	})

	e.run("save audience by keyboard; an unconnected one says so in plain words", func(t *testing.T) {
		before := ann.js(`[...document.querySelectorAll(".node")].length`).(float64)
		ann.js(`document.querySelector('.palette-item[data-type="save_audience"]').focus()`)
		ann.do(chromedp.KeyEvent("\r"))
		ann.waitJS("save node", fmt.Sprintf(`document.querySelectorAll(".node").length === %v`, before+1))
		save = ann.str(`document.querySelector(".node.type-save_audience").dataset.id`)
		ann.typeInto("#"+save+"-name", "Subscribers")
		ann.typeInto("#"+save+"-label", "French subscribers")
		ann.click("#run-" + save)
		ann.waitText("#error-"+save, `Save audience "Subscribers" has no incoming activity: connect one`)
	})

	e.run("connect by dragging from the output port; move by dragging and by keyboard", func(t *testing.T) {
		x0, y0 := ann.center(`#node-` + build + ` .port.out`)
		x1, y1 := ann.center(`#node-` + save + ` .node-box`)
		ann.drag(x0, y0, x1, y1)
		ann.waitJS("transition drawn", `document.querySelector('.edge[data-from="`+build+`"][data-to="`+save+`"]')`)
		bob.waitJS("Bob sees the arrow", `document.querySelector('.edge[data-from="`+build+`"][data-to="`+save+`"]')`)
		// Move the build node down by dragging its body.
		bx, by := ann.center(`#node-` + build + ` .node-label`)
		ann.drag(bx, by, bx, by+120)
		ann.waitJS("moved in the document", `(document.querySelector("#node-`+build+`").getAttribute("transform") || "").match(/translate\(\d+ (\d+)\)/)[1] > 100`)
		moved := ann.str(`document.querySelector("#node-` + build + `").getAttribute("transform")`)
		bob.waitJS("Bob sees the move", `document.querySelector("#node-`+build+`").getAttribute("transform") === `+fmt.Sprintf("%q", moved))
		// Keyboard: three steps right.
		x := ann.js(`+document.querySelector("#node-` + save + `").getAttribute("transform").match(/translate\((\d+)/)[1]`).(float64)
		for i := 0; i < 3; i++ {
			ann.js(`document.querySelector("#node-` + save + `").focus()`)
			ann.do(chromedp.KeyEvent(kb.ArrowRight))
		}
		bob.waitJS("Bob sees the keyboard move", fmt.Sprintf(`+document.querySelector("#node-%s").getAttribute("transform").match(/translate\((\d+)/)[1] === %v`, save, x+30))
	})

	e.run("a teammate's selection shows on the node", func(t *testing.T) {
		bob.selectNode(save)
		ann.waitJS("Bob on the save node", `document.querySelector("#node-`+save+`").classList.contains("held")`)
		ann.waitText("#node-"+save+" .node-holder", "Bob")
	})

	e.run("a click is not lost to a teammate's change between press and release", func(t *testing.T) {
		// A teammate's change redraws the panel; one that lands while the
		// Run button is held down must not swallow the click.
		bob.click("#tab-details")
		ann.selectNode(build)
		x, y := ann.center("#run-" + build)
		ann.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, x, y, chromedp.ButtonLeft, func(m *input.DispatchMouseEventParams) { m.ClickCount = 1 }))
		bob.typeInto("#f-name", "Autumn audiences, renamed")
		ann.waitText("#campaign-title", "renamed") // the change reached Ann while she holds the button
		ann.do(chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, x, y, chromedp.ButtonLeft, func(m *input.DispatchMouseEventParams) { m.ClickCount = 1 }))
		ann.waitText("#result-"+build, "20")
		bob.click("#tab-canvas")
		bob.waitJS("Bob back on the canvas", `document.querySelector("#node-`+save+`")`)
	})

	e.run("a run's counts reach every teammate and stay for a late joiner", func(t *testing.T) {
		ann.selectNode(save)
		ann.click("#run-" + save)
		ann.waitText("#saved-"+save, "Created")
		ann.waitText("#saved-"+save, "20")
		ann.waitText(`.edge[data-to="`+save+`"] .edge-count`, "20")
		bob.waitText(`.edge[data-to="`+save+`"] .edge-count`, "20")
		bob.waitText("#node-"+save+" .node-count", "20 profiles")
		ann.shot("screen-canvas-1280")
		cid := e.open("Cid", "http://"+e.addr)
		cid.openCampaign(id, "canvas")
		cid.waitText("#node-"+save+" .node-count", "20 profiles")
		cid.waitText(`.edge[data-to="`+save+`"] .edge-count`, "20")
		cid.selectNode(save)
		cid.waitText("#saved-"+save, "French subscribers")
		cid.shot("screen-canvas-late-joiner")
	})

	e.run("a long run shows progress and can be cancelled", func(t *testing.T) {
		slow.Store(true)
		defer slow.Store(false)
		ann.selectNode(build)
		ann.click("#run-" + build)
		ann.waitJS("running", `document.querySelector("#cancel-`+build+`")`)
		ann.shot("screen-canvas-running")
		ann.click("#cancel-" + build)
		ann.waitText("#error-"+build, "Run cancelled")
		ann.waitJS("run button back", `!document.querySelector("#run-`+build+`").disabled`)
	})

	e.run("audiences: sortable, searchable, size history, CSV", func(t *testing.T) {
		ann.goTo("#/audiences")
		row := `#audiences tbody tr`
		ann.waitText(row, "French subscribers")
		ann.waitText(row, "Autumn audiences › Save audience \"Subscribers\"")
		ann.waitText(row, "ann")
		ann.click(`#audiences th button[data-sort="count"]`)
		ann.waitJS("sorted by count", `document.querySelector('#audiences th[aria-sort="descending"] button[data-sort="count"]')`)
		ann.typeInto("#audience-search", "autumn") // by campaign name
		ann.waitJS("found by campaign", `document.querySelectorAll("#audiences tbody tr[data-id]").length === 1`)
		ann.shot("screen-audiences-list")
		aud := ann.str(`document.querySelector("#audiences tbody tr[data-id]").dataset.id`)
		tok, _ := e.srv.signer.Sign(auth.Claims{User: "e2e", Workspace: "demo", Role: auth.Viewer}, time.Hour)
		req, _ := http.NewRequest("GET", "http://"+e.addr+"/v1/audiences/"+aud+"/members.csv", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if resp.StatusCode != 200 || len(lines) != 21 || lines[0] != "id" {
			t.Fatalf("CSV: %d, %d lines, header %q", resp.StatusCode, len(lines), lines[0])
		}
		ann.click(`#audiences tbody tr[data-id] a`)
		ann.waitJS("CSV link", `document.querySelector("#audience-csv")`)
	})

	e.run("390 px: the canvas scrolls within itself, the page does not", func(t *testing.T) {
		ann.do(chromedp.EmulateViewport(390, 844))
		defer ann.do(chromedp.EmulateViewport(1280, 900))
		ann.openCampaign(id, "canvas")
		ann.waitJS("nodes", `document.querySelector("#node-`+save+`")`)
		if w := ann.js(`document.documentElement.scrollWidth`).(float64); w > 390 {
			t.Fatalf("canvas page is %v px wide at 390; widest: %v", w, ann.js(`[...document.querySelectorAll("main *")].filter((el) => el.getBoundingClientRect().right > 392).slice(0, 5).map((el) => el.tagName + "." + el.className + "#" + el.id + " " + Math.round(el.getBoundingClientRect().right)).join("; ")`))
		}
		ann.shot("screen-canvas-390")
	})
}
