// The cluster settings (SPEC 2) as the vendor's "Hot Standby configuration" form. "Validate" sends
// only the settings the operator changed, in one PUT /config: a setting someone else changed meanwhile
// is not overwritten with the value this page loaded. The server is the only validator: its message
// for a refused value is shown beside that field.

import { when } from "./servers.js";

// [name, label (the vendor's words), kind, help]
export const GROUPS = [
  ["Servers", [
    ["enabled", "Hot Standby enabled", "bool", "Off: this server runs alone as ACTIVE and never switches."],
    ["server1_address", "Server #1 address (Primary)", "text", "Host name or IP address of server #1."],
    ["server2_address", "Server #2 address (Backup)", "text", "Host name or IP address of server #2."],
    ["monitor_port", "Monitor port", "int", "The monitor's port, the same on both servers."],
    ["arbiter_port", "Arbiter port", "int", "The arbiter's port on both servers (this console is served there)."],
  ]],
  ["Load balancer", [
    ["vip_address", "Virtual IP address (VIP)", "text", "host[:port] of the load balancer's virtual address; empty: none."],
    ["test_vip_destination", "Test VIP destination", "bool", "The server the VIP routes to becomes ACTIVE."],
    ["use_vip_for_urls", "Use VIP for URLs", "bool", "Links to the ACTIVE server's console go through the VIP."],
  ]],
  ["Heart beat", [
    ["heartbeat_interval_s", "Heart beat interval (s)", "seconds", "Seconds between two checks of the other server (I)."],
    ["heartbeat_timeout_s", "Heart beat timeout (s)", "seconds", "Seconds one check may take (T), at most the interval."],
    ["failures_to_switch", "Heart beat failures before switching", "int", "Consecutive failed checks that switch (N, 1 to 100)."],
    ["switch_on_application_error", "Switch on application error", "bool", "Check the application (mod=IPSWS), not only that the server answers."],
    ["auto_failback", "First server auto restart as Active", "bool", "Server #1 takes ACTIVE back once it is healthy again."],
  ]],
  ["LAN and CTI server", [
    ["lan_probe_addresses", "LAN check addresses", "text", "Comma-separated host:port (gateway, load balancer): one answering proves the LAN. Empty: no LAN check."],
    ["cti_restart_time", "CTI server daily restart time", "text", "HH:MM, on the ACTIVE server; empty: no daily restart."],
  ]],
];
const KIND = Object.fromEntries(GROUPS.flatMap(([, fields]) => fields.map(([name, , kind]) => [name, kind])));
const ZERO_STAMP = "1970-01-01T00:00:00.000Z#0";

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

export class SettingsForm {
  constructor(form, fieldsBox) {
    this.form = form;
    this.loaded = null; // {name: value} as the server last answered
    this.digest = null;
    fieldsBox.replaceChildren(...GROUPS.map(([legend, fields]) => {
      const set = el("fieldset");
      set.append(el("legend", {}, legend), ...fields.map((f) => this.field(...f)));
      return set;
    }));
    form.addEventListener("input", (e) => this.touched(e.target.name));
    form.addEventListener("change", (e) => this.touched(e.target.name));
  }

  field(name, label, kind, help) {
    const row = el("div", { class: "field", "data-name": name });
    const input = el("input", { id: `f-${name}`, name, "aria-describedby": `e-${name} h-${name} m-${name}` });
    if (kind === "bool") input.type = "checkbox";
    else if (kind === "text") Object.assign(input, { type: "text", spellcheck: false, autocomplete: "off" });
    else Object.assign(input, { type: "number", step: kind === "int" ? "1" : "any", inputMode: kind === "int" ? "numeric" : "decimal" });
    const control = el("div", { class: "control" });
    control.append(input, el("p", { class: "error", id: `e-${name}` }), el("span", { class: "hint", id: `h-${name}` }, help),
      el("span", { class: "meta", id: `m-${name}` }));
    row.append(el("label", { for: `f-${name}` }, label), control);
    return row;
  }

  input(name) { return this.form.elements.namedItem(name); }

  value(name) {
    const input = this.input(name), kind = KIND[name];
    if (kind === "bool") return input.checked;
    if (kind === "text") return input.value;
    return input.value.trim() === "" ? null : Number(input.value);
  }

  touched(name) {
    if (!(name in KIND) || !this.loaded) return;
    this.input(name).closest(".field").classList.toggle("dirty", this.value(name) !== this.loaded[name]);
  }

  /** The settings the operator changed, with their new values. */
  changes() {
    if (!this.loaded) return {};
    return Object.fromEntries(Object.keys(KIND).filter((n) => this.value(n) !== this.loaded[n]).map((n) => [n, this.value(n)]));
  }

  /** Show the server's settings; a field the operator is editing keeps its edit unless ``all``. */
  load(config, { all = false } = {}) {
    this.digest = config.digest;
    const edited = all ? {} : this.changes();
    this.loaded = Object.fromEntries(Object.entries(config.settings).map(([n, s]) => [n, s.value]));
    for (const [name, s] of Object.entries(config.settings)) {
      const input = this.input(name);
      if (!input) continue;
      if (!(name in edited)) {
        if (KIND[name] === "bool") input.checked = Boolean(s.value);
        else input.value = s.value ?? "";
      }
      document.getElementById(`m-${name}`).textContent = s.updated_at === ZERO_STAMP
        ? "Start-up value, never changed."
        : `Updated ${when(s.updated_at.split("#")[0])} by ${s.origin}.`;
      this.touched(name);
    }
  }

  /** 422: each refused value's message beside its field; the first one gets the focus. */
  showErrors(detail) {
    this.clearErrors();
    const general = [];
    let first = null;
    for (const d of Array.isArray(detail) ? detail : []) {
      const name = (d.loc ?? []).at(-1);
      if (name in KIND) {
        const box = document.getElementById(`e-${name}`);
        box.textContent = box.textContent ? `${box.textContent}; ${d.msg}` : d.msg;
        this.input(name).setAttribute("aria-invalid", "true");
        first ??= this.input(name);
      } else {
        general.push(d.msg);
      }
    }
    first?.focus();
    return general;
  }

  clearErrors() {
    for (const name of Object.keys(KIND)) {
      document.getElementById(`e-${name}`).textContent = "";
      this.input(name).removeAttribute("aria-invalid");
    }
  }
}
