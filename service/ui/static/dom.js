// Small helpers shared by the pages: building DOM nodes (record data only
// ever becomes text nodes or attribute values, never markup), calling the
// muninn.v1 REST API, and formatting.

const SVG = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h makes an HTML element: h("a", {href: "#/x"}, "text", child...).
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s makes an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// ApiError is a failed call: the HTTP status and the server's message.
export class ApiError extends Error {
  constructor(status, message, path) {
    super(`${path}: ${status} ${message}`);
    this.status = status;
  }
}

// api calls the muninn.v1 REST API and returns the decoded JSON answer.
export async function api(path, init) {
  const r = await fetch(path, init);
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : {}; } catch { body = null; }
  if (!r.ok) throw new ApiError(r.status, (body && body.message) || text || r.statusText, path);
  if (body === null) throw new ApiError(r.status, "the answer is not JSON", path);
  return escapeKeys(body);
}

// escapeKeys gives every event in v whose key is not valid UTF-8 (sent as
// key_bytes, base64) a printable key: its bytes, the non-printable ones as
// \xNN, with key_escaped set.
export function escapeKeys(v) {
  if (Array.isArray(v)) {
    v.forEach(escapeKeys);
  } else if (v && typeof v === "object") {
    if (typeof v.key_bytes === "string" && v.key_bytes !== "" && !v.key) {
      v.key = escapeBytes(v.key_bytes);
      v.key_escaped = true;
    }
    Object.values(v).forEach(escapeKeys);
  }
  return v;
}

// escapeBytes renders base64 bytes as text: printable ASCII as is (a
// backslash doubled), every other byte as \xNN.
export function escapeBytes(b64) {
  let out = "";
  for (const ch of atob(b64)) {
    const c = ch.charCodeAt(0);
    if (c === 0x5c) out += "\\\\";
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else out += "\\x" + c.toString(16).padStart(2, "0");
  }
  return out;
}

// post sends a JSON body.
export function post(path, body) {
  return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
}

// pages reads every page of a paged list call.
export async function allPages(path, field, pageSize = 200) {
  const out = [];
  let token = "";
  for (let i = 0; i < 1000; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const r = await api(`${path}${sep}page_size=${pageSize}${token ? "&page_token=" + encodeURIComponent(token) : ""}`);
    out.push(...(r[field] || []));
    token = r.next_page_token || "";
    if (!token) break;
  }
  return out;
}

export const enc = encodeURIComponent;

// num turns a proto JSON number (64-bit ones are strings) into a Number.
export function num(v) {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
}

export function fmtInt(v) { return num(v).toLocaleString("en-US"); }

export function fmtBytes(v) {
  let n = num(v);
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${u[i]}`;
}

export function fmtSeconds(v) {
  const n = num(v);
  if (n === 0) return "0 s";
  if (n < 1) return `${Math.round(n * 1000)} ms`;
  if (n < 120) return `${n.toFixed(1)} s`;
  if (n < 7200) return `${(n / 60).toFixed(1)} min`;
  if (n < 172800) return `${(n / 3600).toFixed(1)} h`;
  return `${(n / 86400).toFixed(1)} d`;
}

export function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) return "";
  return d.toISOString().replace("T", " ");
}

// pretty prints a JSON value indented, for payloads and saga state.
export function pretty(v) {
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

// payloadText is an event's payload for reading: its decoded JSON data if
// the server had it, else the bytes as text if they are UTF-8, else base64.
export function payloadText(ev) {
  if (ev.tombstone) return "(tombstone: no payload)";
  if (ev.data !== null && ev.data !== undefined) return pretty(ev.data);
  if (!ev.payload) return "(empty)";
  try {
    const bin = atob(ev.payload);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const text = new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    try { return pretty(JSON.parse(text)); } catch { return text; }
  } catch {
    return `base64: ${ev.payload}`;
  }
}

// badge is a coloured status word.
export function badge(text) {
  const t = String(text || "unknown").toLowerCase();
  return h("span", {class: `badge badge-${t.replace(/[^a-z]/g, "")}`}, t);
}

// table builds a table from a header row and rows of cells.
export function table(head, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", r.attrs || {}, (r.cells || r).map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", {colspan: head.length, class: "muted"}, "none"))));
}

export function errorBox(err) {
  return h("div", {class: "error"}, h("strong", {}, "Error: "), String(err && err.message || err));
}

// short shortens a long ID for display.
export function short(id, n = 8) {
  id = String(id || "");
  return id.length > n + 3 ? id.slice(0, n) + "…" : id;
}

export function streamLink(topic, key, version, text) {
  const q = version ? `?v=${enc(version)}` : "";
  return h("a", {href: `#/stream/${enc(topic)}/${enc(key)}${q}`}, text ?? key);
}

export function lineageLink(corr, text) {
  if (!corr) return "";
  return h("a", {href: `#/lineage/${enc(corr)}`, class: "corr"}, text ?? corr);
}
