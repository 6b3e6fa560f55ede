package sqlstore

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/audience"
	"github.com/collab-dev/collab/internal/store"
	"github.com/collab-dev/collab/internal/store/storetest"
	"github.com/collab-dev/collab/internal/testenv"
)

// The audience benchmarks run on PostgreSQL with 1M demo profiles (skipped
// without COLLAB_TEST_DATABASE_URL). Run with -benchtime 1x -count 3.

const million = 1_000_000

var (
	seedOnce sync.Once
	seededWS string
)

func benchPG(b *testing.B) *DB {
	s, err := OpenPostgres(context.Background(), testenv.Postgres(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func seeded(b *testing.B, s *DB) string {
	seedOnce.Do(func() {
		seededWS = storetest.ID("bench_")
		if _, err := s.ImportProfiles(context.Background(), seededWS, audience.Seed(million, 7)); err != nil {
			b.Fatal(err)
		}
		s.db.Exec(`ANALYZE profiles`)
	})
	return seededWS
}

// BenchmarkImport_1MProfiles decodes 1M NDJSON lines (about 200 MB,
// generated beforehand) and imports them, as POST /v1/profiles does.
func BenchmarkImport_1MProfiles(b *testing.B) {
	s := benchPG(b)
	var buf bytes.Buffer
	gen := audience.Seed(million, 3)
	for {
		p, err := gen()
		if err != nil {
			break
		}
		buf.WriteString(`{"id":"` + p.ID + `",`)
		buf.Write(p.Attrs[1:])
		buf.WriteByte('\n')
	}
	b.SetBytes(int64(buf.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ws := storetest.ID("imp_")
		dec, _ := audience.NewDecoder(bytes.NewReader(buf.Bytes()), "ndjson")
		start := time.Now()
		rep, err := s.ImportProfiles(context.Background(), ws, dec.Next)
		if err != nil || rep.Imported != million {
			b.Fatalf("%+v %v", rep, err)
		}
		b.ReportMetric(float64(million)/time.Since(start).Seconds(), "rows/s")
		b.StopTimer()
		s.db.Exec(`DELETE FROM profiles WHERE workspace = $1`, ws)
		b.StartTimer()
	}
}

func plan(b *testing.B, s *DB, ws, rule string, cols []string) audience.Population {
	colsJSON, _ := json.Marshal(cols)
	c, err := audience.ParseCanvas(json.RawMessage(`{"activities":{"q":{"type":"build_audience","config":{"rule":` + rule + `,"columns":` + string(colsJSON) + `}}},"transitions":[]}`))
	if err != nil {
		b.Fatal(err)
	}
	p, err := (&audience.Planner{Canvas: c, Workspace: ws, Dialect: s.Dialect()}).Plan("q")
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// floor is a bare INSERT ... SELECT of the same population into a scratch
// audience: what the database needs at least to write those rows.
func floor(b *testing.B, s *DB, p audience.Population) time.Duration {
	ctx := context.Background()
	id := storetest.ID("a_floor_")
	s.db.Exec(`INSERT INTO audiences (id, workspace, label, dimension, kind, columns, count, source_campaign, created_at, updated_at) VALUES ($1, 'floor', $1, 'profile', 'list', '[]', 0, '', 0, 0)`, id)
	args := append([]any{id}, p.Args...)
	shifted := shiftArgs(p.SQL, len(p.Args))
	start := time.Now()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO audience_members (audience_id, profile_id, data) SELECT $1, id, data FROM (`+shifted+`) pop`, args...); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	s.db.Exec(`DELETE FROM audience_members WHERE audience_id = $1`, id)
	s.db.Exec(`DELETE FROM audiences WHERE id = $1`, id)
	return d
}

// shiftArgs renumbers $1..$n to $2..$n+1 (highest first, so $1 never
// becomes $12 by accident).
func shiftArgs(sql string, n int) string {
	for i := n; i >= 1; i-- {
		sql = replaceWord(sql, "$"+itoa(i), "$"+itoa(i+1))
	}
	return sql
}

func itoa(i int) string { return strconv.Itoa(i) }

func replaceWord(s, old, new string) string {
	out := []byte{}
	for i := 0; i < len(s); {
		if i+len(old) <= len(s) && s[i:i+len(old)] == old && (i+len(old) == len(s) || s[i+len(old)] < '0' || s[i+len(old)] > '9') {
			out = append(out, new...)
			i += len(old)
			continue
		}
		out = append(out, s[i])
		i++
	}
	return string(out)
}

// BenchmarkSaveReplace_500k builds a ~500k population from 1M profiles and
// saves it in replace mode over an audience that holds another 500k.
func BenchmarkSaveReplace_500k(b *testing.B) {
	s := benchPG(b)
	ws := seeded(b, s)
	ctx := context.Background()
	half := plan(b, s, ws, `{"field":"plan","op":"eq","value":"free"}`, []string{"email", "country"})
	other := plan(b, s, ws, `{"field":"plan","op":"ne","value":"free"}`, []string{"email", "country"})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		label := storetest.ID("replace_")
		if _, err := s.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: "create_or_update", Label: label, UpdateMode: "replace", Population: other, NewID: storetest.ID("a_")}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := s.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: "create_or_update", Label: label, UpdateMode: "replace", Population: half})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f := floor(b, s, half)
		b.ReportMetric(d.Seconds(), "replace-s")
		b.ReportMetric(f.Seconds(), "floor-s")
		b.ReportMetric(d.Seconds()/f.Seconds(), "x-floor")
		b.ReportMetric(float64(res.Count), "members")
		b.StartTimer()
	}
}

// BenchmarkSaveAppend_100kInto1M appends a ~100k population to an
// audience of all 1M profiles.
func BenchmarkSaveAppend_100kInto1M(b *testing.B) {
	s := benchPG(b)
	ws := seeded(b, s)
	ctx := context.Background()
	all := plan(b, s, ws, `{"field":"id","op":"not_empty"}`, []string{"email"})
	tenth := plan(b, s, ws, `{"field":"age","op":"between","value":[20,25]}`, []string{"email", "plan"})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		label := storetest.ID("append_")
		if _, err := s.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: "create_or_update", Label: label, UpdateMode: "replace", Population: all, NewID: storetest.ID("a_")}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := s.SaveAudience(ctx, store.AudienceSave{Workspace: ws, Mode: "create_or_update", Label: label, UpdateMode: "append", Population: tenth})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		n, _ := s.CountPopulation(ctx, tenth)
		f := floor(b, s, tenth)
		b.ReportMetric(d.Seconds(), "append-s")
		b.ReportMetric(f.Seconds(), "floor-s")
		b.ReportMetric(d.Seconds()/f.Seconds(), "x-floor")
		b.ReportMetric(float64(n), "appended")
		b.ReportMetric(float64(res.Count), "members")
		b.StartTimer()
	}
}
