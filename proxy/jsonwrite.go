package proxy

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// jsonObject writes one JSON object field by field, in the order given:
// for the Responses API's objects and events, written on every answer
// (streamed ones several times), where encoding/json's reflection and its
// re-validation of embedded JSON would cost more than the rest of the
// translation. Raw values must be valid JSON.
type jsonObject struct {
	b []byte
	n int
}

// open starts an object in b (reusing its memory).
func (j *jsonObject) open(b []byte) {
	j.b, j.n = append(b[:0], '{'), 0
}

func (j *jsonObject) key(k string) {
	if j.n > 0 {
		j.b = append(j.b, ',')
	}
	j.n++
	j.b = append(append(append(j.b, '"'), k...), '"', ':')
}

// str adds a string field.
func (j *jsonObject) str(k, v string) {
	j.key(k)
	j.b = gjson.AppendJSONString(j.b, v)
}

// num adds a number field.
func (j *jsonObject) num(k string, v int64) {
	j.key(k)
	j.b = strconv.AppendInt(j.b, v, 10)
}

// raw adds a field whose value is JSON text.
func (j *jsonObject) raw(k string, v []byte) {
	j.key(k)
	j.b = append(j.b, v...)
}

// obj adds a field whose value is the object fill writes.
func (j *jsonObject) obj(k string, fill func(*jsonObject)) {
	j.key(k)
	inner := jsonObject{b: append(j.b, '{')}
	fill(&inner)
	j.b = append(inner.b, '}')
}

// close ends the object and returns its bytes.
func (j *jsonObject) close() []byte {
	j.b = append(j.b, '}')
	return j.b
}
