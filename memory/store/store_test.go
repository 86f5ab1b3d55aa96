package store

import (
	"fmt"
	"testing"
)

func TestPutScanDeleteReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, SyncAlways)
	if err != nil {
		t.Fatal(err)
	}
	var kvs []KV
	for i := 0; i < 5; i++ {
		kvs = append(kvs, KV{Key("m", "acme", "ctx:1", fmt.Sprintf("%03d", i)), fmt.Sprint(i)})
	}
	kvs = append(kvs, KV{Key("m", "acme", "ctx:10", "000"), "other"})
	if err := s.Put(kvs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, SyncSecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	if err := s.Scan(Prefix("m", "acme", "ctx:1"), func(k, v string) bool { got = append(got, v); return true }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("scan = %v (a context id that is a prefix of another must not leak)", got)
	}
	n, err := s.Delete(nil, []string{Prefix("m", "acme", "ctx:1")})
	if err != nil || n != 5 {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if _, ok, _ := s.Get(Key("m", "acme", "ctx:10", "000")); !ok {
		t.Fatal("delete removed another context's record")
	}
}

func TestKeyEscapesSeparators(t *testing.T) {
	if Key("a:b", "c") == Key("a", "b:c") {
		t.Fatal("keys collide")
	}
}
