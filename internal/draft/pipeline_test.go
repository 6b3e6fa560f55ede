package draft

import "testing"

// TestPipelineLeadIsNotHandedTwice: a pipeline that ends while a caller
// which took its own lead has not yet taken the queue must give its place
// up, not hand that caller's call a second lead. Such a token is never
// read, so its place is never given back; two of them leave every later
// edit on the node waiting for a lead that never comes (CI caught one as
// "1 still running" after TestPipelineAcrossCampaigns).
func TestPipelineLeadIsNotHandedTwice(t *testing.T) {
	p := &pipeline{running: 1} // another pipeline is out
	c := &editCall{}
	if !p.enqueue(c) {
		t.Fatal("a call with a place free must lead")
	}
	// The other pipeline ends before c's caller takes the queue.
	p.mu.Lock()
	p.passLocked()
	running := p.running
	p.mu.Unlock()
	if len(c.lead) != 0 {
		t.Fatal("a leading call was handed a second lead")
	}
	if running != 1 {
		t.Fatalf("%d pipelines counted running, want 1 (c's)", running)
	}
	// A call queued behind two pipelines is handed the lead when one ends.
	p.running = maxInFlight
	w := &editCall{}
	if p.enqueue(w) {
		t.Fatal("a call with no place free must wait")
	}
	p.mu.Lock()
	p.passLocked()
	p.mu.Unlock()
	if len(w.lead) != 1 {
		t.Fatal("the waiting call was not handed the lead")
	}
}
