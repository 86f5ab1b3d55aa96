// Package dataset reads, writes and validates MegaContext evaluation
// datasets: JSON Lines files (optionally gzip-compressed) holding one case a
// line, each case a multi-session chat history followed by questions whose
// evidence strings occur verbatim in that history (DESIGN.md §7).
//
// A line looks like:
//
//	{"id":"c1",
//	 "sessions":[{"id":"s1","time":"2025-01-06T09:00:00Z",
//	   "messages":[{"role":"user","content":"…"},{"role":"assistant","content":"…"}]}],
//	 "questions":[{"id":"q1","type":"single-fact","question":"…","answer":"…",
//	   "evidence":["verbatim substring of one message"]}]}
//
// The evaluation measures evidence recall at budget: a question is recalled
// strictly when every evidence string is in the working window verbatim, and
// leniently when every part of its answer (see [Question.AnswerParts]) is.
package dataset

import (
	"fmt"
	"strings"
	"time"
)

// Question types of DESIGN.md §7. Datasets may use other non-empty types;
// these are the ones the generator plants and reports group by.
const (
	// TypeSingleFact asks for one stated fact, worded as it was stated.
	TypeSingleFact = "single-fact"
	// TypeParaphrase asks for one fact with wording that differs from the
	// statement apart from the entity it is about.
	TypeParaphrase = "paraphrase"
	// TypeKnowledgeUpdate asks for a value that changed over time; the
	// answer and evidence are the newest statement.
	TypeKnowledgeUpdate = "knowledge-update"
	// TypeExactQuote asks for an opaque code that only the raw text holds.
	TypeExactQuote = "exact-quote"
	// TypeAssistantSaid asks for something the assistant said.
	TypeAssistantSaid = "assistant-said"
	// TypeMultiEvidence needs several statements from different sessions.
	TypeMultiEvidence = "multi-evidence"
	// TypeMultiHop needs a chain A→B, B→C whose second hop shares no
	// words with the question.
	TypeMultiHop = "multi-hop"
	// TypeTemporal asks what happened on a given date (in a given session).
	TypeTemporal = "temporal"
	// TypeLexicalGap asks with synonyms only: no content word in common
	// with the evidence.
	TypeLexicalGap = "lexical-gap"
)

// AnswerSeparator joins the parts of an answer that has several (for
// example the cities of a multi-evidence question). Single answers never
// contain it.
const AnswerSeparator = "; "

// Message roles accepted in histories (the OpenAI chat roles).
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Types returns the question types of DESIGN.md §7 in a fixed order.
func Types() []string {
	return []string{
		TypeSingleFact, TypeParaphrase, TypeKnowledgeUpdate, TypeExactQuote,
		TypeAssistantSaid, TypeMultiEvidence, TypeMultiHop, TypeTemporal,
		TypeLexicalGap,
	}
}

// ValidRole reports whether role is a chat role a history may hold.
func ValidRole(role string) bool {
	switch role {
	case RoleSystem, RoleDeveloper, RoleUser, RoleAssistant, RoleTool:
		return true
	}
	return false
}

// Case is one evaluation case: a chat history in sessions, then questions
// about it. It is one line of a dataset file.
type Case struct {
	// ID identifies the case; unique within a dataset.
	ID string `json:"id"`
	// Sessions is the history, oldest first.
	Sessions []Session `json:"sessions"`
	// Questions are asked after the whole history.
	Questions []Question `json:"questions"`
}

// Session is one conversation of a case's history.
type Session struct {
	// ID identifies the session; unique within its case.
	ID string `json:"id"`
	// Time is when the session took place; sessions are in time order.
	Time time.Time `json:"time"`
	// Messages are the session's chat messages in order.
	Messages []Message `json:"messages"`
}

// Message is one chat message.
type Message struct {
	// Role is one of the Role constants.
	Role string `json:"role"`
	// Content is the message text.
	Content string `json:"content"`
}

// Question is asked after a case's history.
type Question struct {
	// ID identifies the question; unique within its case.
	ID string `json:"id"`
	// Type is the question type, usually one of the Type constants.
	Type string `json:"type"`
	// Question is the text of the question, as a user would ask it.
	Question string `json:"question"`
	// Answer is the expected answer; several parts are joined with
	// AnswerSeparator.
	Answer string `json:"answer"`
	// Evidence lists strings that each occur verbatim in one message of
	// the history and together suffice to answer.
	Evidence []string `json:"evidence"`
}

// AnswerParts splits the answer at AnswerSeparator. A lenient recall check
// passes when every part is present.
func (q Question) AnswerParts() []string {
	return strings.Split(q.Answer, AnswerSeparator)
}

// HistoryBytes returns the total length in bytes of all message contents
// of the case.
func (c *Case) HistoryBytes() int {
	n := 0
	for _, s := range c.Sessions {
		for _, m := range s.Messages {
			n += len(m.Content)
		}
	}
	return n
}

// HistoryTokens estimates the history's size in tokens as bytes/4, the
// rough measure dataset sizes are given in.
func (c *Case) HistoryTokens() int { return c.HistoryBytes() / 4 }

// CountInHistory returns how many times s occurs (without overlaps) in the
// contents of the case's messages, each message searched on its own.
func (c *Case) CountInHistory(s string) int {
	if s == "" {
		return 0
	}
	n := 0
	for _, sess := range c.Sessions {
		for _, m := range sess.Messages {
			n += strings.Count(m.Content, s)
		}
	}
	return n
}

// CheckPlanted checks what a generator guarantees beyond Validate: every
// evidence string occurs exactly once in the history (so that recall of it
// is unambiguous), and every part of every answer occurs in it. It returns
// the first problem found.
func (c *Case) CheckPlanted() error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("generated case is invalid: %w", err)
	}
	for _, q := range c.Questions {
		for _, e := range q.Evidence {
			if n := c.CountInHistory(e); n != 1 {
				return fmt.Errorf("question %s: evidence %q occurs %d times, want exactly once", q.ID, e, n)
			}
		}
		for _, part := range q.AnswerParts() {
			if c.CountInHistory(part) == 0 {
				return fmt.Errorf("question %s: answer %q does not occur in the history", q.ID, part)
			}
		}
	}
	return nil
}

// maxProblems caps how many problems Validate reports for one case.
const maxProblems = 20

// Validate checks the case: non-empty unique ids, known roles, sessions with
// a time and in time order, questions with type, text, answer and at least
// one non-empty evidence string, each evidence occurring verbatim in some
// message. It reports every problem found (up to a cap), joined.
func (c *Case) Validate() error {
	var probs []string
	add := func(format string, args ...any) {
		if len(probs) < maxProblems {
			probs = append(probs, fmt.Sprintf(format, args...))
		} else if len(probs) == maxProblems {
			probs = append(probs, "more problems omitted")
		}
	}
	if c.ID == "" {
		add("empty case id")
	}
	if len(c.Sessions) == 0 {
		add("no sessions")
	}
	sessIDs := make(map[string]int, len(c.Sessions))
	for i, s := range c.Sessions {
		where := fmt.Sprintf("session %d (%q)", i+1, s.ID)
		if s.ID == "" {
			add("session %d: empty id", i+1)
		} else if j, dup := sessIDs[s.ID]; dup {
			add("%s: duplicate session id (also session %d)", where, j+1)
		} else {
			sessIDs[s.ID] = i
		}
		if s.Time.IsZero() {
			add("%s: missing time", where)
		} else if i > 0 && s.Time.Before(c.Sessions[i-1].Time) {
			add("%s: time %s is before the previous session's %s", where,
				s.Time.Format(time.RFC3339), c.Sessions[i-1].Time.Format(time.RFC3339))
		}
		if len(s.Messages) == 0 {
			add("%s: no messages", where)
		}
		for k, m := range s.Messages {
			if !ValidRole(m.Role) {
				add("%s: message %d: unknown role %q", where, k+1, m.Role)
			}
		}
	}
	qIDs := make(map[string]int, len(c.Questions))
	for i, q := range c.Questions {
		where := fmt.Sprintf("question %d (%q)", i+1, q.ID)
		if q.ID == "" {
			add("question %d: empty id", i+1)
		} else if j, dup := qIDs[q.ID]; dup {
			add("%s: duplicate question id (also question %d)", where, j+1)
		} else {
			qIDs[q.ID] = i
		}
		if q.Type == "" {
			add("%s: empty type", where)
		}
		if strings.TrimSpace(q.Question) == "" {
			add("%s: empty question text", where)
		}
		if strings.TrimSpace(q.Answer) == "" {
			add("%s: empty answer", where)
		}
		if len(q.Evidence) == 0 {
			add("%s: no evidence", where)
		}
		for k, ev := range q.Evidence {
			switch {
			case ev == "":
				add("%s: evidence %d is empty", where, k+1)
			case c.CountInHistory(ev) == 0:
				add("%s: evidence %d %q does not occur in any message of the history", where, k+1, clip(ev, 80))
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return &ValidationError{CaseID: c.ID, Problems: probs}
}

// ValidationError lists what is wrong with one case.
type ValidationError struct {
	// CaseID is the id of the invalid case (may be empty).
	CaseID string
	// Problems describes each problem found.
	Problems []string
}

// Error implements error.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("case %q: %s", e.CaseID, strings.Join(e.Problems, "; "))
}

// clip shortens s to at most n bytes for error messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
