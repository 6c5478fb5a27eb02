// The pages other than the lineage graph: topics, the stream browser,
// consumer groups, projections and sagas.
import {h, api, post, allPages, enc, num, fmtInt, fmtBytes, fmtSeconds, fmtTime, pretty, payloadText,
  badge, table, errorBox, short, streamLink, lineageLink} from "./dom.js";

function title(text, sub) {
  return h("div", {class: "title"}, h("h1", {}, text), sub ? h("p", {class: "muted"}, sub) : "");
}

function stat(label, value) {
  return h("div", {class: "stat"}, h("div", {class: "stat-value"}, value), h("div", {class: "stat-label"}, label));
}

function retention(t) {
  const parts = [];
  if (num(t.retention_seconds) > 0) parts.push(fmtSeconds(t.retention_seconds));
  if (num(t.retention_bytes) > 0) parts.push(fmtBytes(t.retention_bytes));
  return parts.length ? parts.join(", ") : "forever";
}

// topics lists every topic.
export async function topics(el) {
  const list = await allPages("/v1/topics", "topics");
  let records = 0;
  let bytes = 0;
  for (const t of list) {
    records += num(t.records);
    for (const p of t.partitions || []) bytes += num(p.bytes);
  }
  el.append(title("Topics", "The log: topics, their partitions, cleanup policies and end offsets."),
    h("div", {class: "stats"}, stat("topics", fmtInt(list.length)), stat("records", fmtInt(records)), stat("stored", fmtBytes(bytes))),
    table(["Topic", "Cleanup", "Retention", "Partitions", "Records", "Size", "End offsets", "Created"],
      list.map((t) => [
        h("a", {href: `#/topic/${enc(t.name)}`}, t.name),
        badge(t.cleanup_policy),
        retention(t),
        fmtInt((t.partitions || []).length),
        fmtInt(t.records),
        fmtBytes((t.partitions || []).reduce((a, p) => a + num(p.bytes), 0)),
        fmtInt(t.end_offsets_total),
        fmtTime(t.created),
      ]), {class: "grid", id: "topics-table"}));
}

// topic shows one topic's partitions and its latest records.
export async function topic(el, [name]) {
  const t = await api(`/v1/topics/${enc(name)}`);
  const parts = t.partitions || [];
  el.append(title(t.name, `${parts.length} partitions, cleanup policy ${t.cleanup_policy}, retention ${retention(t)}`),
    h("form", {class: "inline", onsubmit: (e) => {
      e.preventDefault();
      const k = e.target.elements.key.value.trim();
      if (k) location.hash = `#/stream/${enc(t.name)}/${enc(k)}`;
    }}, h("label", {}, "Open the stream of key ", h("input", {name: "key", placeholder: "aggregate ID", required: true})),
    h("button", {type: "submit"}, "Open")),
    h("h2", {}, "Partitions"),
    table(["Partition", "Start offset", "End offset", "Records", "Size"],
      parts.map((p) => [String(p.partition), fmtInt(p.start_offset), fmtInt(p.end_offset), fmtInt(p.records), fmtBytes(p.bytes)]),
      {class: "grid"}));
  const latest = h("div", {}, h("p", {class: "muted"}, "Loading…"));
  el.append(h("h2", {}, "Latest records"), latest);
  const per = 10;
  const events = [];
  const failed = [];
  for (const p of parts) {
    const end = num(p.end_offset);
    if (end <= num(p.start_offset)) continue;
    const from = Math.max(num(p.start_offset), end - per);
    try {
      const r = await api(`/v1/topics/${enc(t.name)}/partitions/${p.partition}?from_offset=${from}&limit=${per}`);
      events.push(...(r.events || []));
    } catch (e) {
      failed.push(h("li", {}, `partition ${p.partition}: ${e.message}`));
    }
  }
  events.sort((a, b) => String(b.timestamp).localeCompare(String(a.timestamp)));
  latest.replaceChildren(failed.length ? h("div", {class: "note"}, "Some partitions could not be read:", h("ul", {}, failed)) : "", table(["Position", "Key", "Version", "Type", "Time", "Correlation"],
    events.slice(0, 30).map((e) => [e.position, streamLink(e.topic, e.key, e.version), fmtInt(e.version), e.type,
      fmtTime(e.timestamp), lineageLink(e.correlation_id, short(e.correlation_id, 20))]), {class: "grid"}));
}

// stream is the stream browser: every event of one key.
export async function stream(el, [topicName, key], query) {
  el.append(title("Stream browser", "The events of one aggregate, with payloads and metadata."));
  const names = (await allPages("/v1/topics", "topics")).map((t) => t.name);
  const sel = h("select", {name: "topic"}, names.map((n) => h("option", {value: n, selected: n === topicName}, n)));
  const keyIn = h("input", {name: "key", placeholder: "key (aggregate ID)", value: key || "", required: true, size: 44});
  el.append(h("form", {class: "inline", onsubmit: (e) => {
    e.preventDefault();
    location.hash = `#/stream/${enc(sel.value)}/${enc(keyIn.value.trim())}`;
  }}, sel, keyIn, h("button", {type: "submit"}, "Show")));
  if (!topicName || !key) {
    el.append(h("p", {class: "muted"}, "Choose a topic and a key, or follow a link from a topic, a trace or a saga."));
    return;
  }
  const events = [];
  let from = 1;
  let head = 0;
  for (let i = 0; i < 50; i++) {
    const r = await api(`/v1/streams/${enc(topicName)}/${enc(key)}?from_version=${from}&limit=500`);
    events.push(...(r.events || []));
    head = num(r.head_version);
    const next = num(r.next_version);
    if (!r.events || r.events.length === 0 || next === 0 || next > head) break;
    from = next;
  }
  const want = num(query.get("v"));
  el.append(h("h2", {}, `${topicName} / ${key}`, h("span", {class: "muted"}, ` — version ${head}, ${events.length} events`)));
  if (events.length === 0) {
    el.append(h("p", {class: "muted"}, "This stream has no events."));
    return;
  }
  const list = h("div", {class: "events"});
  let target = null;
  for (const e of events) {
    const headers = Object.entries(e.headers || {});
    const card = h("article", {class: "event" + (num(e.version) === want ? " selected" : ""), id: `v${e.version}`},
      h("header", {},
        h("span", {class: "version"}, `v${e.version}`),
        h("span", {class: "etype"}, e.type),
        h("span", {class: "schema"}, `schema v${e.schema_version}`),
        h("span", {class: "time"}, fmtTime(e.timestamp))),
      h("div", {class: "event-body"},
        h("pre", {class: "payload"}, payloadText(e)),
        h("dl", {class: "meta"},
          h("dt", {}, "event ID"), h("dd", {}, e.id),
          h("dt", {}, "position"), h("dd", {}, e.position),
          h("dt", {}, "correlation"), h("dd", {}, lineageLink(e.correlation_id) || "—"),
          h("dt", {}, "causation"), h("dd", {}, e.causation_id || "—"),
          headers.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))));
    if (num(e.version) === want) target = card;
    list.append(card);
  }
  el.append(list);
  if (target) target.scrollIntoView({block: "center"});
}

function lagCell(records, seconds) {
  const n = num(records);
  return h("span", {class: n > 0 ? "lag behind" : "lag"}, `${fmtInt(n)} records`, h("span", {class: "muted"}, ` · ${fmtSeconds(seconds)}`));
}

function liveNote() {
  return h("p", {class: "live"}, h("span", {class: "dot"}), "live · updated ", h("span", {class: "updated"}, new Date().toLocaleTimeString()));
}

// groups lists the consumer groups, refreshed every two seconds.
export async function groups(el, _args, _q, ctx) {
  el.append(title("Consumer groups", "Committed offsets, members and lag of every group."));
  const body = h("div", {});
  el.append(body);
  const draw = async () => {
    const list = await allPages("/v1/groups", "groups");
    body.replaceChildren(liveNote(), table(["Group", "Generation", "Members", "Partitions", "Lag"],
      list.map((g) => [h("a", {href: `#/group/${enc(g.name)}`}, g.name), fmtInt(g.generation),
        fmtInt((g.members || []).length), fmtInt((g.partitions || []).length), lagCell(g.lag, g.lag_seconds)]),
      {class: "grid", id: "groups-table"}));
  };
  await draw();
  ctx.every(draw, 2000);
}

// group shows one group: members and their assignments, and each
// partition's committed offset and lag, refreshed every second.
export async function group(el, [name], _q, ctx) {
  el.append(title(name, "A consumer group."));
  const body = h("div", {});
  el.append(body);
  const draw = async () => {
    const g = await api(`/v1/groups/${enc(name)}`);
    const members = g.members || [];
    body.replaceChildren(liveNote(),
      h("div", {class: "stats"}, stat("generation", fmtInt(g.generation)), stat("members", fmtInt(members.length)),
        stat("lag (records)", fmtInt(g.lag)), stat("lag (time)", fmtSeconds(g.lag_seconds))),
      h("h2", {}, "Members"),
      table(["Member", "Topics", "Assignment"], members.map((m) => [m.member_id, (m.topics || []).join(", "),
        (m.assignment || []).map((a) => `${a.topic}/${a.partition}`).join("  ") || "—"]), {class: "grid"}),
      h("h2", {}, "Partitions"),
      table(["Topic", "Partition", "Member", "Committed", "End offset", "Lag"],
        (g.partitions || []).map((p) => [h("a", {href: `#/topic/${enc(p.topic)}`}, p.topic), String(p.partition),
          p.member_id || "—", num(p.committed) < 0 ? "none yet" : fmtInt(p.committed), fmtInt(p.end_offset), lagCell(p.lag, p.lag_seconds)]), {class: "grid"}));
  };
  await draw();
  ctx.every(draw, 1000);
}

function progressBar(p) {
  const f = Math.max(0, Math.min(1, num(p && p.fraction)));
  const label = p ? `${fmtInt(p.done)} / ${fmtInt(p.total)} records` + (p.finished ? " · done" :
    ` · ${fmtInt(Math.round(num(p.rate)))}/s · ETA ${fmtSeconds(p.eta_seconds)}`) : "";
  const bar = h("div", {class: "bar"});
  bar.style.width = `${(f * 100).toFixed(1)}%`; // a CSSOM property: the CSP forbids style attributes
  return h("div", {class: "progress" + (p && p.finished ? " finished" : "")}, bar, h("span", {}, label));
}

// rebuild starts a rebuild and calls onProgress with each progress message
// of the server's stream (newline-delimited JSON through the gateway).
async function rebuild(name, onProgress) {
  const r = await fetch(`/v1/projections/${enc(name)}:rebuild`, {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).message || msg; } catch { /* keep statusText */ }
    throw new Error(`rebuild ${name}: ${r.status} ${msg}`);
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (value) buf += value;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const m = JSON.parse(line);
      if (m.error) throw new Error(`rebuild ${name}: ${m.error.message || pretty(m.error)}`);
      if (m.result) onProgress(m.result);
    }
    if (done) break;
  }
}

// projections lists the projections with their lag, a rebuild button with a
// progress bar, and their dead letters with replay and discard, refreshed
// every three seconds while nothing is in flight.
export async function projections(el, _args, _q, ctx) {
  el.append(title("Projections", "Read models: their state and lag, rebuilds, and dead letters."));
  const note = h("div", {});
  const body = h("div", {class: "cards"});
  el.append(note, body);
  // busy counts the rebuilds and dead-letter calls in flight (no refresh
  // then); finished keeps each projection's last rebuild to show.
  const state = {busy: 0, finished: new Map()};
  let drawn = 0; // the latest draw: an older one that ends later is dropped
  // A refresh that began before a click and ends while the click's call is in
  // flight is dropped too: its cards would replace the one whose progress
  // the call is drawing.
  const draw = async (refresh = false) => {
    const mine = ++drawn;
    const list = (await api("/v1/projections")).projections || [];
    const open = new Set([...body.querySelectorAll("article.projection details[open]")].map((d) => d.closest("article").dataset.name));
    const cards = [];
    for (const p of list) cards.push(await projectionCard(p, draw, state, open.has(p.name)));
    if (mine !== drawn || (refresh && state.busy > 0)) return;
    note.replaceChildren(liveNote());
    body.replaceChildren(...(cards.length ? cards : [h("p", {class: "muted"}, "This server registers no projections.")]));
  };
  await draw();
  ctx.every(async () => { if (state.busy === 0) await draw(true); }, 3000);
}

async function projectionCard(p, redraw, state, detailsOpen) {
  const progress = h("div", {class: "rebuild"});
  if (p.rebuild && !p.rebuild.finished) {
    progress.append(progressBar(p.rebuild));
  } else if (state.finished.has(p.name)) {
    progress.append(progressBar(state.finished.get(p.name)));
    progress.dataset.finished = "true";
  }
  const btn = h("button", {class: "rebuild-button", onclick: async () => {
    btn.disabled = true;
    state.busy++;
    progress.replaceChildren(progressBar({done: 0, total: 0, fraction: 0}));
    try {
      let last = null;
      await rebuild(p.name, (m) => { last = m; progress.replaceChildren(progressBar(m)); });
      const done = {...(last || {fraction: 1}), finished: true};
      state.finished.set(p.name, done);
      progress.replaceChildren(progressBar(done));
      progress.dataset.finished = "true";
      redraw().catch((e) => console.warn(String(e))); // the new generation
    } catch (e) {
      progress.replaceChildren(errorBox(e));
    } finally {
      btn.disabled = false;
      state.busy--;
    }
  }}, "Rebuild");
  const dls = p.dead_letter_topic ? await allPages(`/v1/projections/${enc(p.name)}/dead-letters`, "dead_letters") : [];
  const act = (dl, verb) => h("button", {class: `small ${verb}`, onclick: async (e) => {
    e.target.disabled = true;
    state.busy++;
    try {
      // By the record's original position (the event's), not its copy's.
      await post(`/v1/projections/${enc(p.name)}/dead-letters/${enc((dl.event || {}).position)}:${verb}`, {});
      await redraw();
    } catch (err) {
      e.target.replaceWith(errorBox(err));
    } finally {
      state.busy--;
    }
  }}, verb === "replay" ? "Replay" : "Discard");
  return h("article", {class: "card projection", "data-name": p.name},
    h("header", {}, h("h2", {}, p.name), badge(p.state), h("span", {class: "spacer"}), btn),
    p.error ? h("div", {class: "error"}, p.error) : "",
    h("div", {class: "stats"}, stat("lag (records)", fmtInt(p.lag)), stat("lag (time)", fmtSeconds(p.lag_seconds)),
      stat("generation", fmtInt(p.generation)), stat("policy", p.policy || "—"), stat("dead letters", fmtInt(dls.filter((d) => !d.replayed_at).length))),
    h("p", {}, "Reads ", (p.topics || []).map((t, i) => [i ? ", " : "", h("a", {href: `#/topic/${enc(t)}`}, t)]),
      " as group ", h("a", {href: `#/group/${enc(p.group)}`}, p.group),
      (p.missing_topics || []).length ? h("span", {class: "warn"}, ` · missing topics: ${p.missing_topics.join(", ")}`) : ""),
    progress,
    h("details", {open: detailsOpen}, h("summary", {}, "Partitions"),
      table(["Topic", "Partition", "Position", "End offset", "Lag"], (p.partitions || []).map((q) =>
        [q.topic, String(q.partition), fmtInt(q.position), fmtInt(q.end_offset), lagCell(q.lag, q.lag_seconds)]), {class: "grid"})),
    p.dead_letter_topic ? [h("h3", {}, "Dead letters ", h("span", {class: "muted"}, `in ${p.dead_letter_topic}`)),
      table(["Record", "Type", "Error", "Attempts", "Parked", ""], dls.map((d) => {
        const e = d.event || {};
        return {attrs: {"data-key": e.key || ""}, cells: [streamLink(e.topic, e.key, e.version, `${e.topic}/${e.key} v${e.version}`), e.type, h("code", {}, d.error),
          fmtInt(d.attempts), fmtTime(d.parked_at),
          d.replayed_at ? h("span", {class: "replayed"}, badge("replayed"), " ", fmtTime(d.replayed_at))
            : h("span", {class: "actions"}, act(d, "replay"), act(d, "discard"))]};
      }), {class: "grid dead-letters"})] : "");
}

const statuses = ["running", "compensating", "completed", "failed"];

// sagas lists the sagas the server runs, refreshed every three seconds.
export async function sagas(el, _args, _q, ctx) {
  el.append(title("Sagas", "Process managers: their runners and instances."));
  const body = h("div", {});
  el.append(body);
  const draw = async () => {
    const list = (await api("/v1/sagas")).sagas || [];
    body.replaceChildren(liveNote(), table(["Saga", "Runner", "Group", "Pending commands", "Deadlines", "Lag", "Last error"],
      list.map((s) => [h("a", {href: `#/saga/${enc(s.name)}`}, s.name), badge(s.state),
        h("a", {href: `#/group/${enc(s.group)}`}, s.group), fmtInt(s.pending_commands), fmtInt(s.deadlines),
        lagCell(s.lag, s.lag_seconds), s.last_error || s.error || "—"]), {class: "grid", id: "sagas-table"}));
  };
  await draw();
  ctx.every(draw, 3000);
}

// saga shows a saga's instances by status, or one instance.
export async function saga(el, [name, key], query) {
  if (key) return instance(el, name, key);
  const want = query.get("status") || "";
  el.append(title(`Saga ${name}`, "Its instances, by status."));
  el.append(h("nav", {class: "tabs"}, ["", ...statuses].map((st) =>
    h("a", {href: `#/saga/${enc(name)}${st ? "?status=" + st : ""}`, class: st === want ? "active" : ""}, st || "all"))));
  const q = want ? `?statuses=${enc(want)}` : "";
  const list = await allPages(`/v1/sagas/${enc(name)}/instances${q}`, "instances");
  list.sort((a, b) => String(b.started).localeCompare(String(a.started)));
  el.append(table(["Instance", "Status", "Steps", "Pending", "Deadlines", "Started", "Correlation"],
    list.map((i) => [h("a", {href: `#/saga/${enc(name)}/${enc(i.key)}`}, i.key), badge(i.status), fmtInt(i.steps),
      fmtInt(i.pending_commands), fmtInt((i.deadlines || []).length), fmtTime(i.started), lineageLink(i.correlation_id)]),
    {class: "grid", id: "instances-table"}));
}

async function instance(el, name, key) {
  const i = await api(`/v1/sagas/${enc(name)}/instances/${enc(key)}`);
  el.append(title(`${name} / ${i.key}`, "One saga instance."),
    h("div", {class: "stats"}, stat("status", badge(i.status)), stat("steps", fmtInt(i.steps)),
      stat("pending commands", fmtInt(i.pending_commands)), stat("deadlines", fmtInt((i.deadlines || []).length))),
    h("dl", {class: "meta wide"},
      h("dt", {}, "correlation"), h("dd", {}, lineageLink(i.correlation_id) || "—"),
      h("dt", {}, "started"), h("dd", {}, fmtTime(i.started) || "—"),
      h("dt", {}, "updated"), h("dd", {}, fmtTime(i.updated) || "—"),
      h("dt", {}, "ended"), h("dd", {}, fmtTime(i.ended) || "—"),
      i.last_error ? [h("dt", {}, "last error"), h("dd", {class: "warn"}, i.last_error)] : "",
      i.failure_reason ? [h("dt", {}, "failure"), h("dd", {class: "warn"}, i.failure_reason)] : "",
      (i.compensation_errors || []).map((c) => [h("dt", {}, "compensation error"), h("dd", {class: "warn"}, c)])),
    h("h2", {}, "State"), h("pre", {class: "payload"}, pretty(i.state)),
    h("h2", {}, "Pending commands"),
    table(["Command", "Type", "Aggregate", "Caused by", "Compensation"], (i.pending || []).map((c) =>
      [short(c.id, 13), c.type, c.aggregate_id, short(c.causation_id, 13), c.compensation ? "yes" : "no"]), {class: "grid"}),
    h("h2", {}, "Deadlines"),
    table(["Name", "At", "Command", "ID"], (i.deadlines || []).map((d) => [d.name, fmtTime(d.at), d.command || "—", short(d.id, 13)]),
      {class: "grid"}));
}

export {errorBox};
