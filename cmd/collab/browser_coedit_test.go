package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/collab-dev/collab/internal/testenv"
)

// TestBrowserCoEditing: what two teammates expect of a real-time editor,
// each point in its own step: a live campaign list, typing seen as it
// happens, soft locks on fields and messages, names and colours, a save
// inside the full-screen editor, the bugs users hit (each step says which),
// a launch checklist, history that helps, and a phone-sized screen.
func TestBrowserCoEditing(t *testing.T) {
	e := newE2E(t)
	px := testenv.NewRelay(t, e.addr) // Bob's network: it can go down
	ann := e.open("Ann", "http://"+e.addr)
	bob := e.open("Bob", "http://"+px.Addr())

	var id string
	e.run("campaign list is live: a teammate's creation and rename show without reload", func(t *testing.T) {
		bob.goTo("#/")
		bob.waitJS("Bob's list", `document.querySelector("#campaigns tbody")`)
		id = ann.createCampaign("Live list")
		bob.waitJS("the new campaign in Bob's list", `document.querySelector('#campaigns tr[data-id="`+id+`"]')`)
		bob.waitText(`#campaigns tr[data-id="`+id+`"]`, "Live list")
		ann.typeInto("#f-name", "Autumn launch")
		bob.waitText(`#campaigns tr[data-id="`+id+`"]`, "Autumn launch")
		bob.shot("screen-live-campaign-list")
	})

	e.run("typing streams to the teammate while it happens", func(t *testing.T) {
		bob.openCampaign(id, "details")
		ann.js(`(() => { const el = document.querySelector("#f-description"); window.__typed = [];
			el.addEventListener("input", () => window.__typed.push([el.value.length, Date.now()])); el.focus(); })()`)
		bob.js(`(() => { const el = document.querySelector("#f-description"); window.__seen = []; let last = el.value.length;
			window.__watch = setInterval(() => { const n = el.value.length; if (n !== last) { window.__seen.push([n, Date.now()]); last = n; } }, 4); })()`)
		const text = "Twenty percent off all autumn boots" // 35 characters at 5 a second: 7 s
		for _, ch := range text {
			ann.do(chromedp.SendKeys("#f-description", string(ch)))
			time.Sleep(200 * time.Millisecond)
		}
		bob.waitJS("the whole text at Bob's", `document.querySelector("#f-description").value === `+fmt.Sprintf("%q", text))
		typed := pairs(ann.js(`window.__typed`))
		seen := pairs(bob.js(`window.__seen`))
		var lat []float64
		for _, k := range typed {
			for _, s := range seen {
				if s[0] >= k[0] {
					lat = append(lat, s[1]-k[1])
					break
				}
			}
		}
		// Live, not on a pause: Bob's field went through most of the
		// intermediate lengths while Ann typed (with the old 250 ms pause
		// before sending, at 200 ms a key, it saw only the end).
		if len(seen) < len(text)/2 || len(lat) != len(text) {
			t.Fatalf("Bob saw %d states of %d keystrokes: typing is not live (%v)", len(seen), len(text), seen)
		}
		sort.Float64s(lat)
		p50, p99 := lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
		report := fmt.Sprintf("typing to teammate (headless Chromium, embedded default, 5 keys/s for 7 s, %d keys): p50 %.0f ms, p99 %.0f ms, max %.0f ms; %d intermediate states seen\n",
			len(lat), p50, p99, lat[len(lat)-1], len(seen))
		t.Log(report)
		os.WriteFile(filepath.Join(screenDir(t), "typing-latency.txt"), []byte(report), 0o644)
	})

	e.run("soft locks: the field a teammate is in shows their name and colour, and typing there warns", func(t *testing.T) {
		ann.js(`document.querySelector("#f-goal").focus()`)
		bob.waitJS("goal outlined at Bob's", `document.querySelector("#f-goal").classList.contains("locked")`)
		bob.waitText("#f-goal ~ .lock", "Ann is editing")
		if c := bob.str(`getComputedStyle(document.querySelector("#f-goal ~ .lock")).backgroundColor`); c == "" || c == "rgba(0, 0, 0, 0)" {
			t.Fatalf("lock badge has no colour: %q", c)
		}
		// The chip in the header uses the same colour and the display name.
		if a, b := bob.str(`document.querySelector('#presence [data-user="ann"]').style.getPropertyValue("--peer")`),
			bob.str(`document.querySelector("#f-goal ~ .lock").style.getPropertyValue("--peer")`); a == "" || a != b {
			t.Fatalf("presence colour %q, lock colour %q", a, b)
		}
		bob.waitText(`#presence [data-user="ann"]`, "Ann · Details")
		bob.js(`document.querySelector("#f-goal").focus()`)
		bob.do(chromedp.SendKeys("#f-goal", "x"))
		bob.waitText(".lock-warning", "Ann is editing this field too")
		bob.shot("screen-soft-lock")
		ann.js(`document.querySelector("#f-goal").blur()`)
		bob.waitJS("lock gone when Ann leaves the field", `!document.querySelector("#f-goal").classList.contains("locked") && !document.querySelector("#f-goal ~ .lock")`)
		bob.js(`document.querySelector("#f-goal").blur()`)
	})

	e.run("a message a teammate has open in the full-screen editor says so, before typing", func(t *testing.T) {
		ann.click("#tab-message")
		bob.click("#tab-message")
		ann.click("#open-email")
		ann.waitJS("Ann's editor", `document.querySelector("#message-editor")`)
		bob.waitText("#email-card .editor-lock", "Ann has this open in the full-screen editor")
		bob.click("#open-email")
		bob.waitText("#editor-notice", "Ann has this message open in the full-screen editor too")
		bob.shot("screen-editor-already-open")
		bob.click("#editor-cancel")
		bob.waitJS("Bob's editor closed", `!document.querySelector("#message-editor")`)
	})

	e.run("save inside the full-screen editor keeps it open and makes it durable; Done shows on one's own card at once", func(t *testing.T) {
		ann.typeInto("#ed-subject", "Autumn is here")
		ann.click("#editor-save")
		ann.waitText("#editor-status", "Saved at")
		if !ann.js(`!!document.querySelector("#message-editor")`).(bool) {
			t.Fatal("the editor closed on Save")
		}
		if got := e.draftField(id, "messages", "email", "subject"); got != "Autumn is here" {
			t.Fatalf("store holds subject %v after a save in the editor", got)
		}
		bob.waitText("#email-subject", "Autumn is here")
		ann.shot("screen-editor-saved")
		ann.typeInto("#ed-subject", "Autumn is really here")
		ann.click("#editor-done")
		ann.waitJS("editor closed", `!document.querySelector("#message-editor")`)
		// Bug: one's own card stayed "Subject: —" until a tab switch.
		ann.waitText("#email-subject", "Autumn is really here")
	})

	e.run("a message conflict reads as words, not JSON", func(t *testing.T) {
		bob.click("#open-in-app")
		bob.waitJS("Bob's in-app editor", `document.querySelector("#message-editor")`)
		bob.typeInto("#ed-title", "Bob's title")
		ann.click("#open-in-app")
		ann.typeInto("#ed-title", "Ann's title")
		ann.click("#editor-done")
		ann.waitJS("Ann's editor closed", `!document.querySelector("#message-editor")`)
		bob.click("#editor-done")
		bob.waitText("#editor-status", "A teammate changed this message")
		bob.waitText("#conflict", "Ann")
		bob.waitText("#conflict", "title: Ann's title")
		if txt := bob.text("#conflict"); strings.Contains(txt, `{"`) {
			t.Fatalf("conflict banner shows raw JSON: %q", txt)
		}
		bob.shot("screen-message-conflict")
		bob.click("#editor-cancel")
	})

	e.run("schedule: the Send choice starts set, and one's own choice shows its field", func(t *testing.T) {
		ann.click("#tab-schedule")
		if v := ann.value("#f-delivery-mode"); v != "immediate" {
			t.Fatalf("Send starts as %q", v) // bug: it started blank
		}
		ann.choose("#f-delivery-mode", "scheduled")
		ann.waitJS("Send at for the one who chose it", `document.querySelector("#f-send-at")`) // bug: only teammates saw it
		bob.click("#tab-schedule")
		bob.waitJS("Send at for the teammate", `document.querySelector("#f-send-at")`)
		ann.shot("screen-schedule")
	})

	e.run("presence clears while offline", func(t *testing.T) {
		bob.waitJS("Ann in Bob's presence", `document.querySelector('#presence [data-user="ann"]')`)
		px.SetDown(true)
		bob.waitIndicator("Offline")
		bob.waitJS("no chips while offline", `document.querySelectorAll("#presence .peer").length === 0`)
		bob.shot("screen-offline-presence")
		px.SetDown(false)
		bob.waitJS("chips back online", `document.querySelector('#presence [data-user="ann"]')`)
	})

	e.run("launch: a checklist with links to what is missing, then a deliberate launch", func(t *testing.T) {
		ann.click(`#lifecycle [data-action="launch"]`)
		ann.waitJS("launch dialog", `document.querySelector("#launch-dialog")`)
		ann.waitText("#launch-problems", "audience canvas is empty")
		ann.waitText("#launch-confirm", "Launch anyway")
		ann.shot("screen-launch-checklist")
		ann.click(`#launch-problems [data-path="/canvas"] a`)
		ann.waitJS("dialog closed on the canvas tab", `!document.querySelector("#launch-dialog") && document.querySelector("#tab-canvas").getAttribute("aria-selected") === "true"`)
		ann.click(`#lifecycle [data-action="launch"]`)
		ann.waitText("#launch-confirm", "Launch anyway")
		ann.click("#launch-confirm")
		ann.waitText("#campaign-status", "active")
		ann.waitText("#banner", "launched with problems left")
		// Success banners go on the next tab (bug: they stayed for minutes).
		ann.click("#tab-details")
		ann.waitJS("banner gone", `document.querySelector("#banner").textContent === ""`)
	})

	e.run("history: sessions of work, seconds, names, labels, a diff, a previewed restore recorded as such", func(t *testing.T) {
		// Timer saves (1 s here) while Ann types: several autosaves by one person.
		for i := 0; i < 3; i++ {
			ann.typeInto("#f-goal", fmt.Sprintf("Goal %d", i))
			ann.waitIndicator("All changes saved at")
			time.Sleep(1100 * time.Millisecond)
		}
		ann.click("#tab-history")
		ann.waitJS("a group of autosaves", `document.querySelector("#versions tr.group")`)
		ann.click("#versions tr.group .expand")
		ann.waitJS("its versions shown", `[...document.querySelectorAll("#versions tr.child")].some((tr) => !tr.hidden)`)
		if s := ann.text("#versions tbody tr td:nth-child(2)"); !regexp.MustCompile(`\d\d:\d\d:\d\d`).MatchString(s) {
			t.Fatalf("time without seconds: %q", s)
		}
		for _, who := range ann.js(`[...document.querySelectorAll("#versions .who")].map((w) => w.textContent)`).([]any) {
			if who != "Ann" && who != "Bob" {
				t.Fatalf("history shows %q, not a name", who) // bug: login ids
			}
		}
		ann.shot("screen-history-grouped")

		// Name the first version, then compare it with now and restore it.
		ann.click(`#versions tr[data-version="1"] .label-version`)
		ann.typeInto(`#versions tr[data-version="1"] .label-input`, "Brief from marketing\n")
		ann.waitText(`#versions tr[data-version="1"] .version-label`, "Brief from marketing")
		ann.click(`#versions tr[data-version="1"] .compare`)
		ann.waitText("#version-diff", "Campaign name: “Live list” → “Autumn launch”")
		ann.click(`#versions tr[data-version="1"] .restore-version`)
		ann.waitText("#version-detail h2", "Restore version 1?")
		ann.waitText("#version-diff", "Campaign name: “Autumn launch” → “Live list”")
		ann.shot("screen-restore-preview")
		ann.click("#confirm-restore")
		ann.waitText("#banner", "Version 1 restored, saved as v")
		// (A later autosave may already sit above it.)
		ann.waitText("#versions tbody", "restored from v1")
		ann.waitText("#versions tbody tr:has(.badge.restore) .who", "Ann")
		bob.waitText("#banner", "Ann restored version 1")
		ann.shot("screen-history-restored")
	})

	e.run("390 px: the header fits and nothing scrolls sideways", func(t *testing.T) {
		ann.do(chromedp.EmulateViewport(390, 844))
		defer ann.do(chromedp.EmulateViewport(1280, 900))
		for _, tab := range []string{"details", "message", "canvas", "schedule", "history"} {
			ann.openCampaign(id, tab)
			if w := ann.js(`document.documentElement.scrollWidth`).(float64); w > 390 {
				t.Fatalf("%s tab is %v px wide at 390", tab, w)
			}
			if r := ann.js(`Math.max(...[...document.querySelectorAll(".editor-head button, .editor-head #save-state")].map((el) => el.getBoundingClientRect().right))`).(float64); r > 390 {
				t.Fatalf("%s tab: the header reaches %v px at 390", tab, r)
			}
			ann.shot("screen-390-" + tab)
		}
		ann.goTo("#/")
		ann.waitJS("list", `document.querySelector("#campaigns tbody tr")`)
		if w := ann.js(`document.documentElement.scrollWidth`).(float64); w > 390 {
			t.Fatalf("campaign list is %v px wide at 390", w)
		}
		ann.shot("screen-390-list")
	})
}

// pairs reads [[n, ms], ...] from the page.
func pairs(v any) [][2]float64 {
	list, _ := v.([]any)
	out := make([][2]float64, 0, len(list))
	for _, x := range list {
		p := x.([]any)
		out = append(out, [2]float64{p[0].(float64), p[1].(float64)})
	}
	return out
}
