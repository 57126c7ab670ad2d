package rag

import (
	"context"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest/token"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/rag/generate"
)

// Prompt budget limits.
const (
	// DefaultPromptTokens is the prompt budget when PromptOptions.MaxTokens is 0.
	DefaultPromptTokens = 3000
	// MinPromptTokens and MaxPromptTokens bound PromptOptions.MaxTokens.
	MinPromptTokens = 256
	MaxPromptTokens = 1 << 20
	// messageOverhead is the tokens chat formats spend around each message.
	messageOverhead = 4
)

// DefaultInstructions tell the model how to use the sources; PromptOptions.Instructions
// replaces them.
const DefaultInstructions = "Answer the user's question from the sources below, in the first person, as the clone. " +
	"Cite every source you use with its marker, for example [1]; when a source gives its pages, add the page, for example [1, p. 3]. " +
	"If the sources do not contain the answer, say that you do not know."

// Profile is the clone's public face in its prompts. TenantID and CloneID must be the
// context's: the prompt builder refuses a profile of another clone.
type Profile struct {
	TenantID uuid.UUID
	CloneID  uuid.UUID
	// Name is what the clone calls itself; "" means "a digital clone".
	Name string
	// About describes the clone (who it speaks for, its tone); may be empty.
	About string
}

// PromptInput is everything a prompt may contain. Every item carries the tenant and
// clone it belongs to; all of them must be the context's.
type PromptInput struct {
	Question string
	Profile  Profile
	Passages []Passage                 // best first
	History  []records.Message         // oldest first; system messages are left out
	Insights []records.Insight         // most important first
	Examples []records.TrainingExample // most important first
}

// PromptOptions configure BuildPrompt; nil means the defaults.
type PromptOptions struct {
	// MaxTokens is the budget of the whole prompt (system message, history and question,
	// as estimated by package ingest/token, plus a small overhead per message); it does
	// not include the answer. 0 means DefaultPromptTokens; MinPromptTokens..MaxPromptTokens.
	MaxTokens int
	// Instructions replace DefaultInstructions.
	Instructions string
	// Audit receives the guard's refusals; nil means audit.DefaultSink. A sink failure
	// is logged with the whole event and counted (audit.Emit).
	Audit audit.Sink
}

// Dropped counts the items a prompt left out for its budget.
type Dropped struct {
	Passages, History, Insights, Examples int
}

// Prompt is an assembled prompt, ready for a generate.Generator.
type Prompt struct {
	// Request is what the generator receives: Messages (the system message, the history
	// window and the question) and Sources (the passages, Sources[i] marked
	// generate.Marker(i)).
	Request generate.Request
	// Passages are the passages included, in marker order: Passages[i] is Sources[i].
	Passages []Passage
	// History, Insights and Examples count the items included.
	History, Insights, Examples int
	// Dropped counts what the budget left out.
	Dropped Dropped
	// Tokens is the prompt's estimated size.
	Tokens int
}

// Text returns the whole prompt as one string (every message's role and content), for
// logs and tests.
func (p *Prompt) Text() string {
	var b strings.Builder
	for _, m := range p.Request.Messages {
		b.WriteString(string(m.Role))
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteString("\n")
	}
	return b.String()
}

// Citations returns the citations of the passages included, with their markers.
func (p *Prompt) Citations() []Citation {
	out := make([]Citation, len(p.Passages))
	for i, ps := range p.Passages {
		out[i] = ps.Citation()
		out[i].Marker = generate.Marker(i)
	}
	return out
}

// BuildPrompt assembles a prompt for clone cc from in, within the token budget.
//
// The guard comes first: every item of in — the profile, each passage, history
// message, insight and training example, including those the budget would drop — must
// carry cc's tenant and clone IDs. One that does not (another clone's, or an item with
// no owner) fails the whole call with clone.ErrIsolationViolation and one
// audit.Violation event naming the item's kind and owner: another clone's data has
// reached prompt assembly, which means a layer below leaked or a caller mixed clones,
// and nothing of it may reach a model. The question is checked like
// ValidateQuestion checks it.
//
// The layout: one system message (instructions, the profile, insights, training
// examples as question/answer pairs, then the sources, each as "[n] title" and its
// text), then the history window as user and assistant messages, then the question.
//
// Budget and truncation order. The instructions, the profile and the question are
// always included; if they alone exceed the budget the call fails with
// clone.ErrTooLarge. The rest is filled in priority order, each kind with the budget the
// kinds before it left:
//
//  1. passages, best first (a passage that does not fit is skipped, a smaller one after
//     it may still fit);
//  2. history, newest first, stopping at the first message that does not fit (so the
//     window is always the most recent contiguous turns);
//  3. insights, in the given order (one that does not fit is skipped);
//  4. training examples, in the given order (one that does not fit is skipped).
//
// So as the budget shrinks, training examples lose their place first, then insights,
// then the oldest history, and last the lowest-ranked passages; a lower kind may still
// use room that a too-large item of a higher kind could not. Prompt.Dropped counts what
// was left out.
func BuildPrompt(ctx context.Context, cc clone.CloneContext, in *PromptInput, opts *PromptOptions) (*Prompt, error) {
	const op = "rag.BuildPrompt"
	if err := cc.Validate(op); err != nil {
		return nil, err
	}
	if in == nil {
		return nil, errs.New(errs.InvalidInput, op, "no prompt input")
	}
	o, err := promptOptions(op, opts)
	if err != nil {
		return nil, err
	}
	if err := validateQuestion(op, in.Question); err != nil {
		return nil, err
	}
	if err := Guard(ctx, cc, in, o.Audit); err != nil {
		return nil, err
	}

	// Required parts.
	head := promptHead(in.Profile, o.Instructions)
	// The section headers are counted up front, whether or not their sections end up
	// in the prompt.
	used := 2*messageOverhead + token.Count(head) + token.Count(in.Question) +
		token.Count(hdrInsights) + token.Count(hdrExamples) + max(token.Count(hdrSources), token.Count(noSources))
	if used > o.MaxTokens {
		return nil, errs.New(errs.TooLarge, op, "the question and instructions alone exceed the prompt budget of %d tokens", o.MaxTokens)
	}
	b := &budget{left: o.MaxTokens - used}
	p := &Prompt{}
	sources := p.addPassages(b, in.Passages)
	hist := p.addHistory(b, in.History)
	insights := p.addInsights(b, in.Insights)
	examples := p.addExamples(b, in.Examples)
	p.assemble(head, insights, examples, sources, hist, in.Question)
	return p, nil
}

// promptOptions returns opts with its defaults, or an error if its budget is out of
// bounds.
func promptOptions(op string, opts *PromptOptions) (PromptOptions, error) {
	var o PromptOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultPromptTokens
	}
	if o.MaxTokens < MinPromptTokens || o.MaxTokens > MaxPromptTokens {
		return o, errs.New(errs.InvalidInput, op, "prompt budget must be %d..%d tokens", MinPromptTokens, MaxPromptTokens)
	}
	if o.Instructions == "" {
		o.Instructions = DefaultInstructions
	}
	return o, nil
}

// promptHead is the always-included start of the system message: who the clone is,
// and the instructions.
func promptHead(pr Profile, instructions string) string {
	var head strings.Builder
	name := pr.Name
	if name == "" {
		name = "a digital clone"
	}
	head.WriteString("You are " + name + ".")
	if pr.About != "" {
		head.WriteString(" " + pr.About)
	}
	head.WriteString("\n" + instructions + "\n")
	return head.String()
}

// budget is the prompt's remaining tokens.
type budget struct{ left int }

// fits takes n tokens from the budget and reports true, or reports false (taking
// nothing) if fewer than n are left.
func (b *budget) fits(n int) bool {
	if n <= b.left {
		b.left -= n
		return true
	}
	return false
}

// addPassages is step 1 of the budget: passages, best first (one that does not fit is
// skipped). It returns the sources section's text.
func (p *Prompt) addPassages(b *budget, passages []Passage) string {
	var sources strings.Builder
	for _, ps := range passages {
		block := generate.Marker(len(p.Passages)) + " " + oneLine(ps.Title) + pageLabel(ps) + "\n" + strings.TrimSpace(ps.Text) + "\n\n"
		if !b.fits(token.Count(block)) {
			p.Dropped.Passages++
			continue
		}
		sources.WriteString(block)
		p.Passages = append(p.Passages, ps)
		p.Request.Sources = append(p.Request.Sources, generate.Source{Title: ps.Title, Text: ps.Text, Page: ps.Page})
	}
	return sources.String()
}

// addHistory is step 2 of the budget: history, newest first, stopping at the first
// message that does not fit. It returns the messages included, oldest first.
func (p *Prompt) addHistory(b *budget, history []records.Message) []generate.Message {
	var hist []generate.Message
	stopped := false
	for i := len(history) - 1; i >= 0; i-- {
		m := history[i]
		if m.Role != records.RoleUser && m.Role != records.RoleAssistant {
			continue
		}
		if stopped || !b.fits(messageOverhead+token.Count(m.Content)) {
			stopped = true
			p.Dropped.History++
			continue
		}
		hist = append(hist, generate.Message{Role: generate.Role(m.Role), Content: m.Content})
	}
	for i, j := 0, len(hist)-1; i < j; i, j = i+1, j-1 {
		hist[i], hist[j] = hist[j], hist[i]
	}
	p.History = len(hist)
	return hist
}

// addInsights is step 3 of the budget: insights in order (one that does not fit is
// skipped). It returns the insights section's text.
func (p *Prompt) addInsights(b *budget, insights []records.Insight) string {
	var out strings.Builder
	for _, it := range insights {
		line := "- " + oneLine(it.Content) + "\n"
		if !b.fits(token.Count(line)) {
			p.Dropped.Insights++
			continue
		}
		out.WriteString(line)
		p.Insights++
	}
	return out.String()
}

// addExamples is step 4 of the budget: training examples in order (one that does not
// fit is skipped). It returns the examples section's text.
func (p *Prompt) addExamples(b *budget, examples []records.TrainingExample) string {
	var out strings.Builder
	for _, ex := range examples {
		block := "Q: " + strings.TrimSpace(ex.Prompt) + "\nA: " + strings.TrimSpace(ex.Response) + "\n\n"
		if !b.fits(token.Count(block)) {
			p.Dropped.Examples++
			continue
		}
		out.WriteString(block)
		p.Examples++
	}
	return out.String()
}

// assemble sets the prompt's messages: the system message (head, then the sections
// that have content), the history window and the question; and its size.
func (p *Prompt) assemble(head, insights, examples, sources string, hist []generate.Message, question string) {
	var sys strings.Builder
	sys.WriteString(head)
	if insights != "" {
		sys.WriteString(hdrInsights + insights)
	}
	if examples != "" {
		sys.WriteString(hdrExamples + strings.TrimRight(examples, "\n") + "\n")
	}
	if sources != "" {
		sys.WriteString(hdrSources + strings.TrimRight(sources, "\n") + "\n")
	} else {
		sys.WriteString(noSources)
	}
	msgs := make([]generate.Message, 0, len(hist)+2)
	msgs = append(msgs, generate.Message{Role: generate.RoleSystem, Content: sys.String()})
	msgs = append(msgs, hist...)
	msgs = append(msgs, generate.Message{Role: generate.RoleUser, Content: question})
	p.Request.Messages = msgs
	p.Request.Question = question
	for _, m := range msgs {
		p.Tokens += messageOverhead + token.Count(m.Content)
	}
}

// Guard is the prompt-assembly guard BuildPrompt runs first: it returns nil if every
// item of in belongs to clone cc, and otherwise clone.ErrIsolationViolation after
// recording one audit.Violation event to sink (nil drops it). Hosts that assemble
// prompts of their own can call it directly.
func Guard(ctx context.Context, cc clone.CloneContext, in *PromptInput, sink audit.Sink) error {
	const op = "rag.BuildPrompt"
	if err := cc.Validate(op); err != nil {
		return err
	}
	if in == nil {
		return nil
	}
	refuse := func(kind string, t, c uuid.UUID) error {
		recordViolation(ctx, sink, cc, op, "prompt assembly refused a "+kind+" of another clone", t, c)
		return errs.New(errs.IsolationViolation, op, "a %s of another clone reached prompt assembly", kind)
	}
	if cc.Check(in.Profile.TenantID, in.Profile.CloneID) != nil {
		return refuse("profile", in.Profile.TenantID, in.Profile.CloneID)
	}
	for _, x := range in.Passages {
		if cc.Check(x.TenantID, x.CloneID) != nil {
			return refuse("passage", x.TenantID, x.CloneID)
		}
	}
	for _, x := range in.History {
		if cc.Check(x.TenantID, x.CloneID) != nil {
			return refuse("message", x.TenantID, x.CloneID)
		}
	}
	for _, x := range in.Insights {
		if cc.Check(x.TenantID, x.CloneID) != nil {
			return refuse("insight", x.TenantID, x.CloneID)
		}
	}
	for _, x := range in.Examples {
		if cc.Check(x.TenantID, x.CloneID) != nil {
			return refuse("training example", x.TenantID, x.CloneID)
		}
	}
	return nil
}

// Section headers of the system message.
const (
	hdrInsights = "\nWhat you know about yourself:\n"
	hdrExamples = "\nExamples of how you answer:\n"
	hdrSources  = "\nSources:\n"
	noSources   = "\nSources: none were found for this question.\n"
)

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// pageLabel returns the page of a passage of a paged document for its header in the
// sources: " (p. 3)"; "" without pages.
func pageLabel(ps Passage) string {
	if ps.Page <= 0 {
		return ""
	}
	return " (p. " + strconv.Itoa(ps.Page) + ")"
}
