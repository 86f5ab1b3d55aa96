package tree

import (
	"encoding/json"
	"reflect"
	"testing"

	"pgregory.net/rapid"
)

// fullNode sets every field of a Node, so that a field DecodeNode forgot
// shows as a difference.
func fullNode() *Node {
	n := &Node{Level: 1, Index: 2, First: 3, Last: 4, Tokens: 5, Text: "a \"quoted\" text\n", Cost: 6, Short: "short", ShortCost: 7,
		Head: 8, DetailsHead: 10, Join: -1, Msg: 1 << 40, Part: 9, Role: "assistant", Time: 1700000000000, TimeEnd: 1700000000001,
		Tags: []string{"cards", "emails"}, Spans: []Span{{Start: 1, End: 2, Rule: "cards"}}}
	for i := range n.Hash {
		n.Hash[i] = byte(255 - i)
	}
	return n
}

// TestDecodeNodeReadsEveryField: DecodeNode reads back, field for field,
// every field json.Marshal writes (a field added to Node and not to
// DecodeNode fails here).
func TestDecodeNodeReadsEveryField(t *testing.T) {
	n := fullNode()
	rv := reflect.ValueOf(*n)
	for i := 0; i < rv.NumField(); i++ {
		if rv.Field(i).IsZero() {
			t.Fatalf("fullNode leaves %s zero", rv.Type().Field(i).Name)
		}
	}
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNode(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, n) {
		t.Fatalf("decoded %+v\nwant    %+v", got, n)
	}
	// The array form of hashes written before.
	old, _ := json.Marshal(map[string]any{"l": 1, "h": [32]byte(n.Hash)})
	if got, err := DecodeNode(string(old)); err != nil || got.Hash != n.Hash {
		t.Fatalf("old hash form: %v %x", err, got.Hash)
	}
}

// TestDecodeNodeAgreesWithEncodingJSON: on random nodes, DecodeNode and
// encoding/json read the same.
func TestDecodeNodeAgreesWithEncodingJSON(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		n := &Node{Level: rapid.IntRange(0, 9).Draw(rt, "l"), Index: rapid.Int().Draw(rt, "i"), Tokens: rapid.Int().Draw(rt, "n"),
			Text: rapid.String().Draw(rt, "t"), Short: rapid.String().Draw(rt, "s"), Msg: rapid.Int64().Draw(rt, "m"),
			Role: rapid.SampledFrom([]string{"", "user", "tool", "x"}).Draw(rt, "r"), Time: rapid.Int64().Draw(rt, "ts")}
		if rapid.Bool().Draw(rt, "tags") {
			n.Tags = rapid.SliceOfN(rapid.String(), 1, 3).Draw(rt, "g")
			n.Spans = []Span{{Start: rapid.Int().Draw(rt, "ss"), End: rapid.Int().Draw(rt, "se"), Rule: rapid.String().Draw(rt, "sr")}}
		}
		copy(n.Hash[:], rapid.SliceOfN(rapid.Byte(), 32, 32).Draw(rt, "h"))
		b, _ := json.Marshal(n)
		var want Node
		if err := json.Unmarshal(b, &want); err != nil {
			rt.Fatal(err)
		}
		got, err := DecodeNode(string(b))
		if err != nil || !reflect.DeepEqual(*got, want) {
			rt.Fatalf("%s: DecodeNode %+v (%v), encoding/json %+v", b, got, err, want)
		}
	})
}

// FuzzDecodeNode: no record crashes DecodeNode, and whatever encoding/json
// reads as a Node, written back by json.Marshal (the form the store
// holds), DecodeNode reads alike.
func FuzzDecodeNode(f *testing.F) {
	b, _ := json.Marshal(fullNode())
	f.Add(string(b))
	f.Add(`{"l":0,"i":1,"t":"x","h":[1,2,3]}`)
	f.Add(`{"sp":[{"s":1,"e":"x"}]}`)
	f.Add(`[1]`)
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = DecodeNode(s)
		var want Node
		if json.Unmarshal([]byte(s), &want) != nil {
			return
		}
		canon, err := json.Marshal(want)
		if err != nil {
			return
		}
		want = Node{}
		if err := json.Unmarshal(canon, &want); err != nil {
			t.Fatal(err)
		}
		got, err := DecodeNode(string(canon))
		if err != nil {
			t.Fatalf("encoding/json reads %s, DecodeNode: %v", canon, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("%s: DecodeNode %+v, encoding/json %+v", canon, *got, want)
		}
	})
}
