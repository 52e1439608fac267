// What each server's card says. Each node's row shows what that node says of itself (its own
// GET /status, read directly by the browser: the peer's cross-origin). A node that does not answer
// the browser is shown as the other node sees it (Error after N failed probes), marked as such.

export const IDS = ["server1", "server2"];
export const other = (id) => (id === "server1" ? "server2" : "server1");
/** An address as a URL's host: IPv6 in brackets. */
export const host = (address) => (address.includes(":") ? `[${address}]` : address);
const WORD_CLASS = { "Active (Primary)": "Active", "Standby (Backup)": "Standby", Error: "Error", Unknown: "Unknown" };

/** What the browser last read from one node's own /status. */
export class Source {
  constructor() { this.doc = null; this.failingSince = null; this.error = ""; }
  ok(doc) { this.doc = doc; this.failingSince = null; this.error = ""; }
  fail(err) {
    this.failingSince ??= new Date();
    // A browser tells a refused connection and a refused cross-origin read apart to no page: both are TypeError.
    this.error = err?.name === "TimeoutError" ? "timed out" : err?.name === "TypeError" ? "no connection" : String(err?.message ?? err);
  }
  get answering() { return this.doc !== null && this.failingSince === null; }
}

export function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

/** "14:03:05 (5 min ago)", with the date when it is not today. */
export function when(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
  const ago = s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  const day = t.toDateString() === new Date().toDateString() ? "" : `${t.toLocaleDateString()} `;
  return `${day}${clock(t)} (${ago})`;
}

function ctiText(cti) {
  if (!cti || !cti.state) return "—";
  if (cti.state === "unknown") return "unknown (the monitor has not answered yet)";
  const parts = [cti.state];
  if (cti.pid) parts.push(`pid ${cti.pid}`);
  parts.push(`${cti.restarts ?? 0} restarts`);
  parts.push(`${cti.ports_registered ?? 0} ports and ${cti.devices_registered ?? 0} devices registered`);
  if (cti.last_error) parts.push(`last error: ${cti.last_error}`);
  return parts.join(", ");
}

function witnessText(w) {
  if (!w) return "not configured";
  const lease = w.lease_ttl_s ? `, lease ${w.lease_ttl_s} s` : "";
  return `${w.reachable ? "reachable" : "NOT reachable"}, key held by ${w.holder ?? "nobody"}${lease}`;
}

/** One card's contents for ``id``: ``own`` is the node's own Source, ``theirs`` the other node's. */
export function nodeView(id, own, theirs) {
  const self = own.answering ? own.doc.local : null;
  const seen = theirs.answering && theirs.doc.peer.node_id === id ? theirs.doc.peer : null;
  const otherId = other(id);
  const status = self ? self.status : seen ? seen.status : "Unknown";
  let reach = "";
  if (!self) {
    const since = own.failingSince
      ? `No answer to this browser since ${clock(own.failingSince)} (${own.error})` : "Not read by this browser yet";
    reach = seen ? `${since}: shown as ${otherId} sees it.` : `${since}, and ${otherId} does not answer either.`;
  } else if (seen && seen.status === "Error") {
    reach = `${otherId}'s probes of it fail: ${otherId} shows it as Error.`;
  }
  return {
    id, status, wordClass: WORD_CLASS[status] ?? "Unknown", reach, answering: Boolean(self),
    role: self ? self.role : seen ? seen.role : null,
    rank: (self ?? seen)?.rank ?? (id === "server1" ? "primary" : "backup"),
    address: (self ?? seen)?.address ?? "—",
    epoch: (self ?? seen)?.epoch ?? "—",
    since: when((self ?? seen)?.role_since),
    failures: self ? String(self.consecutive_failures) : "—",
    lan: !self ? "—" : self.lan_check === "off" ? "not checked (no LAN check addresses)" : self.lan_ok ? "connected" : "LOST",
    cti: self ? ctiText(self.cti) : "—",
    witness: self ? witnessText(own.doc.witness) : "—",
    maintenance: self ? (self.maintenance ? "on" : "off") : "—",
    decision: self ? self.last_decision ?? "—" : "—",
  };
}

/** The console of node ``view``: through the VIP when use_vip_for_urls and a VIP is set. */
export function consoleUrl(view, settings) {
  const vip = settings.use_vip_for_urls && settings.vip_address ? settings.vip_address : "";
  const vipHost = vip.startsWith("[") ? vip.slice(1, vip.indexOf("]")) : vip.split(":")[0];
  const target = vipHost || view.address;
  return { href: `${location.protocol}//${host(target)}:${settings.arbiter_port}/`, viaVip: Boolean(vipHost) };
}

/** The banner: on a STANDBY (or a node that stopped answering), who is ACTIVE and a link to its console. */
export function bannerOf(hereId, views, hereSource, settings) {
  const me = views[hereId], peer = views[other(hereId)];
  const link = (v) => {
    const url = consoleUrl(v, settings);
    return { href: url.href, text: `open ${v.id}'s console${url.viaVip ? " (through the VIP)" : ""}` };
  };
  const active = (v) => v.status === "Active (Primary)"; // an ACTIVE in Error is not one to send anyone to
  if (!hereSource.answering) {
    const text = `This server (${hereId}) does not answer since ${clock(hereSource.failingSince ?? new Date())}.`;
    return active(peer) ? { warn: true, text: `${text} ${peer.id} is Active (Primary):`, link: link(peer) }
      : { warn: true, text: `${text} ${peer.id} is ${peer.status}.` };
  }
  if (!settings.enabled) return { warn: true, text: "Hot standby is off: each server runs alone as ACTIVE and never switches." };
  if (active(me) && active(peer)) {
    return { warn: true, text: "Both servers report ACTIVE: one steps down by itself (R4) once they hear each other." };
  }
  if (active(me)) return null;
  if (active(peer)) {
    return { text: `This server (${hereId}) is ${me.status}. The Active (Primary) server is ${peer.id} (${peer.address}):`,
      link: link(peer) };
  }
  return { warn: true, text: `This server (${hereId}) is ${me.status}, and no server is Active (Primary) right now.` };
}
