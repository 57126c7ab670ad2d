package rag

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
)

// Defaults and limits of ProcessorOptions.
const (
	DefaultHistoryMessages = 20
	DefaultInsights        = 20
	DefaultExamples        = 5
	// MaxContextItems bounds HistoryMessages, Insights and Examples (one page of the
	// records package).
	MaxContextItems = records.MaxPageSize
	// DefaultSaveTimeout bounds storing a partial answer after the request's context
	// was cancelled.
	DefaultSaveTimeout = 5 * time.Second
	// maxTitleRunes is the length of a conversation title made from its first question.
	maxTitleRunes = 80
)

// ProfileFunc returns the profile of clone cc for its prompts. It must return the
// profile of cc (BuildPrompt refuses any other).
type ProfileFunc func(ctx context.Context, cc clone.CloneContext) (Profile, error)

// ProcessorOptions configure NewProcessor; nil means the defaults.
type ProcessorOptions struct {
	// Profile loads the clone's profile. Default: a profile with only the clone's IDs
	// ("a digital clone").
	Profile ProfileFunc
	// Retrieve are the default retrieval options (Request.Retrieve overrides them).
	Retrieve *RetrieveOptions
	// Prompt configures the prompt budget and instructions; its Audit defaults to the
	// processor's sink.
	Prompt *PromptOptions
	// HistoryMessages is the most recent messages of the conversation loaded for the
	// history window (the budget may keep fewer): 0 means DefaultHistoryMessages,
	// -1 none; at most MaxContextItems.
	HistoryMessages int
	// Insights and Examples are the clone's newest insights and training examples loaded
	// for the persona: 0 means DefaultInsights / DefaultExamples, -1 none; at most
	// MaxContextItems.
	Insights, Examples int
	// QueryTurns is the number of the conversation's previous user messages (from the
	// history window) prepended to the question to form the retrieval query, so that a
	// follow-up such as "and in winter?" finds what the conversation is about. 0 means
	// the question alone; at most MaxContextItems. The prompt still ends with the
	// question as asked.
	QueryTurns int
	// MaxAnswerTokens is passed to the generator (generate.Request.MaxTokens); 0 means
	// the generator's default.
	MaxAnswerTokens int
	// SaveTimeout bounds storing the partial answer of an interrupted request, which
	// runs after the request's context is done: 0 means DefaultSaveTimeout.
	SaveTimeout time.Duration
	// Audit receives the guard's refusals. Default: the database's sink.
	Audit audit.Sink
}

// Processor answers a question in a conversation of one clone: it creates or continues
// the conversation, stores the user's message, retrieves passages, builds the prompt,
// generates the answer (streaming) and stores it with its citations. It is safe for
// concurrent use and keeps no per-clone state.
type Processor struct {
	db        *clonesql.DB
	retriever *Retriever
	gen       generate.Generator
	o         ProcessorOptions
}

// NewProcessor returns a Processor on the clone-scoped database db (the same one the
// retriever reads), the retriever and the generator.
func NewProcessor(db *clonesql.DB, retriever *Retriever, gen generate.Generator, opts *ProcessorOptions) (*Processor, error) {
	const op = "rag.NewProcessor"
	if db == nil || retriever == nil || gen == nil {
		return nil, errs.New(errs.InvalidInput, op, "database, retriever and generator are required")
	}
	var o ProcessorOptions
	if opts != nil {
		o = *opts
	}
	if o.QueryTurns < 0 || o.QueryTurns > MaxContextItems {
		return nil, errs.New(errs.InvalidInput, op, "query turns must be 0..%d", MaxContextItems)
	}
	for _, n := range []*int{&o.HistoryMessages, &o.Insights, &o.Examples} {
		if *n < -1 || *n > MaxContextItems {
			return nil, errs.New(errs.InvalidInput, op, "history, insights and examples must be -1..%d", MaxContextItems)
		}
	}
	if o.HistoryMessages == 0 {
		o.HistoryMessages = DefaultHistoryMessages
	}
	if o.Insights == 0 {
		o.Insights = DefaultInsights
	}
	if o.Examples == 0 {
		o.Examples = DefaultExamples
	}
	if o.MaxAnswerTokens < 0 || o.SaveTimeout < 0 {
		return nil, errs.New(errs.InvalidInput, op, "answer tokens and save timeout must not be negative")
	}
	if o.SaveTimeout == 0 {
		o.SaveTimeout = DefaultSaveTimeout
	}
	if o.Audit == nil {
		o.Audit = db.Audit()
	}
	var po PromptOptions
	if o.Prompt != nil {
		po = *o.Prompt
	}
	if po.Audit == nil {
		po.Audit = o.Audit
	}
	if po.MaxTokens != 0 && (po.MaxTokens < MinPromptTokens || po.MaxTokens > MaxPromptTokens) {
		return nil, errs.New(errs.InvalidInput, op, "prompt budget must be %d..%d tokens", MinPromptTokens, MaxPromptTokens)
	}
	o.Prompt = &po
	if _, err := retrieveOptions(op, o.Retrieve); err != nil {
		return nil, err
	}
	return &Processor{db: db, retriever: retriever, gen: gen, o: o}, nil
}

// Request is one question to a clone.
type Request struct {
	// ConversationID continues that conversation of the clone; zero starts a new one.
	// Another clone's conversation is clone.ErrNotFound (and audited).
	ConversationID uuid.UUID
	// Subject and Title describe a new conversation (ignored when continuing one):
	// who is talking to the clone, and a title ("" means the start of the question).
	Subject, Title string
	// Question is the user's message; see ValidateQuestion.
	Question string
	// Retrieve overrides the processor's retrieval options for this request.
	Retrieve *RetrieveOptions
}

// Response is the outcome of Processor.Process.
type Response struct {
	Conversation records.Conversation
	// Question is the stored user message.
	Question records.Message
	// Answer is the stored assistant message; its ID is zero if none was stored (an
	// interrupted request that had produced no text).
	Answer records.Message
	// Citations are the passages the answer cites (by their markers), in the order of
	// their first citation; they are also stored in Answer.Citations.
	Citations []Citation
	// Prompt is the prompt the generator received.
	Prompt *Prompt
	// Result is the generator's result (nil if interrupted).
	Result *generate.Result
	// Timing is the latency of retrieval and prompt building.
	Timing Timing
	// Interrupted reports that generation did not finish: the context was cancelled,
	// the consumer stopped, or the generator failed.
	Interrupted bool
}

// errStopped marks a stream whose consumer received a piece and then stopped iterating.
var errStopped = errors.New("rag: stream consumer stopped")

// Process answers req for clone cc, calling onDelta (if not nil) with each piece of the
// answer as it is generated, from the calling goroutine. If onDelta returns an error,
// generation stops and Process returns that error.
//
// Steps, all scoped to cc: (1) validate the question (nothing is stored for bad
// input); (2) in one transaction, create the conversation or load it (another clone's
// is clone.ErrNotFound), load the history window and append the user message; (3)
// load the clone's profile, newest insights and training examples; (4) retrieve; (5)
// build the prompt (the guard refuses anything of another clone); (6) generate,
// streaming; (7) store the assistant message with the citations its text contains.
//
// What is stored when a request does not finish: a failure in steps 1–2 stores
// nothing. After step 2 the user message stays stored (it was asked). If generation is
// interrupted — ctx cancelled, onDelta failing, the generator failing — the text
// already delivered to onDelta (exactly that, no more) is stored as the assistant
// message with the citations it contains, under a fresh context bounded by
// SaveTimeout, unless it is empty, in which case no assistant message is stored. The
// conversation is therefore always a sequence of complete messages whose assistant
// turns are exactly what the user was shown. On such failures Process returns the
// error together with a non-nil Response (Interrupted set, Answer stored or zero).
func (p *Processor) Process(ctx context.Context, cc clone.CloneContext, req *Request, onDelta func(delta string) error) (*Response, error) {
	const op = "rag.Process"
	// 1. Validate.
	ropts, err := p.validateRequest(op, cc, req)
	if err != nil {
		return nil, err
	}
	// 2. Conversation, history and the user message, atomically.
	resp, history, err := p.beginTurn(ctx, cc, req)
	if err != nil {
		return nil, err
	}

	// Everything after this point interrupts a stored conversation turn.
	fail := func(err error) (*Response, error) {
		resp.Interrupted = true
		return resp, err
	}
	// 3. Persona.
	in, err := p.persona(ctx, cc, req.Question, history)
	if err != nil {
		return fail(err)
	}
	// 4. Retrieve.
	ret, err := p.retriever.Retrieve(ctx, cc, retrievalQuery(history, req.Question, p.o.QueryTurns), ropts)
	if err != nil {
		return fail(err)
	}
	in.Passages = ret.Passages
	resp.Timing = ret.Timing
	// 5. Prompt.
	t := time.Now()
	if resp.Prompt, err = BuildPrompt(ctx, cc, in, p.o.Prompt); err != nil {
		return fail(err)
	}
	resp.Timing.Prompt = time.Since(t)
	// 6. Generate.
	text, res, genErr := p.generate(ctx, op, resp.Prompt, onDelta)
	// 7. Store the answer.
	if err := p.storeAnswer(ctx, op, cc, resp, text, genErr); err != nil {
		return fail(err)
	}
	resp.Result = res
	return resp, nil
}

// validateRequest is step 1 of Process: it checks cc, the request and its retrieval
// options (nothing is stored for bad input), and returns the retrieval options to use.
func (p *Processor) validateRequest(op string, cc clone.CloneContext, req *Request) (*RetrieveOptions, error) {
	if err := cc.Validate(op); err != nil {
		return nil, err
	}
	if req == nil {
		return nil, errs.New(errs.InvalidInput, op, "no request")
	}
	if err := validateQuestion(op, req.Question); err != nil {
		return nil, err
	}
	ropts := p.o.Retrieve
	if req.Retrieve != nil {
		ropts = req.Retrieve
	}
	if _, err := retrieveOptions(op, ropts); err != nil {
		return nil, err
	}
	return ropts, nil
}

// beginTurn is step 2 of Process: in one transaction it creates the conversation or
// loads it with its history window (oldest first), and appends the user message.
func (p *Processor) beginTurn(ctx context.Context, cc clone.CloneContext, req *Request) (*Response, []records.Message, error) {
	resp := &Response{}
	var history []records.Message
	err := p.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		q := tx.Querier() // its Audit() holds denials until the transaction has ended
		var err error
		if req.ConversationID == uuid.Nil {
			title := req.Title
			if title == "" {
				title = titleFrom(req.Question)
			}
			resp.Conversation, err = records.CreateConversation(ctx, q, cc, records.Conversation{Subject: req.Subject, Title: title})
			if err != nil {
				return err
			}
		} else {
			if resp.Conversation, err = records.GetConversation(ctx, q, cc, req.ConversationID); err != nil {
				return err
			}
			if history, err = p.history(ctx, q, cc, req.ConversationID); err != nil {
				return err
			}
		}
		resp.Question, err = records.AppendMessage(ctx, q, cc, records.Message{
			ConversationID: resp.Conversation.ID, Role: records.RoleUser, Content: req.Question, Citations: json.RawMessage("[]"),
		})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return resp, history, nil
}

// history returns the conversation's last HistoryMessages messages, oldest first.
func (p *Processor) history(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, conversation uuid.UUID) ([]records.Message, error) {
	if p.o.HistoryMessages <= 0 {
		return nil, nil
	}
	page, err := records.ListMessages(ctx, q, cc, conversation, &records.ListOptions{Limit: p.o.HistoryMessages, Descending: true})
	if err != nil {
		return nil, err
	}
	history := page.Items
	for i, j := 0, len(history)-1; i < j; i, j = i+1, j-1 {
		history[i], history[j] = history[j], history[i]
	}
	return history, nil
}

// persona is step 3 of Process: the prompt input with the clone's profile, its newest
// insights and training examples, the history window and the question.
func (p *Processor) persona(ctx context.Context, cc clone.CloneContext, question string, history []records.Message) (*PromptInput, error) {
	in := &PromptInput{Question: question, History: history, Profile: Profile{TenantID: cc.TenantID(), CloneID: cc.CloneID()}}
	var err error
	if p.o.Profile != nil {
		if in.Profile, err = p.o.Profile(ctx, cc); err != nil {
			return nil, err
		}
	}
	if p.o.Insights > 0 {
		page, err := records.ListInsights(ctx, p.db, cc, &records.ListOptions{Limit: p.o.Insights, Descending: true})
		if err != nil {
			return nil, err
		}
		in.Insights = page.Items
	}
	if p.o.Examples > 0 {
		page, err := records.ListTrainingExamples(ctx, p.db, cc, &records.ListOptions{Limit: p.o.Examples, Descending: true})
		if err != nil {
			return nil, err
		}
		in.Examples = page.Items
	}
	return in, nil
}

// generate is step 6 of Process: it streams the answer to onDelta and returns the text
// delivered, exactly what the consumer accepted, with the generator's result and error.
func (p *Processor) generate(ctx context.Context, op string, prompt *Prompt, onDelta func(string) error) (string, *generate.Result, error) {
	genReq := prompt.Request
	genReq.MaxTokens = p.o.MaxAnswerTokens
	var delivered strings.Builder
	res, genErr := p.gen.Generate(ctx, &genReq, func(d string) error {
		if d == "" {
			return nil
		}
		if delivered.Len()+len(d) > records.MaxContentBytes {
			// Stop before the caller is shown more than a message can store.
			return errs.New(errs.TooLarge, op, "the answer exceeds %d bytes", records.MaxContentBytes)
		}
		if onDelta != nil {
			if err := onDelta(d); err != nil {
				if errors.Is(err, errStopped) {
					// The iterator's consumer received d, then stopped.
					delivered.WriteString(d)
				}
				return err
			}
		}
		delivered.WriteString(d)
		return nil
	})
	text := delivered.String()
	if genErr == nil && res != nil && res.Text != text {
		// A generator that returned more than it streamed: store what was shown.
		res.Text = text
	}
	return text, res, genErr
}

// storeAnswer is step 7 of Process: it stores text as the assistant message with the
// citations it contains, setting resp.Citations and resp.Answer. After a generation
// error (genErr), empty text is not stored, and non-empty text is stored under a fresh
// context bounded by SaveTimeout; genErr is returned (joined with a failure to store).
func (p *Processor) storeAnswer(ctx context.Context, op string, cc clone.CloneContext, resp *Response, text string, genErr error) error {
	resp.Citations = cited(text, resp.Prompt)
	cites, err := encodeCitations(resp.Citations)
	if err != nil {
		return errs.Wrap(errs.Unknown, op, err, "encoding citations failed")
	}
	saveCtx := ctx
	if genErr != nil {
		if text == "" {
			return genErr
		}
		var cancel context.CancelFunc
		saveCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.o.SaveTimeout)
		defer cancel()
	}
	resp.Answer, err = records.AppendMessage(saveCtx, p.db, cc, records.Message{
		ConversationID: resp.Conversation.ID, Role: records.RoleAssistant, Content: text, Citations: cites,
	})
	if genErr != nil {
		if err != nil {
			genErr = errors.Join(genErr, err)
		}
		return genErr
	}
	return err
}

// Event is one element of Processor.Stream: a piece of the answer, or (last) the
// finished Response.
type Event struct {
	Delta    string
	Response *Response // set on the last event only
}

// Stream is Process as an iterator: it yields an Event per piece of the answer and a
// final Event carrying the Response, or an error (and then stops). Nothing runs until
// the iterator is ranged over. Breaking out of the loop stops generation: the text
// already yielded is stored as the answer, as Process does for an interrupted request.
func (p *Processor) Stream(ctx context.Context, cc clone.CloneContext, req *Request) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		resp, err := p.Process(ctx, cc, req, func(d string) error {
			if !yield(Event{Delta: d}, nil) {
				return errStopped
			}
			return nil
		})
		if errors.Is(err, errStopped) {
			return
		}
		if err != nil {
			yield(Event{}, err)
			return
		}
		yield(Event{Response: resp}, nil)
	}
}

// markerRE matches a citation marker, "[1]", with an optional page: "[1, p. 3]",
// "[1, pp. 3-4]".
var markerRE = regexp.MustCompile(`\[(\d{1,4})(?:,\s*pp?\.\s*\d{1,6}(?:\s*[-–]\s*\d{1,6})?)?\]`)

// cited returns the citations of the prompt's passages whose markers appear in text,
// in order of first appearance.
func cited(text string, p *Prompt) []Citation {
	all := p.Citations()
	out := []Citation{}
	seen := map[int]bool{}
	for _, m := range markerRE.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > len(all) || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, all[n-1])
	}
	return out
}

// encodeCitations encodes citations for the message's citations column, within
// records.MaxJSONBytes: if they do not fit, titles are left out of the stored copy
// (the document ID still names the source), and then the last citations.
func encodeCitations(cs []Citation) (json.RawMessage, error) {
	b, err := json.Marshal(cs)
	if err != nil || len(b) <= records.MaxJSONBytes {
		return b, err
	}
	short := make([]Citation, len(cs))
	copy(short, cs)
	for i := range short {
		short[i].Title = ""
	}
	for len(short) > 0 {
		if b, err = json.Marshal(short); err != nil || len(b) <= records.MaxJSONBytes {
			return b, err
		}
		short = short[:len(short)-1]
	}
	return json.RawMessage("[]"), nil
}

// retrievalQuery prepends up to turns of the history's last user messages to question,
// oldest first, within MaxQuestionBytes (the question is always kept whole).
func retrievalQuery(history []records.Message, question string, turns int) string {
	var prev []string
	room := MaxQuestionBytes - len(question)
	for i := len(history) - 1; i >= 0 && len(prev) < turns; i-- {
		m := history[i]
		if m.Role != records.RoleUser {
			continue
		}
		if len(m.Content)+1 > room {
			break
		}
		room -= len(m.Content) + 1
		prev = append(prev, m.Content)
	}
	if len(prev) == 0 {
		return question
	}
	var b strings.Builder
	for i := len(prev) - 1; i >= 0; i-- {
		b.WriteString(prev[i])
		b.WriteByte('\n')
	}
	b.WriteString(question)
	return b.String()
}

func titleFrom(q string) string {
	q = oneLine(q)
	if r := []rune(q); len(r) > maxTitleRunes {
		return string(r[:maxTitleRunes-1]) + "…"
	}
	return q
}

// TenantProfile returns a ProfileFunc that reads the clone's name from the tenant
// store (the clone row named by the context, never by the caller), for hosts without
// a richer profile of their own. about is added to every profile as Profile.About.
func TenantProfile(store *tenant.Store, about string) ProfileFunc {
	return func(ctx context.Context, cc clone.CloneContext) (Profile, error) {
		if err := cc.Validate("rag.TenantProfile"); err != nil {
			return Profile{}, err
		}
		c, err := store.Clone(ctx, cc.TenantID(), cc.CloneID())
		if err != nil {
			return Profile{}, err
		}
		return Profile{TenantID: c.TenantID, CloneID: c.ID, Name: c.Name, About: about}, nil
	}
}
