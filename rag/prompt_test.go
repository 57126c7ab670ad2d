package rag_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/rag"
)

func mustCC(t *testing.T) clone.CloneContext {
	t.Helper()
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// input returns a prompt input of clone cc with n items of every kind, each naming
// its kind and index.
func input(cc clone.CloneContext, n int) *rag.PromptInput {
	t, c := cc.TenantID(), cc.CloneID()
	in := &rag.PromptInput{Question: "What happened?", Profile: rag.Profile{TenantID: t, CloneID: c, Name: "Ada", About: "Ada writes about engines."}}
	for i := range n {
		in.Passages = append(in.Passages, rag.Passage{TenantID: t, CloneID: c, DocumentID: clone.NewID(), Title: fmt.Sprintf("doc%d", i), Ordinal: i, Text: fmt.Sprintf("passage%d text", i)})
		role := records.RoleUser
		if i%2 == 1 {
			role = records.RoleAssistant
		}
		in.History = append(in.History, records.Message{TenantID: t, CloneID: c, Role: role, Content: fmt.Sprintf("history%d", i)})
		in.Insights = append(in.Insights, records.Insight{TenantID: t, CloneID: c, Content: fmt.Sprintf("insight%d", i)})
		in.Examples = append(in.Examples, records.TrainingExample{TenantID: t, CloneID: c, Prompt: fmt.Sprintf("prompt%d", i), Response: fmt.Sprintf("response%d", i)})
	}
	return in
}

func TestBuildPromptLayout(t *testing.T) {
	cc := mustCC(t)
	p, err := rag.BuildPrompt(context.Background(), cc, input(cc, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs := p.Request.Messages
	if len(msgs) != 4 || msgs[0].Role != "system" || msgs[1].Content != "history0" || msgs[2].Content != "history1" || msgs[3].Content != "What happened?" || msgs[3].Role != "user" {
		t.Fatalf("messages %+v", msgs)
	}
	sys := msgs[0].Content
	for _, want := range []string{"You are Ada.", "Ada writes about engines.", "- insight0", "Q: prompt1\nA: response1", "[1] doc0\npassage0 text", "[2] doc1\npassage1 text"} {
		if !strings.Contains(sys, want) {
			t.Errorf("system message lacks %q:\n%s", want, sys)
		}
	}
	if len(p.Request.Sources) != 2 || p.Request.Sources[1].Text != "passage1 text" || p.Citations()[1].Marker != "[2]" || p.Tokens <= 0 {
		t.Fatalf("sources %+v", p.Request.Sources)
	}
}

// TestBuildPromptBudget checks the truncation order: examples go first, then insights,
// then the oldest history, then the lowest-ranked passages. Items of lower-priority kinds
// are made larger than those of higher ones, so a kind that loses an item leaves no room
// for any lower kind and the order shows as whole kinds being dropped.
func TestBuildPromptBudget(t *testing.T) {
	cc := mustCC(t)
	in := input(cc, 40)
	for i := range 40 {
		in.Passages[i].Text = strings.Repeat(fmt.Sprintf("p%d ", i), 10)
		in.History[i].Content = fmt.Sprintf("history%d ", i) + strings.Repeat("h ", 20)
		in.Insights[i].Content = strings.Repeat(fmt.Sprintf("i%d ", i), 30)
		in.Examples[i].Prompt = strings.Repeat("q ", 60)
		in.Examples[i].Response = strings.Repeat("r ", 60)
	}
	prev := rag.Dropped{}
	sawOrder := map[string]bool{}
	for budget := 4000; budget >= rag.MinPromptTokens; budget -= 50 {
		p, err := rag.BuildPrompt(context.Background(), cc, in, &rag.PromptOptions{MaxTokens: budget})
		if err != nil {
			t.Fatal(err)
		}
		if p.Tokens > budget {
			t.Fatalf("budget %d: prompt of %d tokens", budget, p.Tokens)
		}
		d := p.Dropped
		// Lower-priority kinds are dropped entirely before a higher one loses anything.
		if d.Passages > 0 && (d.History != 40 || d.Insights != 40 || d.Examples != 40) {
			t.Fatalf("budget %d: passages dropped while others kept: %+v", budget, d)
		}
		if d.History > 0 && (d.Insights != 40 || d.Examples != 40) {
			t.Fatalf("budget %d: history dropped while insights or examples kept: %+v", budget, d)
		}
		if d.Insights > 0 && d.Examples != 40 {
			t.Fatalf("budget %d: insights dropped while examples kept: %+v", budget, d)
		}
		if d.Passages < prev.Passages || d.History < prev.History {
			t.Fatalf("budget %d: fewer drops with a smaller budget", budget)
		}
		prev = d
		// The history window is the newest contiguous messages.
		if p.History > 0 {
			last := p.Request.Messages[len(p.Request.Messages)-2].Content
			first := p.Request.Messages[1].Content
			if !strings.HasPrefix(last, "history39 ") || !strings.HasPrefix(first, fmt.Sprintf("history%d ", 40-p.History)) {
				t.Fatalf("budget %d: window %s..%s of %d", budget, first, last, p.History)
			}
		}
		// The passages kept are the best-ranked ones.
		for i, ps := range p.Passages {
			if ps.Ordinal != i {
				t.Fatalf("budget %d: passage %d is ordinal %d", budget, i, ps.Ordinal)
			}
		}
		for k, v := range map[string]int{"examples": d.Examples, "insights": d.Insights, "history": d.History, "passages": d.Passages} {
			if v > 0 {
				sawOrder[k] = true
			}
		}
	}
	if len(sawOrder) != 4 {
		t.Fatalf("the budgets tried did not exercise every stage: %v", sawOrder)
	}
	// The required parts alone over budget.
	big := input(cc, 0)
	big.Question = strings.Repeat("why ", 400)
	if _, err := rag.BuildPrompt(context.Background(), cc, big, &rag.PromptOptions{MaxTokens: rag.MinPromptTokens}); !errors.Is(err, clone.ErrTooLarge) {
		t.Fatal(err)
	}
	for _, n := range []int{-1, 1, rag.MinPromptTokens - 1, rag.MaxPromptTokens + 1} {
		if _, err := rag.BuildPrompt(context.Background(), cc, input(cc, 1), &rag.PromptOptions{MaxTokens: n}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("budget %d: %v", n, err)
		}
	}
}

// TestPromptGuard: any item of another clone (same tenant or not), or without an owner,
// fails the prompt with an isolation violation and one audit event, and nothing of it is
// returned.
func TestPromptGuard(t *testing.T) {
	cc := mustCC(t)
	sameTenant, err := clone.New(cc.TenantID(), clone.NewID(), clone.Principal{})
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string][2][16]byte{
		"other tenant":  {clone.NewID(), clone.NewID()},
		"sibling clone": {sameTenant.TenantID(), sameTenant.CloneID()},
		"no owner":      {},
		"swapped":       {cc.CloneID(), cc.TenantID()},
	}
	kinds := map[string]func(in *rag.PromptInput, t, c [16]byte){
		"profile":  func(in *rag.PromptInput, t, c [16]byte) { in.Profile.TenantID, in.Profile.CloneID = t, c },
		"passage":  func(in *rag.PromptInput, t, c [16]byte) { in.Passages[2].TenantID, in.Passages[2].CloneID = t, c },
		"message":  func(in *rag.PromptInput, t, c [16]byte) { in.History[0].TenantID, in.History[0].CloneID = t, c },
		"insight":  func(in *rag.PromptInput, t, c [16]byte) { in.Insights[1].TenantID, in.Insights[1].CloneID = t, c },
		"training": func(in *rag.PromptInput, t, c [16]byte) { in.Examples[2].TenantID, in.Examples[2].CloneID = t, c },
	}
	for on, ids := range owners {
		for kn, set := range kinds {
			in := input(cc, 3)
			set(in, ids[0], ids[1])
			sink := &audit.Memory{}
			// A tiny budget: the guard also covers items the budget would drop.
			p, err := rag.BuildPrompt(context.Background(), cc, in, &rag.PromptOptions{Audit: sink, MaxTokens: rag.MinPromptTokens})
			if !errors.Is(err, clone.ErrIsolationViolation) || p != nil {
				t.Errorf("%s %s: %v", on, kn, err)
				continue
			}
			ev := sink.Events()
			if len(ev) != 1 || ev[0].Outcome != audit.Violation || ev[0].CloneID != cc.CloneID() || ev[0].Actor != "alice" {
				t.Errorf("%s %s: audit %+v", on, kn, ev)
			}
		}
	}
	if _, err := rag.BuildPrompt(context.Background(), clone.CloneContext{}, input(cc, 1), nil); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Error(err)
	}
	if err := rag.Guard(context.Background(), cc, input(cc, 3), nil); err != nil {
		t.Error(err)
	}
}

// TestRetrieverPostCheck: the prompt guard stops passages a host assembled from
// another clone's retrieval (same process, wrong context).
func TestRetrieverPostCheck(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	a, b := e.newClone(t), e.newClone(t)
	seedDoc(t, e, a, "A only", "The treasure is buried under the oak.")
	res, err := e.ret.Retrieve(ctx, a, "where is the treasure", nil)
	if err != nil || len(res.Passages) == 0 {
		t.Fatal(err)
	}
	e.audit.Reset()
	in := &rag.PromptInput{Question: "where is the treasure", Profile: rag.Profile{TenantID: b.TenantID(), CloneID: b.CloneID()}, Passages: res.Passages}
	if _, err := rag.BuildPrompt(ctx, b, in, &rag.PromptOptions{Audit: e.audit}); !errors.Is(err, clone.ErrIsolationViolation) {
		t.Fatal(err)
	}
	if len(e.audit.Events()) != 1 {
		t.Fatalf("audit %+v", e.audit.Events())
	}
}
