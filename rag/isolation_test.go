package rag_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/rag"
)

// topics are facts both clones hold with conflicting values. %s is the clone's canary.
var topics = []struct{ fact, question string }{
	{"The launch code of project Zephyr is %s.", "What is the launch code of project Zephyr?"},
	{"My favourite mountain village is %s, high in the alps.", "Which mountain village is your favourite?"},
	{"The secret ingredient of my tomato soup is %s.", "What is the secret ingredient of your tomato soup?"},
	{"Our quarterly revenue target is %s euros.", "What is the quarterly revenue target?"},
	{"The wifi password in the studio is %s.", "What is the studio wifi password?"},
	{"My first employer was a bakery called %s.", "Which bakery was your first employer?"},
}

// canary returns the canary of clone side ("A" or "B") for topic i: a string that can
// only come from that clone's data.
func canary(side string, i int) string {
	return fmt.Sprintf("CANARY-%s-%02d-%s", side, i, strings.Repeat(side, 3))
}

// seedClone gives the clone one document per topic with its own canaries (in text and
// title), filler documents, an insight, a training example and a prior conversation,
// all carrying the clone's canaries.
func seedClone(t *testing.T, e *env, cc clone.CloneContext, side string) records.Conversation {
	t.Helper()
	ctx := context.Background()
	for i, tp := range topics {
		ingestDoc(t, e, cc, "Notes "+canary(side, i),
			fmt.Sprintf(tp.fact, canary(side, i))+" This is recorded in my notes.",
			"Unrelated paragraph about gardening and weather in spring.")
	}
	ingestDoc(t, e, cc, "Filler", "The office opens at nine.", "Lunch is served at noon in the canteen.")
	if _, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Category: "style", Content: "Speaks plainly, insight " + canary(side, 90)}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.CreateTrainingExample(ctx, e.db, cc, records.TrainingExample{Prompt: "Who are you?", Response: "I am clone " + canary(side, 91)}); err != nil {
		t.Fatal(err)
	}
	conv, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{Subject: "visitor", Title: "earlier"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []records.Message{
		{Role: records.RoleUser, Content: "Remember the word " + canary(side, 92)},
		{Role: records.RoleAssistant, Content: "Noted: " + canary(side, 92)},
	} {
		m.ConversationID = conv.ID
		if _, err := records.AppendMessage(ctx, e.db, cc, m); err != nil {
			t.Fatal(err)
		}
	}
	return conv
}

// TestCanaryIsolation: two clones hold conflicting facts; over many questions, each
// clone's answers, stored citations and prompts (as built and as the generator received
// them) contain its own canaries only, and one clone's history never enters the other's
// prompt.
func TestCanaryIsolation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		ccs := map[string]clone.CloneContext{"A": e.newClone(t), "B": e.newClone(t)}
		convs := map[string]records.Conversation{}
		for side, cc := range ccs {
			convs[side] = seedClone(t, e, cc, side)
		}
		gen := &recorder{Generator: extractive(t)}
		p, err := rag.NewProcessor(e.db, e.ret, gen, nil)
		if err != nil {
			t.Fatal(err)
		}
		for side, cc := range ccs {
			other := map[string]string{"A": "B", "B": "A"}[side]
			gen.reqs = nil
			asked := 0
			for i, tp := range topics {
				for _, q := range []string{tp.question, strings.ToLower(tp.question), "Tell me: " + tp.question} {
					// Continue the clone's own earlier conversation, so its history is in play.
					resp, err := p.Process(ctx, cc, &rag.Request{ConversationID: convs[side].ID, Question: q}, nil)
					if err != nil {
						t.Fatalf("%s %q: %v", side, q, err)
					}
					if !strings.Contains(resp.Answer.Content, canary(side, i)) {
						t.Errorf("%s %q: answer %q lacks own canary %s", side, q, resp.Answer.Content, canary(side, i))
					}
					stored, err := records.GetMessage(ctx, e.db, cc, resp.Answer.ID)
					if err != nil {
						t.Fatal(err)
					}
					var cites []rag.Citation
					if err := json.Unmarshal(stored.Citations, &cites); err != nil || len(cites) == 0 {
						t.Fatalf("stored citations %s: %v", stored.Citations, err)
					}
					if !strings.Contains(cites[0].Title, canary(side, i)) {
						t.Errorf("%s %q: first citation %+v is not the topic's document", side, q, cites[0])
					}
					prompt := resp.Prompt.Text()
					// The earlier turns stay in the window (20 messages) for the first questions.
					if asked++; asked <= 5 && !strings.Contains(prompt, canary(side, 92)) {
						t.Errorf("%s: own history missing from the prompt", side)
					}
					for _, s := range []string{resp.Answer.Content, string(stored.Citations), prompt} {
						if strings.Contains(s, "CANARY-"+other) {
							t.Fatalf("clone %s saw clone %s's data: %q", side, other, s)
						}
					}
				}
			}
			seen := gen.seen()
			if strings.Contains(seen, "CANARY-"+other) {
				t.Fatalf("generator of clone %s received clone %s's data", side, other)
			}
			for _, want := range []string{canary(side, 90), canary(side, 91), canary(side, 92)} {
				if !strings.Contains(seen, want) {
					t.Errorf("clone %s: persona/history canary %s never reached the generator", side, want)
				}
			}
		}

		// Both clones at once on a pool of two connections (settings must not leak
		// between pooled connections), each in new conversations.
		e.raw.SetMaxOpenConns(2)
		var wg sync.WaitGroup
		errc := make(chan error, 2*len(topics)*2)
		for side, cc := range ccs {
			other := map[string]string{"A": "B", "B": "A"}[side]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 2 {
					for i, tp := range topics {
						resp, err := p.Process(ctx, cc, &rag.Request{Question: tp.question}, nil)
						if err != nil {
							errc <- err
							return
						}
						text := resp.Answer.Content + string(resp.Answer.Citations) + resp.Prompt.Text()
						if !strings.Contains(resp.Answer.Content, canary(side, i)) || strings.Contains(text, "CANARY-"+other) {
							errc <- fmt.Errorf("round %d, clone %s, topic %d: %q", round, side, i, resp.Answer.Content)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}

		// Clone B naming clone A's conversation: not found, audited, nothing stored in it.
		before, _ := records.CountMessages(ctx, e.db, ccs["A"], convs["A"].ID)
		e.audit.Reset()
		gen.reqs = nil
		_, err = p.Process(ctx, ccs["B"], &rag.Request{ConversationID: convs["A"].ID, Question: "What did I ask you to remember?"}, nil)
		if !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("foreign conversation: %v", err)
		}
		if len(e.audit.Events()) == 0 {
			t.Error("foreign conversation not audited")
		}
		if after, _ := records.CountMessages(ctx, e.db, ccs["A"], convs["A"].ID); after != before {
			t.Errorf("clone A's conversation changed: %d -> %d messages", before, after)
		}
		if len(gen.reqs) != 0 {
			t.Error("generator ran for a foreign conversation")
		}
		// A new conversation of B asking for A's remembered word sees none of A's history.
		resp, err := p.Process(ctx, ccs["B"], &rag.Request{Question: "What word did I ask you to remember? " + "Remember the word"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(resp.Prompt.Text()+resp.Answer.Content+gen.seen(), "CANARY-A") {
			t.Fatal("clone A's history reached clone B")
		}
	})
}
