// Package upstream is everything the proxy needs to talk to the upstream
// OpenAI-compatible LLM server (llama.cpp server, vLLM, Ollama, OpenAI-style
// clouds).
//
//   - Client (New) forwards requests over fasthttp with streamed response
//     bodies, per-request cancellation that closes the request's connection,
//     a silence timeout and keep-alive reuse; Discover identifies the server,
//     its model and context size; CountTokens counts tokens exactly with the
//     upstream's tokenizer (one request per batch on llama.cpp); Ready is a
//     health check.
//   - Embedder (NewEmbedder) embeds texts through any OpenAI-compatible
//     /v1/embeddings (the memory engine's Embedder for embeddings.url).
//   - SSEReader splits an event stream into events while keeping each
//     event's raw bytes for byte-exact relaying; Accumulator folds
//     chat.completion.chunk events into the final assistant Message, and
//     FromCompletion does the same for a non-streaming completion.
//   - IsContextLengthError, OpenAIError, ErrorJSON and FromTransportError
//     recognize upstream errors and turn them, and transport failures, into
//     OpenAI error JSON.
//
// # Cancellation on fasthttp
//
// fasthttp's client takes no context. The Client therefore splits its
// MaxConns connections into lanes, each a fasthttp.HostClient limited to one
// connection whose Dial function records the connection it opens. A request
// holds its lane exclusively from Do until its body is closed, so it always
// knows its own connection: when the request's context ends, or when the
// upstream stays silent longer than Options.Timeout, that connection is
// closed. This aborts whatever is blocked (dial, write, waiting for headers,
// a body Read) within milliseconds, and the upstream sees the disconnect and
// can stop generating. Finished requests leave the connection idle in the
// lane for keep-alive reuse; a POST that fails on a reused connection the
// server had already closed is retried once on a fresh one.
package upstream
