// The console: reads both servers' own /status (this one, and the peer's cross-origin), renders the
// cards, the banner and the pair's facts, and sends the commands. Reads repeat every I (at most 1 s,
// at least 0.25 s) and give up after 2 s, so a node that stops answering shows so within seconds.

import { command, confirmAction, read, token } from "./api.js";
import { LogPanel } from "./log.js";
import { IDS, Source, bannerOf, clock, host, nodeView, other } from "./servers.js";
import { SettingsForm } from "./settings.js";

const $ = (id) => document.getElementById(id);

const here = new Source(), there = new Source();
let hereId = null, peerId = null, peerBase = null;
let busy = false, lastConfig = null;
const cards = {}, announced = {};

const source = (id) => (id === hereId ? here : there);
const doc = () => (here.answering ? here.doc : there.answering ? there.doc : here.doc ?? there.doc);
const baseOf = (id) => (id === hereId ? "" : id === peerId ? peerBase : null);
const form = new SettingsForm($("settings"), $("settings-fields"));
const log = new LogPanel({ node: $("log-node"), day: $("log-day"), filter: $("log-filter"), pre: $("log"),
  state: $("log-state") }, baseOf);

function period() {
  const interval = doc()?.settings.heartbeat_interval_s ?? 1;
  return 1000 * Math.min(1, Math.max(0.25, interval));
}

// -- reading -------------------------------------------------------------------------------------
const sleepers = new Set();
function sleep(ms) {
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); sleepers.delete(done); resolve(); };
    const timer = setTimeout(done, ms);
    sleepers.add(done);
  });
}
const wakeAll = () => [...sleepers].forEach((wake) => wake());

async function every(work, periodMs) {
  for (;;) {
    const start = performance.now();
    try { await work(); } catch (e) { console.error(e); }
    await sleep(Math.max(50, periodMs() - (performance.now() - start)));
  }
}

async function readHere() {
  try { here.ok(await read("/status")); } catch (e) { here.fail(e); }
  if (here.answering) {
    if (!hereId) build(here.doc);
    const { peer, settings } = here.doc;
    peerBase = `${location.protocol}//${host(peer.address)}:${settings.arbiter_port}`;
    if (here.doc.config_digest !== form.digest && !busy) await readConfig().catch(() => {}); // next time, then
  }
  render();
}

async function readThere() {
  if (!peerBase) return;
  try { there.ok(await read(`${peerBase}/status`)); } catch (e) { there.fail(e); }
  render();
}

async function readConfig() {
  lastConfig = await read("/config");
  form.load(lastConfig);
}

// -- rendering -----------------------------------------------------------------------------------
function build(first) {
  hereId = first.local.node_id;
  peerId = first.peer.node_id;
  const box = $("servers");
  box.replaceChildren();
  for (const id of IDS) {
    const el = $("server-card").content.firstElementChild.cloneNode(true);
    el.setAttribute("aria-labelledby", `card-${id}`);
    el.querySelector("h3").id = `card-${id}`;
    const card = { el, field: (k) => el.querySelector(`[data-k="${k}"]`), button: (a) => el.querySelector(`[data-a="${a}"]`) };
    card.button("switch").setAttribute("aria-label", `Make ${id} Active (Primary)`);
    card.button("force").setAttribute("aria-label", `Force ${id} to Active (Primary)`);
    card.button("switch").addEventListener("click", () => switchTo(id, false));
    card.button("force").addEventListener("click", () => switchTo(id, true));
    card.button("cti").addEventListener("click", () => restartCti());
    cards[id] = card;
    box.append(el);
  }
  log.setNodes(hereId);
}

function forceOffered(v) {
  if (v.id !== hereId || !here.answering || v.role === "ACTIVE") return false;
  const { peer, settings } = here.doc;
  return settings.enabled && peer.reachable === false && peer.role !== "STANDBY";
}

function able(button, ok) {
  button.setAttribute("aria-disabled", String(!ok || busy)); // stays focusable: the note says why
}

function fill(card, v) {
  card.el.className = `server s-${v.wordClass}`;
  card.field("node_id").textContent = v.id;
  for (const k of ["address", "epoch", "since", "failures", "lan", "cti", "witness", "maintenance", "decision"]) {
    card.field(k).textContent = String(v[k]);
  }
  card.field("rank").textContent = `(${v.rank})`;
  card.field("status").textContent = v.status;
  card.field("reach").textContent = v.reach;
  card.field("reach").hidden = !v.reach;
  const notes = [];
  if (!here.answering) notes.push(`Commands go through ${hereId}, this page's server, which does not answer: use ${peerId}'s console.`);
  else if (v.status === "Active (Primary)") notes.push(`${v.id} is Active (Primary) already.`);
  able(card.button("switch"), here.answering && v.status !== "Active (Primary)");
  const force = forceOffered(v);
  card.button("force").hidden = !force;
  able(card.button("force"), force);
  if (force) {
    notes.push(`${peerId} (last reported ${here.doc.peer.role ?? "unknown"}) is unreachable from ${hereId}: ` +
      `"Force" makes ${hereId} Active (Primary) without ${peerId}'s consent.`);
  }
  const cti = card.button("cti");
  cti.hidden = v.id !== hereId;
  able(cti, here.answering && v.role === "ACTIVE");
  if (v.id === hereId && here.answering && v.role !== "ACTIVE") notes.push("The CTI server runs only on the Active (Primary) server.");
  card.field("note").textContent = notes.join(" ");
}

let bannerShown = "";
function renderBanner(b) {
  const box = $("banner"), key = b ? `${b.warn}|${b.text}|${b.link?.href}|${b.link?.text}` : "";
  if (key === bannerShown) return; // a live region: changed only when its words change
  bannerShown = key;
  box.hidden = !b;
  if (!b) { box.replaceChildren(); return; }
  box.className = `banner${b.warn ? " warn" : ""}`;
  const p = document.createElement("p");
  p.append(`${b.text} `);
  if (b.link) {
    const a = document.createElement("a");
    a.href = b.link.href;
    a.textContent = b.link.text;
    p.append(a);
  }
  box.replaceChildren(p);
}

function renderPair(d) {
  const s = d.settings;
  $("pair-enabled").textContent = s.enabled ? "on" : "off: each server runs alone as ACTIVE and never switches";
  $("pair-delay").textContent = `${d.expected_failover_delay_s} s (N·I + T + CTI startup, with N = ${s.failures_to_switch}, ` +
    `I = ${s.heartbeat_interval_s} s, T = ${s.heartbeat_timeout_s} s)`;
  $("pair-replicated").textContent = d.config_replicated ? "the same"
    : "different for now: the older side pulls the newer values at the next exchange";
  $("pair-skew").textContent = d.clock_skew_s == null ? "not measured yet" : `${(d.clock_skew_s * 1000).toFixed(1)} ms`;
  const on = Boolean(d.local.maintenance);
  $("pair-maintenance").textContent = on ? "on: automatic switching is paused on both servers" : "off";
  $("maintenance-toggle").textContent = on ? "Turn maintenance off" : "Turn maintenance on";
  $("maintenance-toggle").disabled = false;
  able($("maintenance-toggle"), here.answering);
  able($("settings-validate"), here.answering);
}

function render() {
  if (!hereId) {
    if (here.failingSince) $("servers-loading").textContent = `This server does not answer (${here.error}); trying again…`;
    return;
  }
  const views = Object.fromEntries(IDS.map((id) => [id, nodeView(id, source(id), source(other(id)))]));
  for (const id of IDS) {
    fill(cards[id], views[id]);
    if (announced[id] && announced[id] !== views[id].status) $("announce").textContent = `${id} is now ${views[id].status}.`;
    announced[id] = views[id].status;
  }
  const d = doc();
  renderBanner(bannerOf(hereId, views, here, d.settings));
  renderPair(d);
  document.title = `${hereId}: ${views[hereId].status} · Hot Standby`;
  $("here-name").textContent = `· ${hereId} (${views[hereId].address})`;
  if (!here.answering && there.answering) log.follow(peerId, `${hereId} does not answer: showing ${peerId}'s log.`);
}

// -- commands ------------------------------------------------------------------------------------
function disabled(button) { return button.getAttribute("aria-disabled") === "true"; }

async function run(box, action, done, refusal) {
  busy = true;
  render();
  box.className = "result";
  box.textContent = "Working…";
  const r = await action();
  busy = false;
  box.className = `result ${r.ok ? "good" : "bad"}`;
  box.textContent = `${clock(new Date())}: ${r.ok ? done(r.body) : r.status === 409 ? `${refusal}: ${r.reason}`
    : r.status ? `Failed (HTTP ${r.status}): ${r.reason}` : `Not done: ${r.reason}.`}`;
  wakeAll();
  return r;
}

async function switchTo(id, force) {
  const button = cards[id].button(force ? "force" : "switch");
  if (busy || disabled(button)) return;
  const from = other(id);
  const text = force
    ? `${from} does not answer. ${id} takes ACTIVE and starts its CTI server without ${from}'s consent. If ${from} ` +
      "is only cut off rather than down, both may run CTI until they hear each other again."
    : `The Active (Primary) server stops its CTI server and becomes Standby (Backup) first; then ${id} starts its ` +
      "CTI server. CTI links to the old server are dropped.";
  if (!await confirmAction(force ? `Force ${id} to Active (Primary)?` : `Make ${id} Active (Primary)?`, text,
    force ? `Force ${id} to Active` : `Switch to ${id}`)) return;
  const s = doc().settings;
  const timeoutMs = 1000 * (2 * s.heartbeat_interval_s + 2 * s.heartbeat_timeout_s + 10);
  await run(cards[id].field("result"), () => command("POST", "/switch", { target: id, force }, { timeoutMs }),
    (body) => `${id} is now Active (Primary), epoch ${body.epoch}.`, `Switch to ${id} refused`);
}

async function restartCti() {
  const button = cards[hereId].button("cti");
  if (busy || disabled(button)) return;
  if (!await confirmAction(`Restart the CTI server on ${hereId}?`,
    "Its CTI ports and devices unregister and register again; calls on them are dropped.", "Restart CTI")) return;
  await run(cards[hereId].field("result"), () => command("POST", "/cti/restart", undefined, { timeoutMs: 30000 }),
    (cti) => `CTI server restarted: ${cti.state}, pid ${cti.pid ?? "—"}, ${cti.restarts} restarts.`, "CTI restart refused");
}

$("maintenance-toggle").addEventListener("click", async (e) => {
  if (busy || disabled(e.currentTarget)) return;
  const on = !here.doc.local.maintenance;
  await run($("pair-result"), () => command("POST", "/maintenance", { enabled: on }),
    (body) => `Maintenance ${on ? "on: no automatic switch" : "off"}` +
      (body.replicated ? " on both servers." : `; ${peerId} does not have it yet (it gets it at the next exchange).`),
    "Maintenance refused");
});

$("settings").addEventListener("submit", async (e) => {
  e.preventDefault();
  const box = $("settings-result");
  if (busy || disabled($("settings-validate"))) return;
  form.clearErrors();
  const changes = form.changes();
  if (!Object.keys(changes).length) {
    box.className = "result";
    box.textContent = "Nothing to validate: no setting was changed.";
    return;
  }
  const r = await run(box, () => command("PUT", "/config", changes), (body) => {
    const names = body.changed.length ? body.changed.join(", ") : "nothing new (the same values)";
    const peer = body.replicated ? `${peerId} has it already (replicated).`
      : `${peerId} does not have it yet (not replicated): it gets it at the next exchange once reachable.`;
    return `Saved: ${names}. ${peer}`;
  }, "Refused");
  if (r.ok) {
    lastConfig = r.body;
    form.load(r.body, { all: true });
  } else if (r.status === 422) {
    const general = form.showErrors(r.body?.detail);
    box.textContent = `${clock(new Date())}: Refused, nothing was changed: ${general.length ? general.join("; ") : "correct the value marked below."}`;
  }
});

$("settings-reset").addEventListener("click", () => {
  form.clearErrors();
  if (lastConfig) form.load(lastConfig, { all: true });
  $("settings-result").textContent = "";
});

function renderToken() {
  const has = token.present();
  $("token-text").textContent = has ? "Admin token: set for this browser tab."
    : "Admin token: asked at the first command, kept for this browser tab only.";
  $("token-forget").hidden = !has;
}
token.onChange(renderToken);
$("token-forget").addEventListener("click", () => token.forget());
renderToken();

every(readHere, period);
every(readThere, period);
every(() => log.refresh(), () => Math.max(1000, period()));
