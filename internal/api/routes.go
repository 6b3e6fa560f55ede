package api

import (
	_ "embed"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/collab-dev/collab/internal/errcode"
	"github.com/collab-dev/collab/internal/metrics"
)

// New returns the whole HTTP handler. Every URL collab serves is here.
func New(d Deps) http.Handler {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &server{Deps: d}
	r := chi.NewRouter()
	r.Use(middleware.Recoverer, s.countRequests)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, s.Log, errcode.New(errcode.NotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, s.Log, errcode.New(errcode.Invalid, "method %s not allowed on %s", r.Method, r.URL.Path))
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Handle("/metrics", metrics.Handler())
	r.Get("/v1/openapi.json", serveOpenAPI)
	if d.Sessions != nil {
		r.Handle("/v1/ws", d.Sessions)
	}
	if d.DevWorkspace != "" {
		r.Post("/v1/dev/login", s.devLogin)
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/v1/campaigns", s.createCampaign)
		r.Get("/v1/campaigns", s.listCampaigns)
		r.Get("/v1/campaigns/{id}", s.getCampaign)
		r.Post("/v1/campaigns/{id}/{action:launch|stop|resume|archive}", s.transition)
		r.Get("/v1/campaigns/{id}/checks", s.checks)
		r.Get("/v1/campaigns/{id}/versions", s.versions)
		r.Get("/v1/campaigns/{id}/versions/{v}", s.version)
		r.Patch("/v1/campaigns/{id}/versions/{v}", s.labelVersion)
		r.Post("/v1/campaigns/{id}/versions/{v}/restore", s.restore)
		r.Post("/v1/profiles", s.importProfiles)
		r.Get("/v1/attributes", s.attributes)
		r.Post("/v1/audiences/count", s.countRule)
		r.Get("/v1/audiences", s.listAudiences)
		r.Get("/v1/audiences/{id}", s.getAudience)
		r.Get("/v1/audiences/{id}/members.csv", s.exportAudience)
		r.Put("/v1/schema", s.putSchema)
		r.Get("/v1/schema", s.getSchema)
		r.Delete("/v1/schema", s.deleteSchema)
		r.Post("/v1/webhooks", s.createWebhook)
		r.Get("/v1/webhooks", s.listWebhooks)
		r.Delete("/v1/webhooks/{id}", s.deleteWebhook)
		r.Get("/v1/webhooks/{id}/deliveries", s.webhookDeliveries)
		if d.Extra != nil {
			d.Extra(r)
		}
	})
	if d.Web != nil {
		r.Handle("/*", d.Web)
	}
	return r
}

// countRequests feeds collab_http_requests_total by route pattern, so that
// ids in URLs do not explode the label set.
func (s *server) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" {
			route = "unmatched"
		}
		code := ww.Status()
		if code == 0 {
			code = http.StatusOK
		}
		metrics.HTTPRequests.WithLabelValues(route, r.Method, strconv.Itoa(code)).Inc()
	})
}

// OpenAPI is the description of every route above (OpenAPI 3.1); a test
// holds the two to each other.
//
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
}
