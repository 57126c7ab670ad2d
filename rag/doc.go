// Package rag answers questions with one clone's own knowledge: a Retriever finds the
// clone's passages, a prompt builder assembles the clone's persona, passages and
// conversation history within a token budget, a generate.Generator writes the answer
// (streaming), and a Processor ties them together and stores the conversation.
//
// Every step takes the clone.CloneContext and derives every tenant and clone ID it uses
// from it; what the stores return is re-checked, and the prompt-assembly guard refuses
// any passage, insight, training example or message of another clone before it can
// reach a model.
package rag
