package load

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/collab-dev/collab/internal/protocol"
)

// BenchmarkFrame is the load tool's cost per received update: one batch
// frame of 50 teammates' updates, as S1-400 delivers them, read by one
// session that times each one's fan-out.
func BenchmarkFrame(b *testing.B) {
	var parts [][]byte
	for i := 0; i < 50; i++ {
		by := protocol.Author{Name: fmt.Sprint("Writer ", i), Session: fmt.Sprint("s_", i), User: fmt.Sprint("bench-w", i)}
		parts = append(parts, protocol.Update{Campaign: "c_1", Ops: []byte(fmt.Sprintf(`[{"op":"replace","path":"/fields/w%d/label","value":"v12345"}]`, i)), By: by,
			ID: fmt.Sprintf("w%d.%d.%d", i, i, time.Now().UnixMicro()), At: time.Now()}.Encode(int64(1000+i)))
	}
	frame := bytes.Join(parts, []byte("\n"))
	r := &Runner{}
	r.measuring.Store(true)
	s := &session{r: r, userB: []byte("bench-me")}
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.frame(frame)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/update")
	if s.fanN != int64(b.N*50) || s.rev != 1049 {
		b.Fatalf("counted %d updates of %d, rev %d", s.fanN, b.N*50, s.rev)
	}
}
