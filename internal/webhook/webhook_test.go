package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_760_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"campaign.saved"}`)
	h := Sign("whsec_a", now, body)
	if !strings.HasPrefix(h, "t=1760000000,v1=") {
		t.Fatalf("header %q", h)
	}
	cases := []struct {
		name   string
		secret string
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"valid", "whsec_a", h, body, now.Add(time.Minute), nil},
		{"another secret", "whsec_b", h, body, now, ErrBadSignature},
		{"body changed", "whsec_a", h, []byte(`{"id":"evt_2","type":"campaign.saved"}`), now, ErrBadSignature},
		{"timestamp changed", "whsec_a", strings.Replace(h, "t=1760000000", "t=1760000001", 1), body, now, ErrBadSignature},
		{"too old", "whsec_a", h, body, now.Add(10 * time.Minute), ErrStale},
		{"malformed", "whsec_a", "v1=abc", body, now, ErrBadSignature},
		{"rotated: one of two matches", "whsec_a", h + ",v1=00", body, now, nil},
	}
	for _, c := range cases {
		if err := Verify(c.secret, c.header, c.body, c.at, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestRetryIsCappedAndJittered(t *testing.T) {
	r := Retry{Base: time.Second, Max: time.Minute, MaxAttempts: 10}
	for attempt := 1; attempt < 10; attempt++ {
		full := min(time.Second<<(attempt-1), time.Minute)
		for i := 0; i < 50; i++ {
			d, ok := r.After(attempt)
			if !ok || d < full/2 || d > full {
				t.Fatalf("attempt %d: %v %v, want within [%v, %v]", attempt, d, ok, full/2, full)
			}
		}
	}
	if _, ok := r.After(10); ok {
		t.Fatal("retried past MaxAttempts")
	}
	if d, ok := (Retry{Base: 100 * time.Millisecond, Max: time.Second}).After(40); !ok || d < 500*time.Millisecond || d > time.Second {
		t.Fatalf("attempt 40 (the shift would overflow): %v %v", d, ok)
	}
	if d, ok := (Retry{Base: time.Second, Max: time.Hour}).After(500); !ok || d > time.Hour {
		t.Fatalf("unbounded retry: %v %v", d, ok)
	}
}

func TestSavedMerge(t *testing.T) {
	a := Saved{Campaign: "c", Version: 2, FromVersion: 2, RevFrom: 1, RevTo: 5, Authors: []string{"ann"}, Trigger: "timer"}
	m := a.Merge(Saved{Campaign: "c", Version: 3, FromVersion: 3, RevFrom: 6, RevTo: 9, Authors: []string{"bob", "ann"}, Trigger: "tab"})
	if m.FromVersion != 2 || m.Version != 3 || m.RevFrom != 1 || m.RevTo != 9 || len(m.Authors) != 2 || m.Trigger != "tab" {
		t.Fatalf("merged %+v", m)
	}
}

func TestCheckURL(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/collab", true},
		{"http://10.0.0.5:8080/in", true},
		{"ftp://hooks.example.com", false},
		{"/relative", false},
		{"https://user:pw@hooks.example.com", false},
		{"https://", false},
		{"https://h.example/" + strings.Repeat("a", 2100), false},
	} {
		if err := CheckURL(c.url); (err == nil) != c.ok {
			t.Errorf("CheckURL(%.40q) = %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

func TestBody(t *testing.T) {
	e := Event{ID: 42, Workspace: `w"1`, Type: CampaignSaved, Payload: []byte(`{"campaign":"c"}`), CreatedAt: time.Unix(0, 0)}
	if got := string(e.Body()); got != `{"id":"evt_42","type":"campaign.saved","workspace":"w\"1","created_at":"1970-01-01T00:00:00Z","data":{"campaign":"c"}}` {
		t.Fatalf("body %s", got)
	}
}
