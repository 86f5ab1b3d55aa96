// SDK conformance: the official OpenAI Node SDK (`openai`) and the Vercel
// AI SDK's default OpenAI provider (`openai('model')` from @ai-sdk/openai,
// which speaks the Responses API) drive the real megacontext binary, in
// front of the fakellama fixture and, when ../shared has it, of the real
// llama.cpp server (natively and translated). Every call must parse in the
// SDKs exactly as they parse OpenAI itself.
//
//   cd integration/node && npm ci && node sdk.test.mjs
//
// It builds the binaries with `go build` (or takes MEGACONTEXT_BIN and
// FAKELLAMA_BIN), starts every server on 127.0.0.1, prints one line per
// check and a summary line "N passed, N failed", and exits non-zero when
// anything failed.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, existsSync, readFileSync, rmSync, openSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, generateObject, streamText, tool, jsonSchema, stepCountIs } from "ai";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const shared = resolve(root, "../shared");
const work = mkdtempSync(join(tmpdir(), "megacontext-sdk-"));
const children = [];
let passed = 0;
let failed = 0;
let skipped = 0;

// shutdown stops every server (SIGTERM, SIGKILL after 10 s) and waits for
// them: a running child would also keep node itself from exiting.
async function shutdown() {
  await Promise.all(children.map((c) => new Promise((res) => {
    if (c.exitCode !== null || c.signalCode !== null) return res();
    const t = setTimeout(() => c.kill("SIGKILL"), 10_000);
    c.once("exit", () => { clearTimeout(t); res(); });
    c.kill("SIGTERM");
  })));
  rmSync(work, { recursive: true, force: true });
}
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => process.exit(130));
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok    ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL  ${name}: ${err?.stack ?? err}`);
  }
}

function skip(name, why) {
  skipped++;
  console.log(`skip  ${name}: ${why}`);
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

function build(pkg, name, envName) {
  if (process.env[envName]) return process.env[envName];
  // Not in the servers' working directory: megacontext would read a file
  // named megacontext there as its config.
  mkdirSync(join(work, "bin"), { recursive: true });
  const out = join(work, "bin", name);
  execFileSync("go", ["build", "-o", out, pkg], { cwd: root, stdio: "inherit" });
  return out;
}

// start runs a server and waits until url answers 200.
async function start(cmd, args, url, log, env = {}) {
  const fd = openSync(log, "a");
  const cwd = join(work, "run");
  mkdirSync(cwd, { recursive: true });
  const child = spawn(cmd, args, { cwd, stdio: ["ignore", fd, fd], env: { ...cleanEnv(), ...env } });
  children.push(child);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    try {
      const r = await fetch(url);
      if (r.status === 200) return child;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${cmd} did not become ready at ${url}:\n${readFileSync(log, "utf8").slice(-3000)}`);
}

function cleanEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("MEGACONTEXT_") && !k.startsWith("LLAMA_ARG_")) env[k] = v;
  }
  return env;
}

async function startProxy(upstream, name, env = {}) {
  const port = await freePort();
  const log = join(work, `${name}.log`);
  await start(bins.megacontext, ["serve", "--listen", `127.0.0.1:${port}`, "--upstream", upstream, "--data", join(work, `data-${name}`)],
    `http://127.0.0.1:${port}/healthz`, log, env);
  const text = readFileSync(log, "utf8");
  const m = text.match(/base_url=(\S+)/);
  assert.ok(m, `the listening line names no base_url:\n${text}`);
  assert.equal(m[1], `http://127.0.0.1:${port}/v1`);
  return m[1];
}

const bins = {
  megacontext: build(".", "megacontext", "MEGACONTEXT_BIN"),
  fakellama: build("./tools/fakellama", "fakellama", "FAKELLAMA_BIN"),
};

const weatherTool = {
  type: "function",
  name: "get_weather",
  description: "Current weather of a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  strict: true,
};

// suite runs every check against one proxy. opts.fake: the upstream is
// fakellama (it echoes the user's words and calls tools it is asked about);
// opts.max: output tokens per call.
async function suite(label, baseURL, opts) {
  const run = `${label}-${Date.now().toString(36)}`;
  const client = (ctx) => new OpenAI({ baseURL, apiKey: "sk-unused", defaultHeaders: ctx ? { "X-MegaContext-Id": ctx } : {} });
  const max = opts.max;

  await check(`${label}: chat.completions.create`, async () => {
    const { data, response } = await client(`${run}-chat`).chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "Hello there, my name is Ada." }], max_tokens: max })
      .withResponse();
    assert.equal(data.object, "chat.completion");
    assert.ok(data.choices[0].message.content.length > 0, "empty reply");
    assert.equal(response.headers.get("x-megacontext-id"), `${run}-chat`);
    if (opts.fake) assert.match(data.choices[0].message.content, /Ada/);
  });

  await check(`${label}: chat.completions.create stream`, async () => {
    const stream = await client(`${run}-chat`).chat.completions.create({
      model: "m", stream: true, stream_options: { include_usage: true }, max_tokens: max,
      messages: [{ role: "user", content: "Tell me about the lighthouse keeper." }],
    });
    let text = "";
    let usage;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(text.length > 0, "no streamed text");
    assert.ok(usage?.completion_tokens > 0, "no usage");
  });

  let first;
  await check(`${label}: responses.create`, async () => {
    const { data, response } = await client(`${run}-resp`).responses
      .create({ model: "m", instructions: "Answer briefly.", input: "My locker code is ZX-4471-QK.", max_output_tokens: max, metadata: { run } })
      .withResponse();
    first = data;
    assert.match(data.id, /^resp_/);
    assert.equal(data.object, "response");
    assert.ok(["completed", "incomplete"].includes(data.status), data.status);
    assert.ok(data.output_text.length > 0, "empty output_text");
    assert.equal(data.output[0].type, "message");
    assert.equal(data.instructions, "Answer briefly.");
    assert.deepEqual(data.metadata, { run });
    assert.ok(data.usage.input_tokens > 0 && data.usage.output_tokens > 0, JSON.stringify(data.usage));
    assert.equal(response.headers.get("x-megacontext-id"), `${run}-resp`);
    assert.ok(Number(response.headers.get("x-megacontext-window-tokens")) > 0);
    if (opts.fake) assert.match(data.output_text, /ZX-4471-QK/);
  });

  await check(`${label}: responses.create stream`, async () => {
    const stream = await client(`${run}-resp`).responses.create({
      model: "m", input: [{ role: "user", content: [{ type: "input_text", text: "Tell me a story about a red fox." }] }],
      max_output_tokens: max, stream: true,
    });
    const types = [];
    let seq = -1;
    let text = "";
    let done;
    for await (const ev of stream) {
      types.push(ev.type);
      assert.equal(ev.sequence_number, seq + 1, `sequence_number after ${seq}: ${JSON.stringify(ev)}`);
      seq = ev.sequence_number;
      if (ev.type === "response.output_text.delta") text += ev.delta;
      if (ev.type === "response.output_text.done") assert.equal(ev.text, text);
      if (ev.type === "response.completed" || ev.type === "response.incomplete") done = ev.response;
    }
    assert.deepEqual(types.slice(0, 4), ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]);
    assert.deepEqual(types.slice(-4, -1), ["response.output_text.done", "response.content_part.done", "response.output_item.done"]);
    assert.ok(text.length > 0, "no deltas");
    assert.ok(done, `no final event: ${types.join(" ")}`);
    assert.equal(done.output[0].content[0].text, text);
    assert.ok(done.usage.output_tokens > 0);
    const again = await client().responses.retrieve(done.id);
    assert.equal(again.output_text, text);
  });

  await check(`${label}: responses.stream helper (finalResponse)`, async () => {
    const stream = client(`${run}-resp`).responses.stream({ model: "m", input: "Tell me about the moon.", max_output_tokens: max });
    let deltas = "";
    stream.on("response.output_text.delta", (ev) => { deltas += ev.delta; });
    const fin = await stream.finalResponse();
    assert.equal(fin.output_text, deltas);
    assert.ok(deltas.length > 0);
  });

  await check(`${label}: previous_response_id chains 21 turns`, async () => {
    assert.ok(first, "needs responses.create");
    const c = client();
    let prev = first;
    let history = 0;
    for (let turn = 0; turn < 20; turn++) {
      const { data, response } = await c.responses
        .create({ model: "m", previous_response_id: prev.id, input: `Turn ${turn}: the garden has ${turn + 3} roses.`, max_output_tokens: max, stream: turn % 2 === 1 })
        .withResponse()
        .then(async (r) => {
          if (turn % 2 === 0) return r;
          let fin;
          for await (const ev of r.data) if (ev.type === "response.completed" || ev.type === "response.incomplete") fin = ev.response;
          return { data: fin, response: r.response };
        });
      assert.equal(data.previous_response_id, prev.id);
      // Continuing stores only the new input: memory recognized the chain.
      assert.equal(response.headers.get("x-megacontext-new-messages"), "1", `turn ${turn}`);
      assert.equal(response.headers.get("x-megacontext-id"), `${run}-resp`, "the chain stays in its MegaContext");
      const h = Number(response.headers.get("x-megacontext-history-tokens"));
      assert.ok(h > history, `history did not grow at turn ${turn}: ${h} <= ${history}`);
      history = h;
      // A streamed turn's final event carries the response without the
      // SDK's output_text convenience field.
      const text = data.output.flatMap((o) => o.content ?? []).map((c) => c.text).join("");
      if (opts.fake) assert.match(text, new RegExp(`Turn ${turn}:`));
      prev = data;
    }
    const got = await c.responses.retrieve(prev.id);
    assert.equal(got.id, prev.id);
  });

  await check(`${label}: a new conversation recalls what the Responses API was told`, async () => {
    const ctx = `${run}-recall-a`;
    await client(ctx).responses.create({ model: "m", input: "Remember this: the vault password is OCTOPUS-7731.", max_output_tokens: max });
    const { response } = await client(ctx).chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "What is the vault password?" }], max_tokens: max })
      .withResponse();
    assert.ok(Number(response.headers.get("x-megacontext-memory-tokens")) > 0, "no memory in the window");
    await assertWindowHolds(baseURL, ctx, "What is the vault password?", "OCTOPUS-7731");
  });

  await check(`${label}: a new conversation recalls what chat completions were told`, async () => {
    const ctx = `${run}-recall-b`;
    await client(ctx).chat.completions.create({ model: "m", messages: [{ role: "user", content: "Remember this: my parking spot is B-52-LEVEL3." }], max_tokens: max });
    const { response } = await client(ctx).responses.create({ model: "m", input: "Where is my parking spot?", max_output_tokens: max }).withResponse();
    assert.ok(Number(response.headers.get("x-megacontext-memory-tokens")) > 0, "no memory in the window");
    await assertWindowHolds(baseURL, ctx, "Where is my parking spot?", "B-52-LEVEL3");
  });

  await check(`${label}: the user field selects the MegaContext`, async () => {
    const { response } = await client().responses.create({ model: "m", input: "hi", user: `${run}-user`, max_output_tokens: max }).withResponse();
    assert.equal(response.headers.get("x-megacontext-id"), `${run}-user`);
  });

  await check(`${label}: responses.delete, then retrieve is 404`, async () => {
    const c = client(`${run}-del`);
    const r = await c.responses.create({ model: "m", input: "Short-lived.", max_output_tokens: max });
    await c.responses.delete(r.id);
    await assert.rejects(c.responses.retrieve(r.id), (e) => e instanceof OpenAI.NotFoundError);
    await assert.rejects(c.responses.create({ model: "m", input: "x", previous_response_id: r.id }), (e) => e instanceof OpenAI.NotFoundError);
  });

  await check(`${label}: errors are OpenAI errors`, async () => {
    const c = client(`${run}-err`);
    await assert.rejects(c.responses.create({ model: "m" }), (e) => e instanceof OpenAI.BadRequestError && /input/.test(e.message));
    await assert.rejects(c.responses.create({ model: "m", input: "x", max_output_tokens: -1 }), (e) => e instanceof OpenAI.BadRequestError && e.param === "max_output_tokens");
    await assert.rejects(c.chat.completions.create({ model: "m", messages: [] }), (e) => e instanceof OpenAI.BadRequestError);
  });

  if (opts.fake) {
    await check(`${label}: responses.create with a function tool, then its output`, async () => {
      const c = client(`${run}-tools`);
      const r = await c.responses.create({ model: "m", input: "What is the weather in Paris?", tools: [weatherTool], max_output_tokens: max });
      const call = r.output.find((o) => o.type === "function_call");
      assert.ok(call, JSON.stringify(r.output));
      assert.equal(call.name, "get_weather");
      assert.deepEqual(JSON.parse(call.arguments), { city: "Paris" });
      const r2 = await c.responses.create({
        model: "m", previous_response_id: r.id, tools: [weatherTool], max_output_tokens: max,
        input: [{ type: "function_call_output", call_id: call.call_id, output: '{"temperature":"21C"}' }],
      });
      assert.equal(r2.status, "completed");
      // The same exchange resent whole (no previous_response_id) is
      // recognized as stored: only the new question is new.
      const { response } = await c.responses.create({
        model: "m", tools: [weatherTool], max_output_tokens: max,
        input: ["What is the weather in Paris?", call, { type: "function_call_output", call_id: call.call_id, output: '{"temperature":"21C"}' }, ...r2.output, "Thanks!"]
          .map((x) => (typeof x === "string" ? { role: "user", content: x } : x)),
      }).withResponse();
      assert.equal(response.headers.get("x-megacontext-new-messages"), "1");
    });

    await check(`${label}: streamed function call events`, async () => {
      const stream = await client(`${run}-tools`).responses.create({ model: "m", input: "Please get weather for Oslo", tools: [weatherTool], tool_choice: "required", stream: true });
      let args = "";
      let done;
      for await (const ev of stream) {
        if (ev.type === "response.function_call_arguments.delta") args += ev.delta;
        if (ev.type === "response.function_call_arguments.done") done = ev;
      }
      assert.ok(done, "no function_call_arguments.done");
      assert.equal(done.arguments, args);
      assert.deepEqual(JSON.parse(args), { city: "Oslo" });
    });
  }

  const provider = (ctx) => createOpenAI({ baseURL, apiKey: "sk-unused", headers: { "X-MegaContext-Id": ctx } });

  await check(`${label}: Vercel AI SDK generateText (openai('model'), Responses API)`, async () => {
    const res = await generateText({ model: provider(`${run}-vercel`)("m"), prompt: "Write one sentence about a blue whale.", maxOutputTokens: max });
    assert.ok(res.text.length > 0, "empty text");
    assert.ok(["stop", "length"].includes(res.finishReason), res.finishReason);
    assert.ok(res.usage.outputTokens > 0, JSON.stringify(res.usage));
    assert.match(res.response.id, /^resp_/);
    if (opts.fake) assert.match(res.text, /blue whale/);
  });

  await check(`${label}: Vercel AI SDK streamText (openai('model'), Responses API)`, async () => {
    const res = streamText({ model: provider(`${run}-vercel`)("m"), system: "You tell stories.", prompt: "Tell me about a sleepy cat.", maxOutputTokens: max });
    let text = "";
    for await (const part of res.textStream) text += part;
    assert.ok(text.length > 0, "no streamed text");
    assert.equal(await res.text, text);
    assert.ok(["stop", "length"].includes(await res.finishReason));
    assert.ok((await res.usage).outputTokens > 0);
  });

  await check(`${label}: Vercel AI SDK multi-turn (item references to stored output)`, async () => {
    const model = provider(`${run}-vercel-multi`)("m");
    const a = await generateText({ model, prompt: "My favourite colour is teal.", maxOutputTokens: max });
    const b = await generateText({ model, messages: [{ role: "user", content: "My favourite colour is teal." }, ...a.response.messages, { role: "user", content: "What is my favourite colour?" }], maxOutputTokens: max });
    assert.ok(b.text.length > 0);
  });

  if (opts.fake) {
    await check(`${label}: Vercel AI SDK tool loop`, async () => {
      const res = await generateText({
        model: provider(`${run}-vercel-tools`)("m"),
        prompt: "What is the weather in Lima?",
        tools: {
          get_weather: tool({
            description: "Current weather of a city",
            inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }),
            execute: async ({ city }) => ({ city, temperature: "19C" }),
          }),
        },
        stopWhen: stepCountIs(3),
      });
      assert.equal(res.steps[0].toolCalls[0].input.city, "Lima");
      assert.ok(res.steps.length >= 2, `steps: ${res.steps.length}`);
    });
  } else {
    // A real model obeys the schema's grammar (llama.cpp's own
    // /v1/responses ignores text.format: the proxy translates such requests).
    await check(`${label}: Vercel AI SDK generateObject (structured output)`, async () => {
      const res = await generateObject({
        model: provider(`${run}-vercel-object`)("m"),
        prompt: "Did Lily see any birds? How many?",
        maxOutputTokens: 64,
        temperature: 0,
        schema: jsonSchema({ type: "object", additionalProperties: false, required: ["answer", "count"],
          properties: { answer: { type: "string", enum: ["yes", "no"] }, count: { type: "integer", minimum: 0, maximum: 9 } } }),
      });
      assert.ok(["yes", "no"].includes(res.object.answer) && Number.isInteger(res.object.count), JSON.stringify(res.object));
    });
  }
}

// assertWindowHolds dry-runs the window of a question (admin API) and
// checks that it carries the fact.
async function assertWindowHolds(baseURL, ctx, question, fact) {
  const r = await fetch(`${baseURL.replace(/\/v1$/, "")}/megacontext/v1/contexts/${encodeURIComponent(ctx)}/window`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: question }),
  });
  assert.equal(r.status, 200);
  const w = await r.json();
  assert.ok(w.memory.includes(fact), `the window of "${question}" does not hold ${fact}:\n${w.memory}`);
}

function llamaServerPaths() {
  const bin = join(shared, "bin/llama-server");
  const model = join(shared, "models/stories260K.gguf");
  if (!existsSync(bin) || !existsSync(model)) return [null, `${shared} has no bin/llama-server and models/stories260K.gguf`];
  try {
    if (!/\bavx2\b/.test(readFileSync("/proc/cpuinfo", "utf8"))) return [null, "the CPU lacks AVX2"];
  } catch {}
  return [{ bin, model }, ""];
}

async function main() {
  const fakePort = await freePort();
  const fakeURL = `http://127.0.0.1:${fakePort}`;
  await start(bins.fakellama, ["--listen", `127.0.0.1:${fakePort}`], `${fakeURL}/health`, join(work, "fakellama.log"));
  await suite("fakellama", await startProxy(fakeURL, "fake"), { fake: true, max: 64 });

  const [ls, why] = llamaServerPaths();
  if (!ls) {
    skip("llama.cpp", why);
  } else {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // As the Go launcher (integration/llamaserver_test.go) runs it: one
    // compute thread, enough HTTP threads for concurrent requests.
    await start(ls.bin, ["-m", ls.model, "--host", "127.0.0.1", "--port", String(port), "-c", "2048", "--parallel", "1",
      "--threads", "1", "--threads-http", "8", "--no-webui"], `${url}/health`, join(work, "llama-server.log"));
    await suite("llama.cpp native", await startProxy(url, "llama-native"), { fake: false, max: 24 });
    await suite("llama.cpp translated", await startProxy(url, "llama-translate", { MEGACONTEXT_UPSTREAM_RESPONSES: "translate" }), { fake: false, max: 24 });
  }
}

try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL  setup: ${err?.stack ?? err}`);
} finally {
  await shutdown();
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 ? 1 : 0;
