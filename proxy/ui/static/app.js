// MegaContext inspector: a single page over the admin API
// (/megacontext/v1/). Plain JavaScript, no build step. Every text that
// comes from memory is written with textContent, never as HTML.
"use strict";

const API = "/megacontext/v1/";
const state = { key: sessionStorage.getItem("mcKey") || "", open: false };

// h builds an element: h("td", {class: "num"}, "12"). Kids may be nested
// arrays of any depth (a view returns lists of lists): all are flattened.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, opts = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers.Authorization = "Bearer " + state.key;
  const res = await fetch(API + path, { method: opts.method || "GET", headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!res.ok) {
    const msg = (data && data.error && data.error.message) || res.statusText;
    throw new APIError(res.status, msg);
  }
  return data;
}

const enc = (s) => encodeURIComponent(s);
const fmtInt = (n) => (n || 0).toLocaleString("en-US");
const fmtTime = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 16) : "");
const fmtBytes = (n) => (n >= 1 << 20 ? (n / (1 << 20)).toFixed(1) + " MiB" : n >= 1024 ? (n / 1024).toFixed(1) + " KiB" : n + " B");
const pct = (x) => Math.round((x || 0) * 100) + " %";

function show(...nodes) {
  const app = document.getElementById("app");
  app.replaceChildren(...nodes);
}

function fail(err) {
  if (err instanceof APIError && (err.status === 401 || err.status === 403)) {
    location.hash = "#/login";
    return;
  }
  show(h("p", { class: "error", id: "error" }, String(err.message || err)));
}

// ---- routing ----

const routes = [
  [/^#\/login$/, viewLogin],
  [/^#\/policy$/, viewPolicy],
  [/^#\/c\/([^/]+)\/(timeline|tree|windows|ask|curation)$/, viewContext],
  [/^#\/c\/([^/]+)$/, (id) => { location.hash = "#/c/" + id + "/timeline"; }],
  [/^#\/?$/, viewContexts],
];

async function route() {
  // When the page started drawing this view (the tree reports its load time from it).
  window.__routeStart = performance.now();
  const hash = location.hash || "#/";
  for (const a of document.querySelectorAll("#topnav a")) {
    a.classList.toggle("active", (a.dataset.nav === "policy") === hash.startsWith("#/policy") && !hash.startsWith("#/login"));
  }
  document.getElementById("signout").hidden = !state.key;
  document.getElementById("whoami").textContent = state.open ? "open proxy (no keys configured)" : state.key ? "signed in" : "";
  for (const [re, view] of routes) {
    const m = hash.match(re);
    if (m) {
      try { await view(...m.slice(1).map(decodeURIComponent)); } catch (err) { fail(err); }
      return;
    }
  }
  show(h("p", { class: "error" }, "No such page."));
}

// ---- login ----

function viewLogin() {
  const input = h("input", { id: "key", type: "password", autocomplete: "off", placeholder: "admin API key", "aria-label": "admin API key" });
  const msg = h("p", { class: "error", id: "login-error" });
  const form = h("form", { class: "card login", id: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    state.key = input.value.trim();
    try {
      await api("contexts");
      sessionStorage.setItem("mcKey", state.key);
      location.hash = "#/";
    } catch (err) {
      state.key = "";
      msg.textContent = err.status === 403 ? "This key lacks the admin scope." : err.status === 401 ? "Invalid key." : String(err.message);
    }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "The inspector uses the admin API: sign in with a key that has the \"admin\" scope. It sees its own tenant only, filtered by its policy clearances."),
  input, h("button", { class: "primary", type: "submit" }, "Sign in"), msg);
  show(form);
  input.focus();
}

// ---- contexts ----

async function viewContexts() {
  const list = (await api("contexts")).data;
  list.sort((a, b) => (b.updated > a.updated ? 1 : b.updated < a.updated ? -1 : 0));
  const rows = list.map((c) => h("tr", { dataset: { id: c.id } },
    h("td", {}, h("a", { href: "#/c/" + enc(c.id) + "/timeline" }, c.id)),
    h("td", { class: "num" }, fmtInt(c.messages)),
    h("td", { class: "num" }, fmtInt(c.tokens)),
    h("td", { class: "num" }, fmtBytes(c.disk_bytes)),
    h("td", {}, fmtTime(c.created)),
    h("td", {}, fmtTime(c.updated))));
  show(h("h1", {}, "MegaContexts"),
    list.length ? h("table", { id: "contexts" },
      h("thead", {}, h("tr", {}, h("th", {}, "id"), h("th", { class: "num" }, "messages"), h("th", { class: "num" }, "tokens"), h("th", { class: "num" }, "on disk"), h("th", {}, "created"), h("th", {}, "last active"))),
      h("tbody", {}, rows)) : h("p", { class: "muted", id: "contexts" }, "No MegaContext yet."));
}

// ---- one context ----

async function viewContext(id, tab) {
  const st = await api("contexts/" + enc(id));
  const tabs = ["timeline", "tree", "windows", "ask", "curation"].map((t) =>
    h("a", { href: "#/c/" + enc(id) + "/" + t, class: t === tab ? "active" : null, dataset: { tab: t } }, t[0].toUpperCase() + t.slice(1)));
  const stats = h("div", { class: "stats", id: "stats" },
    h("span", {}, h("b", {}, fmtInt(st.messages)), " messages"),
    h("span", {}, h("b", {}, fmtInt(st.tokens)), " tokens"),
    h("span", {}, h("b", {}, fmtInt(st.blocks)), " blocks"),
    h("span", {}, "levels ", h("b", {}, (st.nodes_per_level || []).join(" / "))),
    h("span", {}, h("b", {}, fmtInt(st.threads)), " threads"),
    h("span", {}, h("b", {}, fmtInt(st.superseded_messages)), " superseded"),
    h("span", {}, "last active ", h("b", {}, fmtTime(st.updated))));
  const body = h("section", { id: "view-" + tab, dataset: { context: id } });
  show(h("h1", {}, id), stats, h("nav", { class: "tabs" }, tabs), body);
  await ({ timeline: tabTimeline, tree: tabTree, windows: tabWindows, ask: tabAsk, curation: tabCuration })[tab](id, body, st);
}

// Timeline: messages in arrival order, each thread a colour; branches and
// superseded turns marked.
const threadColours = ["#2f5fd0", "#1f9d55", "#c2410c", "#7c3aed", "#0e7490", "#b91c1c", "#a16207", "#4d7c0f"];

async function tabTimeline(id, body) {
  const pins = (await api("contexts/" + enc(id) + "/pins")).data;
  const list = h("div", { id: "timeline" });
  const more = h("button", { type: "button", id: "more" }, "Load more");
  const root = new Map(); // seq -> thread root seq
  const kids = new Map(); // parent -> child seqs
  let from = 0;
  const load = async () => {
    const msgs = (await api("contexts/" + enc(id) + "/messages?from=" + from + "&limit=200")).data;
    for (const m of msgs) {
      root.set(m.seq, m.parent < 0 ? m.seq : (root.get(m.parent) ?? m.parent));
      if (!kids.has(m.parent)) kids.set(m.parent, []);
      kids.get(m.parent).push(m.seq);
    }
    for (const m of msgs) {
      const r = root.get(m.seq);
      const sib = kids.get(m.parent) || [];
      const pinned = pins.some((p) => p.msg === m.seq);
      const row = h("div", { class: "msg" + (m.superseded ? " superseded" : ""), dataset: { seq: m.seq, thread: r } },
        h("span", { class: "seq" }, "#" + m.seq, m.parent >= 0 ? " ← #" + m.parent : ""),
        h("span", { class: "time" }, fmtTime(m.time)),
        h("span", { class: "role" }, m.role, m.name ? " (" + m.name + ")" : ""),
        h("span", { class: "text" }, m.text),
        h("span", {},
          h("span", { class: "badge" }, "thread #" + r),
          m.parent >= 0 && sib.length > 1 ? h("span", { class: "badge branch" }, "branch " + (sib.indexOf(m.seq) + 1) + "/" + sib.length) : null,
          m.superseded ? h("span", { class: "badge superseded" }, "superseded") : null,
          m.partial ? h("span", { class: "badge partial" }, "partial") : null,
          pinned ? h("span", { class: "badge pinned" }, "pinned") : null,
          m.role !== "system" && m.role !== "developer" && !pinned ? h("button", { type: "button", class: "pin", dataset: { seq: m.seq }, onclick: async (ev) => {
            ev.target.disabled = true;
            try {
              await api("contexts/" + enc(id) + "/pins", { method: "POST", body: { msg: m.seq } });
              ev.target.replaceWith(h("span", { class: "badge pinned" }, "pinned"));
            } catch (err) { ev.target.disabled = false; alertLine(body, err); }
          } }, "Pin") : null));
      row.style.setProperty("--thread", threadColours[r % threadColours.length]);
      list.append(row);
    }
    from += msgs.length;
    more.hidden = msgs.length < 200;
  };
  more.addEventListener("click", load);
  body.append(h("p", { class: "muted" }, "Every message in arrival order; each thread has its colour, a branch (an edit or a regenerate) is marked, superseded turns are faded."), list, more);
  await load();
}

function alertLine(body, err) {
  body.prepend(h("p", { class: "error" }, String(err.message || err)));
}

// Tree: loaded a level and a range at a time; a node shows its gist,
// headline, span, telemetry and pin state; opening it loads its children.
async function tabTree(id, body) {
  const t0 = window.__routeStart ?? performance.now();
  const top = await api("contexts/" + enc(id) + "/tree?level=-1&limit=512");
  const tree = h("ul", { id: "tree", dataset: { levels: top.levels.join(","), fanout: top.fanout } });
  const zoom = (f) => {
    const z = Math.min(2, Math.max(0.6, (parseFloat(getComputedStyle(tree).getPropertyValue("--zoom")) || 1) * f));
    tree.style.setProperty("--zoom", z.toFixed(2));
  };
  body.append(h("div", { class: "zoombar" },
    h("button", { type: "button", id: "zoom-out", onclick: () => zoom(0.85) }, "−"),
    h("button", { type: "button", id: "zoom-in", onclick: () => zoom(1.15) }, "+"),
    h("span", { class: "muted" }, "levels (blocks first): " + top.levels.join(" / ") + ", fan-out " + top.fanout + ". Open a node to load its children.")),
    tree);
  for (const n of top.nodes) tree.append(treeNode(id, n, top.fanout));
  // The level below the top opens at once: the first screen shows structure.
  const firstOpen = [...tree.querySelectorAll(":scope > li.node")].slice(0, 4);
  await Promise.all(firstOpen.map((li) => li.open && li.open()));
  const ms = performance.now() - t0;
  tree.dataset.loadMs = ms.toFixed(1);
  window.__treeLoadMs = ms;
}

function treeNode(id, n, fanout) {
  const f = n.focus || {};
  const li = h("li", { class: "node" + (n.pinned ? " pinned" : ""), dataset: { level: n.level, index: n.index, resident: f.resident || 0, expanded: f.expanded || 0 } });
  const toggle = h("button", { type: "button", class: "toggle", "aria-label": "open" }, n.children ? "▸" : "·");
  li.append(h("div", { class: "head", title: n.text },
    toggle,
    h("span", { class: "lvl" }, (n.level ? "L" + n.level : "block") + " #" + n.index),
    n.headline ? h("span", { class: "headline" }, n.headline) : null,
    h("span", { class: "gist" }, n.level ? n.text : (n.role ? n.role + ": " : "") + n.text),
    h("span", { class: "tele" }, "blocks " + n.first_block + "–" + n.last_block + " · " + fmtInt(n.tokens) + " tok · " + fmtTime(n.time) +
      " · expanded " + (f.expanded || 0) + " · resident " + (f.resident || 0) + " · swap " + pct(n.swap_rate) + " · questions " + (f.questions || 0)),
    n.pinned ? h("span", { class: "badge pinned" }, "pinned") : null,
    n.pruned ? h("span", { class: "badge pruned" }, "pruned") : null));
  let loaded = false;
  li.open = async () => {
    if (!n.children) return;
    if (loaded) {
      const ul = li.querySelector(":scope > ul");
      ul.hidden = !ul.hidden;
      toggle.textContent = ul.hidden ? "▸" : "▾";
      return;
    }
    loaded = true;
    const page = await api("contexts/" + enc(id) + "/tree?level=" + (n.level - 1) + "&from=" + n.index * fanout + "&limit=" + fanout);
    const ul = h("ul", {});
    for (const c of page.nodes) ul.append(treeNode(id, c, fanout));
    li.append(ul);
    toggle.textContent = "▾";
  };
  toggle.addEventListener("click", () => li.open().catch(fail));
  return li;
}

// Windows: the last kept windows as the model saw them, each entry
// coloured by its reason, the verbatim tail and the omitted matches.
const reasons = [["outline", "r-outline"], ["recent", "r-recent"], ["expanded", "r-expanded"], ["hysteresis", "r-hysteresis"], ["weak match", "r-weak"], ["pinned", "r-pinned"]];
const reasonClass = new Map(reasons);

function legend() {
  return h("div", { class: "legend" }, reasons.map(([r, c]) => h("span", { class: c }, r)));
}

// memoryText renders the memory text with each entry's bytes in a span of
// its reason's colour.
function memoryText(memory, entries) {
  const pre = h("pre", { class: "memory" });
  if (!memory) { pre.textContent = "(no memory in this window)"; return pre; }
  const bytes = new TextEncoder().encode(memory);
  const dec = new TextDecoder();
  const sorted = [...entries].filter((e) => e.at && e.at[1] > e.at[0]).sort((a, b) => a.at[0] - b.at[0]);
  let pos = 0;
  for (const e of sorted) {
    if (e.at[0] > pos) pre.append(dec.decode(bytes.subarray(pos, e.at[0])));
    const label = e.reason + (e.round ? " (round " + e.round + ")" : "") + (e.score ? ", score " + e.score.toFixed(2) : "") +
      (e.terms && e.terms.length ? ", terms: " + e.terms.join(", ") : "") + (e.similarity ? ", similarity " + e.similarity.toFixed(2) : "");
    pre.append(h("span", { class: "entry " + (reasonClass.get(e.reason) || ""), title: label, dataset: { reason: e.reason, level: e.level, index: e.index } },
      dec.decode(bytes.subarray(e.at[0], e.at[1]))));
    pos = e.at[1];
  }
  if (pos < bytes.length) pre.append(dec.decode(bytes.subarray(pos)));
  return pre;
}

function omittedTable(om) {
  if (!om || !om.length) return h("p", { class: "muted" }, "No relevant block was left out.");
  return h("table", { class: "omitted" },
    h("thead", {}, h("tr", {}, h("th", {}, "block"), h("th", {}, "message"), h("th", { class: "num" }, "score"), h("th", {}, "round"), h("th", {}, "why"), h("th", {}, "terms"))),
    h("tbody", {}, om.map((o) => h("tr", { dataset: { why: o.why } },
      h("td", {}, "#" + o.block), h("td", {}, "#" + o.msg), h("td", { class: "num" }, o.score.toFixed(2)), h("td", {}, o.round), h("td", {}, o.why), h("td", {}, (o.terms || []).join(", "))))));
}

function entryTable(entries) {
  const counts = {};
  for (const e of entries) counts[e.reason] = (counts[e.reason] || 0) + 1;
  return h("p", { class: "muted" }, "Entries: ", Object.entries(counts).map(([r, n]) => h("span", { class: "badge " + (reasonClass.get(r) || "") }, r + " " + n)));
}

function windowBody(w) {
  return [legend(), memoryText(w.memory, w.entries || []), entryTable(w.entries || []),
    h("h2", {}, "Verbatim tail"),
    (w.tail || []).length ? (w.tail || []).map((m) => h("div", { class: "tailmsg" }, m.role + ": " + m.text)) : h("p", { class: "muted" }, "(as sent)"),
    h("h2", {}, "Relevant blocks left out"), omittedTable(w.omitted_matches)];
}

async function tabWindows(id, body) {
  const ws = (await api("contexts/" + enc(id) + "/windows")).data;
  if (!ws.length) {
    body.append(h("p", { class: "muted", id: "windows" }, "No window kept yet: the last windows of live requests show here (memory.keep_windows)."));
    return;
  }
  const list = h("div", { id: "windows" });
  ws.forEach((w, i) => {
    const d = h("details", { class: "card window", open: i === 0 ? true : null, dataset: { i } },
      h("summary", {}, h("div", { class: "window-head" },
        h("span", { class: "q" }, w.question || "(no question)"),
        h("span", { class: "muted" }, fmtTime(w.time)),
        h("span", {}, "budget " + fmtInt(w.budget)),
        h("span", {}, "window " + fmtInt(w.window_tokens) + " tok"),
        h("span", {}, "memory " + fmtInt(w.memory_tokens)),
        h("span", {}, "expanded " + w.expanded),
        h("span", {}, "swap " + pct(w.swap_rate)),
        h("span", { class: "muted" }, "upstream " + w.upstream_status))),
      windowBody(w));
    list.append(d);
  });
  body.append(list);
}

// Ask: a dry run of the window for a question, with its reasons.
async function tabAsk(id, body) {
  const q = h("textarea", { id: "ask-q", rows: 2, placeholder: "Ask a question as a user would…" });
  const budget = h("input", { id: "ask-budget", type: "number", min: 64, placeholder: "budget (default: the model's)" });
  const out = h("div", { id: "ask-result" });
  const form = h("form", { class: "inline", id: "ask", onsubmit: async (ev) => {
    ev.preventDefault();
    out.replaceChildren(h("p", { class: "muted" }, "Assembling…"));
    const req = { query: q.value };
    if (budget.value) req.budget = parseInt(budget.value, 10);
    try {
      const w = await api("contexts/" + enc(id) + "/window", { method: "POST", body: req });
      out.replaceChildren(h("div", { class: "window-head card" },
        h("span", {}, "budget " + fmtInt(w.budget)), h("span", {}, "window " + fmtInt(w.window_tokens) + " tok"),
        h("span", {}, "memory " + fmtInt(w.memory_tokens)), h("span", {}, "expanded " + w.expanded),
        h("span", {}, (w.messages || []).length + " messages upstream")), ...windowBody(w));
      out.dataset.done = "1";
    } catch (err) { out.replaceChildren(h("p", { class: "error" }, String(err.message))); }
  } }, q, budget, h("button", { class: "primary", type: "submit", id: "ask-go" }, "Show the window"));
  body.append(h("p", { class: "muted" }, "The window a live request with this question would get now, at this budget, exactly (nothing is stored)."), form, out);
}

// Curation: pins and retention rules.
async function tabCuration(id, body) {
  const pins = (await api("contexts/" + enc(id) + "/pins")).data;
  const ret = await api("contexts/" + enc(id) + "/retention");
  const reload = () => { body.replaceChildren(); tabCuration(id, body).catch(fail); };
  const pinRows = pins.map((p) => h("tr", { dataset: { pin: p.id } },
    h("td", {}, p.id), h("td", {}, p.msg >= 0 ? "#" + p.msg : "span"), h("td", {}, p.first_block + "–" + p.last_block), h("td", {}, fmtTime(p.created)),
    h("td", {}, h("button", { type: "button", class: "unpin", onclick: async () => {
      try { await api("contexts/" + enc(id) + "/pins/" + p.id, { method: "DELETE" }); reload(); } catch (err) { alertLine(body, err); }
    } }, "Unpin"))));
  const seq = h("input", { id: "pin-msg", type: "number", min: 0, placeholder: "message #" });
  const pinForm = h("form", { class: "inline", id: "pin-form", onsubmit: async (ev) => {
    ev.preventDefault();
    try { await api("contexts/" + enc(id) + "/pins", { method: "POST", body: { msg: parseInt(seq.value, 10) } }); reload(); } catch (err) { alertLine(body, err); }
  } }, seq, h("button", { type: "submit" }, "Pin message"));
  body.append(h("h2", {}, "Pins"),
    h("p", { class: "muted" }, "A pinned message is in every window, within memory.pin_share of the budget."),
    pins.length ? h("table", { id: "pins" }, h("thead", {}, h("tr", {}, h("th", {}, "pin"), h("th", {}, "message"), h("th", {}, "blocks"), h("th", {}, "pinned"), h("th", {}, ""))), h("tbody", {}, pinRows))
      : h("p", { class: "muted", id: "pins" }, "Nothing pinned."),
    pinForm);
  const rules = ret.rules || [];
  body.append(h("h2", {}, "Retention"),
    h("p", { class: "muted" }, "What each configured rule would prune now (raw text; gists stay). Nothing changes until you apply it; a prune is recorded in provenance."));
  if (!rules.length) {
    body.append(h("p", { class: "muted", id: "retention" }, "No retention rule configured (retention.rules)."));
    return;
  }
  body.append(h("table", { id: "retention" },
    h("thead", {}, h("tr", {}, h("th", {}, "rule"), h("th", {}, "matches"), h("th", { class: "num" }, "messages"), h("th", { class: "num" }, "blocks"), h("th", { class: "num" }, "tokens"), h("th", { class: "num" }, "saves"), h("th", {}, ""))),
    h("tbody", {}, ret.data.map((p, i) => {
      const r = rules[i];
      const btn = h("button", { type: "button", class: "danger prune", disabled: p.messages === 0 ? true : null, dataset: { rule: p.rule } }, "Prune now");
      btn.addEventListener("click", async () => {
        if (btn.dataset.armed !== "1") { btn.dataset.armed = "1"; btn.textContent = "Confirm prune"; return; }
        btn.disabled = true;
        try {
          const plan = await api("contexts/" + enc(id) + "/retention/" + enc(p.rule), { method: "POST" });
          body.replaceChildren();
          await tabCuration(id, body);
          body.prepend(h("p", { class: "muted", id: "pruned" }, "Pruned " + fmtInt(plan.messages) + " messages (" + fmtBytes(plan.bytes_saved) + ") with rule " + plan.rule + "."));
          body.dataset.lastPrune = p.rule;
        } catch (err) { alertLine(body, err); }
      });
      return h("tr", { dataset: { rule: p.rule } },
        h("td", {}, p.rule), h("td", {}, "older than " + r.older_than_days + " days" + (r.never_expanded ? ", never shown" : "")),
        h("td", { class: "num" }, fmtInt(p.messages)), h("td", { class: "num" }, fmtInt(p.blocks)), h("td", { class: "num" }, fmtInt(p.tokens)),
        h("td", { class: "num" }, fmtBytes(p.bytes_saved)), h("td", {}, btn));
    }))));
}

// ---- policy ----

async function viewPolicy() {
  const counts = (await api("policy")).data;
  show(h("h1", {}, "Policy actions"),
    h("p", { class: "muted" }, "Sensitive spans redacted or withheld for this tenant since the proxy started, by rule (counts only, never text)."),
    counts.length ? h("table", { id: "policy" }, h("thead", {}, h("tr", {}, h("th", {}, "rule"), h("th", {}, "action"), h("th", { class: "num" }, "spans"))),
      h("tbody", {}, counts.map((c) => h("tr", { dataset: { rule: c.rule } }, h("td", {}, c.rule), h("td", {}, c.action), h("td", { class: "num" }, fmtInt(c.count))))))
      : h("p", { class: "muted", id: "policy" }, "No policy action taken yet."));
}

// ---- start ----

document.getElementById("signout").addEventListener("click", () => {
  state.key = "";
  sessionStorage.removeItem("mcKey");
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
(async () => {
  if (!state.key) {
    // An open proxy (no keys configured) needs no sign-in.
    try { await api("contexts"); state.open = true; } catch (_) { if (location.hash !== "#/login") location.hash = "#/login"; }
  }
  route();
})();
