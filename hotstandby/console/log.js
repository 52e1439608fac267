// The fault-tolerant log: a server, a day (GET /logs/days), today's tail kept live, a filter.

import { read } from "./api.js";

const TAIL_LINES = 1000;

export class LogPanel {
  constructor({ node, day, filter, pre, state }, baseOf) {
    Object.assign(this, { node, day, filter, pre, state, baseOf });
    this.text = null; // the last text read, for the selected server and day
    this.shown = null;
    this.view = null;
    this.daysAt = 0;
    this.note = "";
    node.addEventListener("change", () => { this.text = null; this.daysAt = 0; this.note = ""; this.refresh(); });
    day.addEventListener("change", () => { this.text = null; this.refresh(); });
    filter.addEventListener("input", () => this.render());
  }

  /** The servers to choose from, this page's own first selected. */
  setNodes(hereId) {
    if (this.node.options.length) return;
    for (const id of ["server1", "server2"]) {
      this.node.append(new Option(id === hereId ? `${id} (this server)` : id, id, id === hereId, id === hereId));
    }
  }

  /** Show ``id``'s log instead (its own server stopped answering), saying why. */
  follow(id, why) {
    if (this.node.value === id) return;
    this.node.value = id;
    this.note = why;
    this.text = null;
    this.daysAt = 0;
    this.refresh();
  }

  get live() { return this.day.value === ""; }

  async refresh() {
    const id = this.node.value, base = id ? this.baseOf(id) : null;
    if (base === null) return; // "" is this page's own server
    try {
      if (Date.now() - this.daysAt > 30000) await this.readDays(base);
      if (!this.live && this.text !== null) return; // a past day does not change
      const query = this.live ? "" : `?day=${encodeURIComponent(this.day.value)}`;
      this.text = await read(`${base}/logs${query}`, { text: true });
      this.render();
    } catch (e) {
      this.state.textContent = `${id}'s log cannot be read right now (${e.name === "TimeoutError" ? "timed out" : e.message}).`;
    }
  }

  async readDays(base) {
    const days = await read(`${base}/logs/days`);
    this.daysAt = Date.now();
    const keep = this.day.value;
    this.day.replaceChildren(new Option("Today (live)", ""), ...days.slice().reverse().map((d) => new Option(d, d)));
    this.day.value = [...this.day.options].some((o) => o.value === keep) ? keep : "";
  }

  render() {
    if (this.text === null) return;
    const needle = this.filter.value.trim().toLowerCase();
    const key = `${this.text.length}|${needle}|${this.node.value}|${this.day.value}`;
    if (key === this.shown) return;
    this.shown = key;
    let lines = this.text.split("\n").filter(Boolean);
    const total = lines.length;
    if (needle) lines = lines.filter((l) => l.toLowerCase().includes(needle));
    const cut = this.live && lines.length > TAIL_LINES;
    if (cut) lines = lines.slice(-TAIL_LINES);
    const view = `${this.node.value}|${this.day.value}`;
    const atEnd = view !== this.view || this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 24;
    this.view = view;
    const frag = document.createDocumentFragment();
    for (const line of lines) {
      const span = document.createElement("span");
      if (line.includes("SWITCH THIS SERVER")) span.className = "switch";
      else if (/failure detected|refused|LOST|failed|not reached|lost/.test(line)) span.className = "fail";
      span.textContent = `${line}\n`;
      frag.append(span);
    }
    this.pre.replaceChildren(frag);
    if (atEnd) this.pre.scrollTop = this.pre.scrollHeight; // unless the operator scrolled up to read
    const which = this.live ? "today, updated live" : this.day.value;
    const count = needle ? `${lines.length} of ${total} lines match` : `${total} lines`;
    this.state.textContent = `${this.note ? `${this.note} ` : ""}${this.node.value}'s log, ${which}: ${count}${cut ? ` (the last ${TAIL_LINES} shown)` : ""}.`;
  }
}
