package proxy

import (
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/megacontext/megacontext/memory"
)

// TestAdminNotFoundSaysWhat: a 404 names what is missing, the context or
// the message, block, pin or mounted memory the call named in it.
func TestAdminNotFoundSaysWhat(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{memory.ErrNotFound, "no such MegaContext"},
		{fmt.Errorf("%w: message %d", memory.ErrNotFound, 999), "not found: message 999"},
		{fmt.Errorf("%w: block %d (the context holds %d)", memory.ErrNotFound, 999, 8), "not found: block 999 (the context holds 8)"},
		{fmt.Errorf("%w %q", memory.ErrMountNotFound, "faq"), `not found: mounted memory "faq"`},
	} {
		var ctx fasthttp.RequestCtx
		(&Server{}).adminError(&ctx, tc.err)
		if got := ctx.Response.StatusCode(); got != 404 {
			t.Errorf("%v: status %d", tc.err, got)
		}
		want := fmt.Sprintf(`{"error":{"message":%q,"type":"invalid_request_error","param":null,"code":"not_found"}}`, tc.want)
		if got := string(ctx.Response.Body()); got != want {
			t.Errorf("%v:\n got %s\nwant %s", tc.err, got, want)
		}
	}
}
