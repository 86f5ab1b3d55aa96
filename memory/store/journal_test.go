package store

import (
	"fmt"
	"testing"
)

func TestJournalRoundTrip(t *testing.T) {
	ops := []journalOp{{Op: opSet, Key: "a", Value: "\x00\xff"}, {Op: opDel, Key: "b"}, {Op: opSet, Key: "", Value: ""}}
	got, err := decodeJournal(encodeJournal(ops))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ops) {
		t.Fatalf("round trip = %v, %v", got, err)
	}
	if _, err := decodeJournal("s\x05ab"); err == nil {
		t.Fatal("a cut journal decoded")
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add(encodeJournal([]journalOp{{Op: opSet, Key: "k", Value: "v"}, {Op: opDel, Key: "d"}}))
	f.Fuzz(func(t *testing.T, s string) {
		ops, err := decodeJournal(s)
		if err != nil {
			return
		}
		again, err := decodeJournal(encodeJournal(ops))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(ops) {
			t.Fatalf("decoded %q as %v, which does not round trip: %v, %v", s, ops, again, err)
		}
	})
}
