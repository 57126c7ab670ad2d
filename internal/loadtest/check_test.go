package loadtest

import "testing"

// The leak check finds another clone's canary anywhere in a response, and only there.
func TestLeakCheckFindsForeignCanaries(t *testing.T) {
	a := &target{idx: 0, canary: "zqc" + randHex(16), topic: "zqt" + randHex(8)}
	b := &target{idx: 1, canary: "zqc" + randHex(16), topic: "zqt" + randHex(8)}
	h := &harness{clones: []*target{a, b}, byCanary: map[string]int{a.canary: 0, b.canary: 1}}
	type answer struct {
		Text      string
		Citations []map[string]any
	}
	if !h.check(a, "own", answer{Text: "the code is " + a.canary, Citations: []map[string]any{{"title": b.topic}}}) {
		t.Fatal("own canary not seen")
	}
	if h.st.leaks.Load() != 0 {
		t.Fatalf("%d leaks in a clean response (another clone's topic word is not a canary)", h.st.leaks.Load())
	}
	h.check(a, "leaky", answer{Text: "fine", Citations: []map[string]any{{"passage": "deep inside: " + b.canary + "."}}})
	h.check(a, "unknown", []string{"zqc" + randHex(16)})
	if n := h.st.leaks.Load(); n != 2 {
		t.Fatalf("%d leaks, want 2 (a known and an unknown foreign canary)", n)
	}
}
