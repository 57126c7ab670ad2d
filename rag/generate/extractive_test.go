package generate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/rag/generate"
)

func TestExtractive(t *testing.T) {
	g, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	req := &generate.Request{
		Question: "What colour is the front door?",
		Sources: []generate.Source{
			{Title: "house", Text: "The house has two floors. The front door is painted dark green! The roof is slate."},
			{Title: "garden", Text: "The garden gate is red.\nThe door of the shed is blue."},
			{Title: "noise", Text: "Nothing relevant here."},
		},
	}
	var pieces []string
	res, err := g.Generate(context.Background(), req, func(d string) error { pieces = append(pieces, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := "The front door is painted dark green! [1] The door of the shed is blue. [2]"
	if res.Text != want || strings.Join(pieces, "") != want || len(pieces) != len(strings.Fields(want)) {
		t.Fatalf("answer %q in %d pieces", res.Text, len(pieces))
	}
	if g.Answer(req) != want || res.Model != generate.ExtractiveModel || res.FinishReason != "stop" {
		t.Fatal("not deterministic")
	}

	// No sources, or nothing shared with the question.
	if got := g.Answer(&generate.Request{Question: "why?"}); got != generate.DefaultNoAnswer {
		t.Fatal(got)
	}
	if got := g.Answer(&generate.Request{Question: "zebra?", Sources: req.Sources}); got != "The house has two floors. [1]" {
		t.Fatal(got)
	}

	// emit errors stop generation and come back as is; a done context is Unavailable.
	stop := errors.New("stop")
	if _, err := g.Generate(context.Background(), req, func(string) error { return stop }); err != stop {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = g.Generate(ctx, req, func(string) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, clone.ErrCanceled) || !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("%v after %d pieces", err, n)
	}
	if _, err := g.Generate(context.Background(), nil, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatal(err)
	}
}

func TestExtractiveOptions(t *testing.T) {
	for _, o := range []*generate.ExtractiveOptions{{Sentences: -1}, {Sentences: generate.MaxExtractiveSentences + 1}, {SentenceBytes: -1}} {
		if _, err := generate.NewExtractive(o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	g, _ := generate.NewExtractive(&generate.ExtractiveOptions{Sentences: 1, SentenceBytes: 20, NoAnswer: "no idea"})
	long := &generate.Request{Question: "elephants", Sources: []generate.Source{{Text: "Elephants remember every watering hole they ever visited."}}}
	if got := g.Answer(long); got != "Elephants remember…"+" [1]" {
		t.Fatalf("%q", got)
	}
	if got := g.Answer(&generate.Request{}); got != "no idea" {
		t.Fatal(got)
	}
}

func TestTextHelpers(t *testing.T) {
	if got := generate.Sentences("One. Two? Three!\nFour\n\n  five 3.5 six."); strings.Join(got, "|") != "One.|Two?|Three!|Four|five 3.5 six." {
		t.Fatalf("%q", got)
	}
	if got := generate.Pieces(" a bb  c"); strings.Join(got, "|") != " a| bb|  c" {
		t.Fatalf("%q", got)
	}
	terms := generate.Terms("What is the CANARY-A-01 code, Zürich?")
	for _, w := range []string{"canary-a-01", "code", "zürich"} {
		if _, ok := terms[w]; !ok {
			t.Errorf("missing %q in %v", w, terms)
		}
	}
	if _, ok := terms["the"]; ok {
		t.Error("stop word kept")
	}
	if generate.Marker(0) != "[1]" {
		t.Error(generate.Marker(0))
	}
}

// FuzzExtractive: for any sources and question the answer streams in pieces that add up
// to it and is deterministic.
func FuzzExtractive(f *testing.F) {
	f.Add("What colour is the door?", "The door is green. The roof is red.", "Doors.\nGreen!")
	f.Add("", "", "")
	f.Add("ünïcode?", "a\x00b. c", "[9] fake marker. ünïcode here")
	g, _ := generate.NewExtractive(nil)
	f.Fuzz(func(t *testing.T, q, s1, s2 string) {
		req := &generate.Request{Question: q, Sources: []generate.Source{{Text: s1}, {Text: s2}}}
		var b strings.Builder
		res, err := g.Generate(context.Background(), req, func(d string) error { b.WriteString(d); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if res.Text != b.String() || res.Text != g.Answer(req) || strings.Join(generate.Pieces(res.Text), "") != res.Text {
			t.Fatalf("pieces %q vs %q", b.String(), res.Text)
		}
	})
}
