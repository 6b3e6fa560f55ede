// Package fault holds collab's multi-node fault tests: three collab
// processes sharing a Redis of the test's own and the real PostgreSQL, with
// load clients on all three, while a node is killed or stopped, Redis
// crashes, PostgreSQL goes away, or a session stops reading. Each test
// checks that every acknowledged edit reaches the durable store exactly
// once, and prints its figures. They need redis-server and PostgreSQL (see
// internal/testenv); `.ci/run` provides both.
package fault
