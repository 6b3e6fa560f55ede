package audience

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Seed generates n realistic demo profiles, one at a time, with country,
// city, email, subscribed, signup date, age, plan and last purchase. The
// same seed value gives the same profiles.
func Seed(n int, seed uint64) func() (Profile, error) {
	type place struct{ country, city string }
	places := []place{{"FR", "Paris"}, {"FR", "Lyon"}, {"FR", "Marseille"}, {"DE", "Berlin"}, {"DE", "Munich"}, {"ES", "Madrid"},
		{"ES", "Barcelona"}, {"IT", "Milan"}, {"IT", "Rome"}, {"GB", "London"}, {"US", "New York"}, {"US", "Austin"}}
	plans := []string{"free", "free", "free", "starter", "pro", "enterprise"}
	first := []string{"ann", "bob", "chloe", "david", "emma", "farid", "giulia", "hugo", "ines", "jonas", "karim", "lea", "marta", "noah"}
	domains := []string{"example.com", "mail.example", "example.fr", "example.de"}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	now := time.Now().UTC()
	i := 0
	return func() (Profile, error) {
		if i >= n {
			return Profile{}, io.EOF
		}
		i++
		pl := places[rng.IntN(len(places))]
		signup := now.Add(-time.Duration(rng.IntN(5*365*24)) * time.Hour)
		attrs := map[string]any{
			"country":    pl.country,
			"city":       pl.city,
			"email":      fmt.Sprintf("%s.%d@%s", first[rng.IntN(len(first))], i, domains[rng.IntN(len(domains))]),
			"subscribed": rng.IntN(10) < 7,
			"signup":     signup.Format(time.RFC3339),
			"age":        18 + rng.IntN(60),
			"plan":       plans[rng.IntN(len(plans))],
		}
		if rng.IntN(4) > 0 {
			attrs["last_purchase"] = signup.Add(time.Duration(rng.Int64N(int64(now.Sub(signup)) + 1))).Format(time.RFC3339)
		}
		raw, _ := json.Marshal(attrs)
		return Profile{ID: fmt.Sprintf("u%07d", i), Attrs: raw}, nil
	}
}
