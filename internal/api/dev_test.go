package api

import (
	"net/http/httptest"
	"testing"

	"github.com/collab-dev/collab/internal/auth"
	"github.com/collab-dev/collab/internal/campaign"
)

func TestDevLoginOnlyWithDevelopmentSecret(t *testing.T) {
	f := newFixture(t) // no DevWorkspace: production
	if code, m := f.do("POST", "/v1/dev/login", "", `{"name":"Ann"}`); code != 404 || errCode(m) != "not_found" {
		t.Fatalf("dev login mounted in production: %d %v", code, m)
	}

	dev := httptest.NewServer(New(Deps{Signer: f.signer, DevWorkspace: "demo", Limits: campaign.DefaultLimits}))
	defer dev.Close()
	f.srv = dev
	cases := []struct {
		body, user string
		code       int
	}{
		{`{"name":"Ann Lee"}`, "ann-lee", 200},
		{`{"name":"  Émile  Zola! "}`, "mile-zola", 200},
		{`{"name":"   "}`, "", 400},
		{`{"name":"!!!"}`, "", 400},
		{`{"nom":"Ann"}`, "", 400},
		{`not json`, "", 400},
	}
	for _, c := range cases {
		code, m := f.do("POST", "/v1/dev/login", "", c.body)
		if code != c.code {
			t.Fatalf("%s: %d %v", c.body, code, m)
		}
		if c.code != 200 {
			continue
		}
		claims, err := f.signer.Verify(m["token"].(string))
		if err != nil || claims.User != c.user || claims.Workspace != "demo" || claims.Role != auth.Admin || claims.Expires.IsZero() {
			t.Fatalf("%s: token %+v %v", c.body, claims, err)
		}
	}
}
