// The admin UI's router: the URL fragment names the page (#/topics,
// #/stream/{topic}/{key}?v=3, #/lineage/{correlation_id}, ...); each page
// renders into <main> and may refresh itself while it is shown.
import {h, errorBox} from "./dom.js";
import * as pages from "./pages.js";
import {lineage} from "./lineage.js";

const routes = {
  topics: pages.topics,
  topic: pages.topic,
  stream: pages.stream,
  groups: pages.groups,
  group: pages.group,
  projections: pages.projections,
  sagas: pages.sagas,
  saga: pages.saga,
  lineage,
};

let current = null;

// parse splits "#/page/a/b?x=1" into the page, its decoded path arguments
// and its query.
function parse(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const q = raw.indexOf("?");
  const path = q < 0 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : raw.slice(q + 1));
  const parts = path.split("/").filter((p) => p !== "").map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  return {page: parts[0] || "topics", args: parts.slice(1), query};
}

async function render() {
  if (current) current.stop();
  const {page, args, query} = parse(location.hash);
  const timers = [];
  const ctx = {
    live: true,
    // every runs fn every ms milliseconds while the page is shown, one run
    // at a time.
    every(fn, ms) {
      const tick = async () => {
        if (!ctx.live) return;
        try { await fn(); } catch (e) { console.error(e); }
        if (ctx.live) timers.push(setTimeout(tick, ms));
      };
      timers.push(setTimeout(tick, ms));
    },
    stop() { ctx.live = false; timers.forEach(clearTimeout); },
  };
  current = ctx;
  for (const a of document.querySelectorAll("#nav a")) {
    const on = a.dataset.page === page || (a.dataset.page === "topics" && page === "topic") ||
      (a.dataset.page === "groups" && page === "group") || (a.dataset.page === "sagas" && page === "saga");
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("main");
  const view = routes[page];
  const section = h("section", {class: `page page-${page}`});
  main.replaceChildren(section);
  if (!view) {
    section.append(h("h1", {}, "Not found"), h("p", {}, `There is no page "${page}".`));
    return;
  }
  try {
    await view(section, args, query, ctx);
  } catch (e) {
    if (ctx.live) section.append(errorBox(e));
  }
  if (ctx.live) section.dataset.ready = "true";
}

window.addEventListener("hashchange", render);
render();
