// The lineage page: the causal tree of one correlation ID (TraceService),
// drawn as a top-down graph in SVG and coloured as on an event-storming
// board: the request (an external actor) pink, commands blue, events orange,
// policies and saga steps lilac, read models green. Every node links to its
// record or page.
import {h, s, api, allPages, enc, num, fmtTime, fmtInt, short, table, badge, streamLink, lineageLink} from "./dom.js";

const W = 200; // node width
const H = 46; // node height
const GX = 20; // horizontal gap between subtrees
const GY = 28; // vertical gap between levels
const PAD = 16;

const kinds = {
  request: "request (external)",
  command: "command",
  event: "event",
  policy: "policy / saga step",
  readmodel: "read model",
};

// sagaInstances finds the saga instances of a correlation ID, to name the
// policies of the graph.
async function sagaInstances(corr) {
  const sagas = (await api("/v1/sagas")).sagas || [];
  const found = [];
  for (const sg of sagas) {
    const list = await allPages(`/v1/sagas/${enc(sg.name)}/instances`, "instances");
    for (const i of list) if (i.correlation_id === corr) found.push(i);
  }
  return found;
}

// context is the bounded context of a topic: "shop.orders" -> "orders".
function context(topic) {
  const t = String(topic || "");
  const dot = t.lastIndexOf(".");
  return dot >= 0 ? t.slice(dot + 1) : t;
}

// display turns the trace's tree into the graph's: a policy node between an
// event and the commands it caused, read models under the events they
// read, and one request node over the commands nobody in the trace caused.
function display(trace, corr, projections, instances) {
  const saga = instances.length === 1 ? instances[0] : null;
  const readers = (topic) => projections.filter((p) => (p.topics || []).includes(topic));
  const policy = (title, sub, children) => ({
    kind: "policy", title, sub, children,
    href: saga ? `#/saga/${enc(saga.saga)}/${enc(saga.key)}` : "#/sagas",
    tip: `a policy or saga step: ${title} ${sub}` + (saga ? `\nthe request's saga: ${saga.saga} ${saga.key}` : ""),
  });
  const conv = (n) => {
    if (n.kind === "KIND_EVENT" && n.event) {
      const e = n.event;
      const cmds = n.children.filter((c) => c.kind !== "KIND_EVENT");
      const evs = n.children.filter((c) => c.kind === "KIND_EVENT");
      const children = evs.map(conv);
      if (cmds.length) {
        children.unshift(policy("policy", `on ${e.type}`, cmds.map(conv)));
      }
      for (const p of readers(e.topic)) {
        children.push({kind: "readmodel", title: p.name, sub: `projection of ${p.topics.join(", ")}`, href: "#/projections",
          tip: `read model ${p.name}`, children: []});
      }
      const stream = e.headers && e.headers["stream-source"] ? " · stream app" : "";
      return {kind: "event", title: e.type, sub: `${context(e.topic)} · ${short(e.key, 14)} · v${e.version}${stream}`,
        href: `#/stream/${enc(e.topic)}/${enc(e.key)}?v=${enc(e.version)}`,
        tip: `${e.type}\n${e.position}\nkey ${e.key}, version ${e.version}\n${fmtTime(e.timestamp)}`,
        children};
    }
    if (n.kind === "KIND_COMMAND") {
      const first = n.children.find((c) => c.event);
      const e = first ? first.event : null;
      // Named by its type; commands of events written before the bus
      // recorded the type are named by where they went.
      const type = n.command_type || "";
      return {kind: "command", title: type || (e ? `command to ${context(e.topic)}` : "command"),
        sub: e ? (type ? `to ${context(e.topic)} · ${short(e.key, 14)}` : `key ${short(e.key, 24)}`) : short(n.id, 20),
        href: e && !e.key_escaped ? `#/stream/${enc(e.topic)}/${enc(e.key)}?v=${enc(e.version)}` : "",
        tip: `command ${type ? type + " " : ""}${n.id}` + (e ? `\nto ${e.topic}/${e.key}` : ""),
        children: n.children.map(conv)};
    }
    // A deadline: a saga's timer (or its failure handler) that sent commands.
    const failure = String(n.id).startsWith("failure/");
    return policy(failure ? "saga failure handler" : "deadline fired", saga ? `${saga.saga} saga` : short(n.id, 22),
      n.children.map(conv));
  };
  const roots = trace.roots || [];
  const fromOutside = roots.filter((r) => r.kind === "KIND_COMMAND" && !r.caused_by);
  const rest = roots.filter((r) => !fromOutside.includes(r));
  const out = [];
  if (fromOutside.length) {
    out.push({kind: "request", title: "request", sub: `correlation ${short(corr, 20)}`,
      tip: `the request with correlation ID ${corr}`, children: fromOutside.map(conv)});
  }
  out.push(...rest.map(conv));
  return out;
}

// layout places a forest top-down: leaves side by side, parents centred
// over their children. It sets x, y on every node and returns the size.
function layout(roots) {
  let nextX = 0;
  let maxDepth = 0;
  const place = (n, depth) => {
    n.y = depth * (H + GY);
    maxDepth = Math.max(maxDepth, depth);
    if (!n.children.length) {
      n.x = nextX;
      nextX += W + GX;
      return;
    }
    for (const c of n.children) place(c, depth + 1);
    n.x = (n.children[0].x + n.children[n.children.length - 1].x) / 2;
  };
  for (const r of roots) place(r, 0);
  return {width: Math.max(nextX - GX, W), height: (maxDepth + 1) * (H + GY) - GY};
}

function clip(text, max) {
  text = String(text);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function drawGraph(roots) {
  const size = layout(roots);
  const width = size.width + 2 * PAD;
  const height = size.height + 2 * PAD;
  const edges = s("g", {class: "edges"});
  const nodes = s("g", {class: "nodes"});
  const walk = (n, parent) => {
    if (parent) {
      const x1 = parent.x + W / 2;
      const y1 = parent.y + H;
      const x2 = n.x + W / 2;
      const y2 = n.y;
      const my = (y1 + y2) / 2;
      edges.append(s("path", {d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 3}`, "marker-end": "url(#arrow)"}));
    }
    const g = s("g", {class: `node kind-${n.kind}`, transform: `translate(${n.x},${n.y})`, "data-kind": n.kind},
      s("title", {}, n.tip || n.title),
      s("rect", {width: W, height: H, rx: 3}),
      s("text", {x: 10, y: 19, class: "t"}, clip(n.title, 24)),
      s("text", {x: 10, y: 36, class: "sub"}, clip(n.sub || "", 29)));
    nodes.append(n.href ? s("a", {href: n.href, class: "node-link"}, g) : g);
    for (const c of n.children) walk(c, n);
  };
  for (const r of roots) walk(r, null);
  return s("svg", {class: "graph", width, height, viewBox: `${-PAD} ${-PAD} ${width} ${height}`, role: "img",
    "aria-label": "the causal tree of the request"},
  s("defs", {}, s("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
    s("path", {d: "M0,0 L10,5 L0,10 z", class: "arrowhead"}))),
  edges, nodes);
}

function legend() {
  return h("ul", {class: "legend"}, Object.entries(kinds).map(([k, label]) =>
    h("li", {}, h("span", {class: `swatch kind-${k}`}), label)));
}

// TAIL is how many of the latest records of each partition the list of
// recent requests reads.
const TAIL = 25;

// recent lists the correlation IDs of the latest records in the log (the
// last TAIL of every partition of the topics that are not compacted) and of
// the sagas' instances, latest first,
// with what the page knows of each.
async function recent() {
  const topics = await allPages("/v1/topics", "topics");
  const reads = [];
  // Compacted topics hold state (snapshots, changelogs), not the flow of a
  // request: they are skipped.
  for (const t of topics.filter((t) => t.cleanup_policy !== "compact")) {
    for (const p of t.partitions || []) {
      const start = num(p.start_offset);
      const end = num(p.end_offset);
      if (end <= start) continue;
      const from = Math.max(start, end - TAIL);
      // A partition the server cannot read (it answers 500 for a record
      // whose key is not UTF-8, such as a stream app's changelog) is left
      // out, not the whole list.
      reads.push(api(`/v1/topics/${enc(t.name)}/partitions/${p.partition}?from_offset=${from}&limit=${TAIL}`)
        .then((r) => r.events || [], (e) => { console.warn(String(e)); return []; }));
    }
  }
  const byID = new Map();
  const entry = (id, ts) => {
    let c = byID.get(id);
    if (!c) {
      c = {id, records: 0, contexts: new Set(), first: ts, firstType: "", last: ts, instance: null};
      byID.set(id, c);
    }
    return c;
  };
  for (const events of await Promise.all(reads)) {
    for (const e of events) {
      if (!e.correlation_id) continue;
      const c = entry(e.correlation_id, e.timestamp);
      c.records++;
      c.contexts.add(context(e.topic));
      if (String(e.timestamp) <= String(c.first) || !c.firstType) {
        c.first = e.timestamp;
        c.firstType = e.type;
      }
      if (String(e.timestamp) > String(c.last)) c.last = e.timestamp;
    }
  }
  const sagas = (await api("/v1/sagas")).sagas || [];
  for (const sg of sagas) {
    for (const i of await allPages(`/v1/sagas/${enc(sg.name)}/instances`, "instances")) {
      if (!i.correlation_id) continue;
      const c = entry(i.correlation_id, i.updated || i.started);
      c.instance = i;
    }
  }
  return [...byID.values()].sort((a, b) => String(b.last).localeCompare(String(a.last)));
}

// lineage is the page: a correlation ID to type, recent ones to click, and
// the graph of the one chosen.
export async function lineage(el, [corr]) {
  el.append(h("div", {class: "title"}, h("h1", {}, "Lineage"),
    h("p", {class: "muted"}, "Follow a request through the system: every command, event and saga step its correlation ID caused, by causation.")));
  const input = h("input", {name: "corr", placeholder: "correlation ID", value: corr || "", required: true, size: 40});
  el.append(h("form", {class: "inline", id: "lineage-form", onsubmit: (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) location.hash = `#/lineage/${enc(v)}`;
  }}, input, h("button", {type: "submit"}, "Show lineage")));
  if (!corr) {
    const list = await recent();
    el.append(h("h2", {}, "Recent requests ", h("span", {class: "muted"}, `(in the latest ${TAIL} records of each partition of the topics not compacted, and the sagas' instances)`)),
      list.length ? table(["Correlation ID", "First event", "Records", "Contexts", "Saga", "Last seen"], list.slice(0, 50).map((c) =>
        [lineageLink(c.id), c.firstType || "—", fmtInt(c.records), [...c.contexts].sort().join(", ") || "—",
          c.instance ? [h("a", {href: `#/saga/${enc(c.instance.saga)}/${enc(c.instance.key)}`}, c.instance.saga), " ", badge(c.instance.status)] : "—",
          fmtTime(c.last)]), {class: "grid", id: "recent-table"})
        : h("p", {class: "muted"}, "No record carries a correlation ID yet. Any correlation ID in the stream browser links here too."));
    return;
  }
  const [trace, projections, instances] = await Promise.all([
    api(`/v1/traces/${enc(corr)}`),
    api("/v1/projections").then((r) => r.projections || []).catch(() => []),
    sagaInstances(corr).catch(() => []),
  ]);
  const roots = display(trace, corr, projections, instances);
  let commands = 0;
  const countCmds = (n) => { if (n.kind === "command") commands++; n.children.forEach(countCmds); };
  roots.forEach(countCmds);
  el.append(h("p", {class: "summary"},
    h("strong", {}, corr), ` · ${fmtInt(trace.events)} events, ${fmtInt(commands)} commands`,
    instances.map((i) => [" · saga ", h("a", {href: `#/saga/${enc(i.saga)}/${enc(i.key)}`}, `${i.saga} ${i.key}`), ` (${i.status})`]),
    h("span", {class: "muted"}, ` · ${fmtInt(trace.scanned)} records scanned`)));
  if (trace.truncated) {
    el.append(h("div", {class: "error"}, "The scan stopped at its limit: the tree may be missing events."));
  }
  if (!roots.length) {
    el.append(h("p", {class: "muted", id: "no-trace"}, `No record carries the correlation ID "${corr}".`));
    return;
  }
  el.append(legend(), h("div", {class: "graph-box"}, drawGraph(roots)));
  const events = [];
  const collect = (n) => { if (n.event) events.push(n.event); n.children.forEach(collect); };
  (trace.roots || []).forEach(collect);
  events.sort((a, b) => String(a.timestamp).localeCompare(String(b.timestamp)));
  el.append(h("h2", {}, "Records"), table(["Time", "Type", "Record", "Position", "Caused by"], events.map((e) =>
    [fmtTime(e.timestamp), e.type, streamLink(e.topic, e.key, e.version, `${e.topic}/${short(e.key, 18)} v${num(e.version)}`),
      e.position, short(e.causation_id, 13)]), {class: "grid", id: "trace-records"}));
}
