// Package fakellama is a TEST FIXTURE: a scriptable, deterministic stand-in
// for a llama.cpp server (and, with Options.Style, for vLLM or a plain
// OpenAI-compatible cloud) that integration tests put behind the MegaContext
// proxy. It is not a model and never will be; nothing in the product may
// import it.
//
// What it imitates, and from where (llama.cpp tools/server sources):
//
//   - Error bodies: {"error":{"code":400,"message":...,"type":...}} as built by
//     format_error_response (server-common.cpp). A prompt of n_ctx tokens or
//     more is refused before any generation with type
//     "exceed_context_size_error", message "request (P tokens) exceeds the
//     available context size (N tokens), try increasing it" and the extra
//     fields n_prompt_tokens and n_ctx inside the error object
//     (server-context.cpp, server_task_result_error::to_json in
//     server-task.cpp). In streaming mode this first error is still a plain
//     JSON response, not an SSE event, as in llama.cpp.
//   - Generation stops when prompt + generated tokens reach n_ctx, with
//     finish_reason "length" (server-context.cpp, "stopped due to running out
//     of context capacity"; STOP_TYPE_LIMIT maps to "length").
//   - chat.completion, chat.completion.chunk and text_completion shapes,
//     including the first {"role":"assistant","content":null} delta, the final
//     chunk with an empty delta and the finish_reason, the usage chunk with an
//     empty choices array when stream_options.include_usage is set, and the
//     "timings" object (server-task.cpp).
//   - GET /props, GET /v1/models (with "meta": n_ctx, n_ctx_train, ...),
//     POST /tokenize (content, a string or an array of strings and token
//     ids as tokenize_mixed takes it, add_special, parse_special, with_pieces),
//     POST /detokenize, POST /apply-template, POST /v1/embeddings
//     (server-context.cpp route handlers, server-common.cpp
//     format_embeddings_response_oaicompat).
//
// The tokenizer is deliberately different from every real one and from the
// proxy's own estimate, so tests notice when the proxy counts with the wrong
// tokenizer: see Tokenize. The chat template is ChatML: see ApplyTemplate.
//
// Scripting: Options.Reply chooses the assistant's text, Server.FailNext
// injects an upstream error, Server.RejectNextContext forces one
// exceed-context error, Options.ChunkDelay and Options.StallAfterChunks slow
// or stall streams, and Server.Requests and Server.Cancelled report what the
// fixture saw.
package fakellama
