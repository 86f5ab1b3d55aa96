package proxy

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/jsondepth"
	"github.com/megacontext/megacontext/proxy/upstream"
)

// streamResponse relays an upstream stream as Responses API events: a
// chat completion stream (translated) or a native Responses stream
// (normalized: the proxy's ids, sequence numbers and indexes, whole
// response objects). The answer is stored before the final event goes out.
func (s *Server) streamResponse(ctx *fasthttp.RequestCtx, resp *upstream.Response, stop func(), req *responsesRequest, id string, created time.Time, native bool, save func(*answer, time.Time, bool) ([]byte, error)) {
	copyHeaders(ctx, resp)
	ctx.SetStatusCode(200)
	ctx.SetContentType("text/event-stream; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(bw *bufio.Writer) {
		defer stop()
		defer resp.Body.Close()
		s.translateStream(bw, resp.Body, req, id, created, native, save)
	})
}

// translateStream writes the events of an upstream stream read from body
// (see streamResponse) to bw.
func (s *Server) translateStream(bw *bufio.Writer, body io.ReadCloser, req *responsesRequest, id string, created time.Time, native bool, save func(*answer, time.Time, bool) ([]byte, error)) {
	es := &eventStream{bw: bw, req: req, created: created, a: &answer{id: id, status: "in_progress"}, open: -1, textItem: -1, calls: map[int]int{}, upstreamIDs: map[string]int{}}
	es.ev.b = getEventBuf()
	defer func() { putEventBuf(es.ev.b) }()
	es.begin()
	var feed func(upstream.Event)
	var acc upstream.Accumulator
	if native {
		feed = es.nativeEvent
	} else {
		acc.OnDelta = es.chatDelta
		feed = func(ev upstream.Event) { _ = acc.AddEvent(ev) }
	}
	rd := upstream.NewSSEReader(body)
	var readErr error
	// done is set once a chat stream said [DONE]: what follows is only the
	// end of its body, read once the answer is out (drainUpstream).
	done := false
	for !es.gone && !done {
		ev, err := rd.Next()
		if len(ev.Data) > 0 && !ev.Incomplete {
			feed(ev)
			es.flush()
			done = !native && acc.Done()
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
	}
	if readErr != nil {
		s.log.Warn("stream from upstream ended with an error", "err", readErr)
		s.m.upstreamErrors.WithLabelValues("stream").Inc()
	}
	es.closeItem()
	a := es.a
	complete := false
	if !native {
		msg := acc.Message()
		a.usage, a.model = usageFromChat(msg.Usage), msg.Model
		switch {
		case msg.Error != "":
			a.fail("server_error", msg.Error)
		case msg.FinishReason != "" || msg.Done:
			a.setFinish(msg.FinishReason)
		}
	}
	switch {
	case es.gone:
	case a.status == "in_progress" && readErr != nil:
		a.fail("server_error", "the upstream stream failed before the answer was complete: "+readErr.Error())
	case a.status == "in_progress":
		a.fail("server_error", "the upstream stream ended before the answer was complete")
	default:
		complete = a.status != "failed"
	}
	obj, err := save(a, created, complete)
	if es.gone {
		return
	}
	if err != nil {
		// The client must not take an answer memory lost for a whole one.
		fail := storeFailure(err)
		a.fail(fail.code, fail.message)
		obj = req.object(a, created).appendJSON(nil)
	}
	if a.err != nil {
		es.emitError(a.err.Code, a.err.Message)
	}
	typ := "response.completed"
	switch a.status {
	case "incomplete":
		typ = "response.incomplete"
	case "failed":
		typ = "response.failed"
	}
	es.emitRaw(typ, obj)
	es.flush()
	if done {
		drainUpstream(body)
	}
}

// copyHeaders copies an upstream response's headers worth relaying.
func copyHeaders(ctx *fasthttp.RequestCtx, resp *upstream.Response) {
	for k, vs := range resp.Header {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Server") || strings.EqualFold(k, "Date") || strings.EqualFold(k, "Content-Type") {
			continue
		}
		for _, v := range vs {
			ctx.Response.Header.Add(k, v)
		}
	}
}

// eventStream writes a response's event stream and keeps its answer.
type eventStream struct {
	bw      *bufio.Writer
	req     *responsesRequest
	created time.Time
	// a is the answer so far.
	a *answer
	// seq is the next sequence_number.
	seq int
	// open is the index of the output item being streamed, -1 for none.
	open int
	// calls maps a chat stream's tool-call positions to output items.
	calls map[int]int
	// pendingArgs holds a chat tool call's arguments until its name is
	// known (an item is announced with its name).
	pendingArgs map[int]string
	// upstreamIDs maps a native stream's item ids to output items.
	upstreamIDs map[string]int
	// gone is set once a write to the client failed.
	gone bool
	// ev is the event being built, in a buffer reused from event to event
	// and from stream to stream (eventBufs).
	ev jsonObject
	// text holds the text or the arguments of the open item (textItem,
	// textArgs say which) as they grow, so that a delta appends to them
	// without copying what came before (see grow).
	text strings.Builder
	// textItem is the item text belongs to, -1 for none.
	textItem int
	// textArgs is set when text holds the item's arguments.
	textArgs bool
}

// eventBufs keeps the buffers events are built in between streams.
var eventBufs sync.Pool

// maxPooledEventBuf is the largest buffer eventBufs keeps: an event
// carrying a whole long answer is not worth holding on to.
const maxPooledEventBuf = 64 << 10

// getEventBuf returns an empty buffer for es.ev.
func getEventBuf() []byte {
	if b, ok := eventBufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 4096)
}

// putEventBuf hands a buffer back to eventBufs.
func putEventBuf(b []byte) {
	if cap(b) <= maxPooledEventBuf {
		eventBufs.Put(&b)
	}
}

// Events are written by hand (see jsonObject), fields in the documented
// order.

// event starts an event of type typ in es.ev, with its sequence number.
func (es *eventStream) event(typ string) {
	es.ev.open(es.ev.b)
	es.ev.str("type", typ)
	es.ev.num("sequence_number", int64(es.seq))
}

// at adds the fields that place an event in an item: item_id,
// output_index and, for content events, content_index.
func (es *eventStream) at(i int, content bool) {
	es.ev.str("item_id", es.a.items[i].ID)
	es.ev.num("output_index", int64(i))
	if content {
		es.ev.num("content_index", 0)
	}
}

// send ends the event and writes it.
func (es *eventStream) send(typ string) {
	es.write(typ, es.ev.close())
}

// appendTextPart appends the output_text content part of text.
func appendTextPart(b []byte, text string) []byte {
	b = append(b, `{"type":"output_text","text":`...)
	b = gjson.AppendJSONString(b, text)
	return append(b, `,"annotations":[],"logprobs":[]}`...)
}

// emitRaw writes a response-carrying event around an object's JSON.
func (es *eventStream) emitRaw(typ string, obj []byte) {
	es.event(typ)
	es.ev.raw("response", obj)
	es.send(typ)
}

// emitError writes an error event.
func (es *eventStream) emitError(code, message string) {
	es.event("error")
	es.ev.str("code", code)
	es.ev.str("message", message)
	es.ev.raw("param", []byte("null"))
	es.send("error")
}

// emitItem writes an output_item event with the item as it stands.
func (es *eventStream) emitItem(typ string, i int) {
	es.event(typ)
	es.ev.num("output_index", int64(i))
	es.ev.key("item")
	es.ev.b = es.a.items[i].appendJSON(es.ev.b)
	es.send(typ)
}

func (es *eventStream) write(typ string, data []byte) {
	es.seq++
	if es.gone {
		return
	}
	_, err := es.bw.WriteString("event: ")
	if err == nil {
		_, err = es.bw.WriteString(typ)
	}
	if err == nil {
		_, err = es.bw.WriteString("\ndata: ")
	}
	if err == nil {
		_, err = es.bw.Write(data)
	}
	if err == nil {
		_, err = es.bw.WriteString("\n\n")
	}
	if err != nil {
		es.gone = true
	}
}

func (es *eventStream) flush() {
	if !es.gone && es.bw.Flush() != nil {
		es.gone = true
	}
}

// begin announces the response.
func (es *eventStream) begin() {
	obj := es.req.object(es.a, es.created).appendJSON(nil)
	es.emitRaw("response.created", obj)
	es.emitRaw("response.in_progress", obj)
	es.flush()
}

// openItem closes the open item and announces it.
func (es *eventStream) openItem(it outputItem) int {
	es.closeItem()
	i := len(es.a.items)
	if it.ID == "" {
		switch it.Type {
		case "message":
			it.ID = itemID("msg", es.a.id, i)
		case "reasoning":
			it.ID = itemID("rs", es.a.id, i)
		case "function_call":
			it = callItem(es.a.id, i, upstream.ToolCall{ID: it.CallID, Name: it.Name})
		}
	}
	es.a.items = append(es.a.items, it)
	es.open = i
	es.text = strings.Builder{}
	es.textItem, es.textArgs = i, it.Type == "function_call"
	es.emitItem("response.output_item.added", i)
	if it.Type == "message" {
		es.event("response.content_part.added")
		es.at(i, true)
		es.ev.key("part")
		es.ev.b = appendTextPart(es.ev.b, "")
		es.send("response.content_part.added")
	}
	return i
}

// closeItem finishes the open item, if any.
func (es *eventStream) closeItem() {
	i := es.open
	if i < 0 {
		return
	}
	es.open = -1
	it := &es.a.items[i]
	it.Done = true
	switch it.Type {
	case "message":
		es.event("response.output_text.done")
		es.at(i, true)
		es.ev.str("text", it.Text)
		es.ev.raw("logprobs", []byte("[]"))
		es.send("response.output_text.done")
		es.event("response.content_part.done")
		es.at(i, true)
		es.ev.key("part")
		es.ev.b = appendTextPart(es.ev.b, it.Text)
		es.send("response.content_part.done")
	case "function_call":
		es.event("response.function_call_arguments.done")
		es.at(i, false)
		es.ev.str("name", it.Name)
		es.ev.str("arguments", it.Arguments)
		es.send("response.function_call_arguments.done")
	case "reasoning":
		es.event("response.reasoning_text.done")
		es.at(i, true)
		es.ev.str("text", it.Text)
		es.send("response.reasoning_text.done")
	}
	es.emitItem("response.output_item.done", i)
}

// Delta event types.
const (
	textDelta      = "response.output_text.delta"
	reasoningDelta = "response.reasoning_text.delta"
	argumentsDelta = "response.function_call_arguments.delta"
)

// delta adds d to item i (a message's text, a reasoning item's text, a
// function call's arguments: typ says which) and announces it.
func (es *eventStream) delta(i int, typ, d string) {
	it := &es.a.items[i]
	if typ == argumentsDelta {
		es.grow(i, &it.Arguments, true, d)
	} else {
		es.grow(i, &it.Text, false, d)
	}
	es.event(typ)
	es.at(i, typ != argumentsDelta)
	es.ev.str("delta", d)
	if typ == textDelta {
		es.ev.raw("logprobs", []byte("[]"))
	}
	es.send(typ)
}

// grow appends d to field, item i's arguments (args) or text: through
// es.text while it holds that field, else by concatenation (a delta for an
// item other than the open one).
func (es *eventStream) grow(i int, field *string, args bool, d string) {
	if i != es.textItem || args != es.textArgs || len(*field) != es.text.Len() {
		*field += d
		return
	}
	es.text.WriteString(d)
	*field = es.text.String()
}

// openOf returns the open item if it has type typ, else opens one.
func (es *eventStream) openOf(typ string) int {
	if es.open >= 0 && es.a.items[es.open].Type == typ {
		return es.open
	}
	return es.openItem(outputItem{Type: typ})
}

// chatDelta translates one piece of a chat completion stream.
func (es *eventStream) chatDelta(d upstream.Delta) {
	switch {
	case d.Reasoning != "":
		es.delta(es.openOf("reasoning"), reasoningDelta, d.Reasoning)
	case d.Content != "":
		es.delta(es.openOf("message"), textDelta, d.Content)
	case d.Tool >= 0:
		if i, ok := es.calls[d.Tool]; ok {
			if d.Arguments != "" {
				es.delta(i, argumentsDelta, d.Arguments)
			}
			return
		}
		if d.Call.Name == "" {
			if es.pendingArgs == nil {
				es.pendingArgs = map[int]string{}
			}
			es.pendingArgs[d.Tool] += d.Arguments
			return
		}
		i := es.openItem(callItem(es.a.id, len(es.a.items), d.Call))
		es.a.items[i].Arguments = ""
		es.calls[d.Tool] = i
		if args := es.pendingArgs[d.Tool] + d.Arguments; args != "" {
			es.delta(i, argumentsDelta, args)
		}
	}
}

// nativeEvent normalizes one event of a native Responses stream: item
// events are replayed through the proxy's own writer (its ids, indexes
// and sequence numbers), the response lifecycle events only update the
// answer, and events of other kinds are relayed with their sequence
// number, item id and output index rewritten.
func (es *eventStream) nativeEvent(ev upstream.Event) {
	d := ev.Data
	if !jsondepth.Valid(d) {
		return
	}
	root := gjson.ParseBytes(d)
	typ := root.Get("type").Str
	if typ == "" {
		typ = ev.Name
	}
	upID := root.Get("item_id").Str
	switch typ {
	case "response.created", "response.in_progress", "response.queued",
		"response.content_part.added", "response.content_part.done",
		"response.output_text.done", "response.function_call_arguments.done",
		"response.reasoning_text.done", "response.reasoning_summary_text.done",
		"response.reasoning_summary_part.added", "response.reasoning_summary_part.done":
	case "response.output_item.added":
		es.nativeItem(root.Get("item"))
	case "response.output_text.delta":
		es.delta(es.nativeOpen(upID, "message"), textDelta, root.Get("delta").Str)
	case "response.reasoning_text.delta", "response.reasoning_summary_text.delta":
		es.delta(es.nativeOpen(upID, "reasoning"), reasoningDelta, root.Get("delta").Str)
	case "response.function_call_arguments.delta":
		es.delta(es.nativeOpen(upID, "function_call"), argumentsDelta, root.Get("delta").Str)
	case "response.output_item.done":
		es.nativeDone(root.Get("item"))
	case "response.completed", "response.incomplete", "response.failed":
		es.nativeFinal(root.Get("response"))
	case "error":
		code := root.Get("code").Str
		if code == "" {
			code = "server_error"
		}
		msg := root.Get("message").Str
		if msg == "" {
			msg = root.Get("error.message").Str
		}
		es.a.fail(code, msg)
	default:
		out := d
		if i, ok := es.upstreamIDs[upID]; ok && upID != "" {
			out, _ = sjson.SetBytes(out, "item_id", es.a.items[i].ID)
			out, _ = sjson.SetBytes(out, "output_index", i)
		}
		out, _ = sjson.SetBytes(out, "sequence_number", es.seq)
		es.write(typ, out)
	}
}

// nativeItem opens the output item a native stream announced.
func (es *eventStream) nativeItem(item gjson.Result) {
	upID := item.Get("id").Str
	it := nativeItem(es.a.id, len(es.a.items), item)
	it.Done = false
	switch it.Type {
	case "message", "reasoning":
		it.Text = ""
	case "function_call":
		it.Arguments = ""
	}
	es.upstreamIDs[upID] = es.openItem(it)
}

// nativeOpen returns the item of a native item id, opening one of type typ
// for an id never announced.
func (es *eventStream) nativeOpen(upID, typ string) int {
	if i, ok := es.upstreamIDs[upID]; ok {
		return i
	}
	i := es.openItem(outputItem{Type: typ})
	es.upstreamIDs[upID] = i
	return i
}

// nativeDone closes an item of a native stream, taking the text or
// arguments of the finished item when its deltas did not carry them.
func (es *eventStream) nativeDone(item gjson.Result) {
	i, ok := es.upstreamIDs[item.Get("id").Str]
	if !ok {
		return
	}
	fin := nativeItem(es.a.id, i, item)
	it := &es.a.items[i]
	switch {
	case it.Type == "message" && it.Text == "" && fin.Text != "":
		es.delta(i, textDelta, fin.Text)
	case it.Type == "function_call" && it.Arguments == "" && fin.Arguments != "":
		es.delta(i, argumentsDelta, fin.Arguments)
	case it.Type != "message" && it.Type != "function_call" && it.Type != "reasoning":
		it.Raw = fin.Raw
	}
	if es.open == i {
		es.closeItem()
	}
}

// nativeFinal takes the status and usage of a native stream's final
// response, and its output when the stream carried no item events.
func (es *eventStream) nativeFinal(r gjson.Result) {
	fin := answerFromResponse(es.a.id, []byte(r.Raw))
	es.closeItem()
	if len(es.a.items) == 0 {
		for _, it := range fin.items {
			it.Done = false
			i := es.openItem(outputItem{Type: it.Type, CallID: it.CallID, Name: it.Name, Raw: it.Raw})
			switch it.Type {
			case "message":
				es.delta(i, textDelta, it.Text)
			case "reasoning":
				es.delta(i, reasoningDelta, it.Text)
			case "function_call":
				es.delta(i, argumentsDelta, it.Arguments)
			}
			es.closeItem()
		}
	}
	es.a.usage, es.a.model = fin.usage, fin.model
	es.a.status, es.a.incomplete, es.a.err = fin.status, fin.incomplete, fin.err
}
