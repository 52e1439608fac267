"""The web console in a real browser (headless Debian chromium) against a real pair: what an operator
sees and does, by mouse and by keyboard, on a wide and on a narrow screen."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from hotstandby.settings import CLUSTER_FIELDS
from lab.localpair import TOKEN, Pair
from lab.waiting import wait_until
from tests.console.browser import Watched, shot

expect = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extras)").expect

pytestmark = pytest.mark.integration
MARGIN = 5.0  # seconds on top of a SPEC bound, for a loaded machine
# What the page may ask of a server: SPEC 3's public API, the page's own files, and the arbiter's CTI restart.
PUBLIC = re.compile(r"^/(|console/[a-z]+\.(js|css)|status|config|logs|logs/days|switch|maintenance|cti/restart)$")


def card(page: Any, node_id: str) -> Any:
    return page.locator(f"article[aria-labelledby=card-{node_id}]")


def console(open_page: Any, pair: Pair, node_id: str, **size: int) -> Watched:
    w: Watched = open_page(pair.arbiter_url(node_id) + "/", **size)
    expect(card(w.page, "server2").locator(".status")).not_to_have_text("")
    return w


def only_public_api(w: Watched) -> None:
    strange = sorted({path for _, path in w.requests if not PUBLIC.match(path)})
    assert strange == [], f"the page used more than the public API: {strange}"


def token_nowhere(w: Watched, pair: Pair, *tokens: str) -> None:
    """The admin token is in no element, attribute, input value or URL, and in no log of either node."""
    page = w.page
    values = [page.locator("input").nth(i).input_value() for i in range(page.locator("input").count())]
    for tok in tokens:
        assert tok not in page.content()
        assert all(tok not in v for v in values)
        assert tok not in page.url and all(tok not in path for _, path in w.requests)
        for node in pair.nodes.values():
            assert tok not in node.output() and tok not in node.ftlog()


def test_both_servers_and_a_switch_to_server2_by_keyboard(started: Pair, open_page: Any) -> None:
    """Both servers show with the vendor's words and details; "-> Active (Primary)" on server2, driven by the
    keyboard (a wrong token first), makes it ACTIVE; the STANDBY's banner links to the ACTIVE's console."""
    w = console(open_page, started, "server1")
    page = w.page
    one, two = card(page, "server1"), card(page, "server2")
    expect(one.locator(".status")).to_have_text("Active (Primary)")
    expect(two.locator(".status")).to_have_text("Standby (Backup)")
    expect(one).to_have_class(re.compile(r"\bs-Active\b"))
    expect(two).to_have_class(re.compile(r"\bs-Standby\b"))
    expect(two.locator("[data-k=address]")).to_have_text("127.0.0.12")
    pid = wait_until(lambda: started.cti("server1")["pid"], 5, "server1's CTI pid")
    expect(one.locator("[data-k=cti]")).to_contain_text(f"running, pid {pid}")
    expect(one.locator("[data-k=cti]")).to_contain_text("2 ports and 2 devices registered")
    # server2's details come from its own /status, read cross-origin: its CTI state is there.
    expect(two.locator("[data-k=cti]")).to_contain_text("stopped")
    expect(page.locator("#pair-delay")).to_contain_text(f"{started.status('server1')['expected_failover_delay_s']} s")
    for name in CLUSTER_FIELDS:
        expect(page.locator(f"label[for=f-{name}]")).to_have_count(1)
    expect(page.locator("#banner")).to_be_hidden()
    # Every control has a name a screen reader reads (its label, or an aria-label that holds the visible words).
    unnamed = re.findall(r"^\s*- '?(textbox|checkbox|spinbutton|combobox|searchbox|button)(?!\s+\")",
                         page.locator("body").aria_snapshot(), re.M)
    assert unnamed == []

    # Enter opens the confirmation with Cancel focused; Escape cancels: nothing is sent.
    switch = page.get_by_role("button", name="Make server2 Active (Primary)")
    switch.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog", name="Make server2 Active (Primary)?")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    assert ("POST", "/switch") not in w.requests
    # Again: Tab to the confirm button, Enter; a wrong token is refused and asked again; the right one.
    switch.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Switch to server2")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Admin token (HS_ADMIN_TOKEN)")).to_be_focused()
    page.keyboard.type("not-the-token-4711")
    page.keyboard.press("Enter")
    expect(page.locator("#token-why")).to_contain_text("refused that token")
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")

    expect(two.locator(".status")).to_have_text("Active (Primary)", timeout=started.interval * 1000 + 10_000)
    expect(two.locator("[data-k=result]")).to_contain_text("server2 is now Active (Primary)")
    expect(one.locator(".status")).to_have_text("Standby (Backup)")
    assert started.roles() == ("STANDBY", "ACTIVE")
    assert ("POST", "/switch") in w.requests

    # server1's console is a STANDBY's now: its banner names server2 and links to its console.
    link = page.locator("#banner a")
    expect(page.locator("#banner")).to_contain_text("The Active (Primary) server is server2")
    expect(link).to_have_attribute("href", started.arbiter_url("server2") + "/")
    link.click()
    expect(page).to_have_url(started.arbiter_url("server2") + "/")
    expect(card(page, "server2").locator(".status")).to_have_text("Active (Primary)")
    expect(page.locator("#banner")).to_be_hidden()

    token_nowhere(w, started, TOKEN, "not-the-token-4711")
    only_public_api(w)


def test_settings_form_refuses_by_the_field_and_replicates_a_good_value(started: Pair, open_page: Any) -> None:
    """T above I: the server's message beside the field, one PUT, nothing changed; a good value is saved with
    its origin, shows whether the peer has it, and appears on the peer's console; narrow screens fit."""
    w = console(open_page, started, "server1")
    page = w.page
    before = [started.http.get(started.arbiter_url(n) + "/config").json() for n in ("server1", "server2")]
    expect(page.locator("#f-heartbeat_timeout_s")).to_have_value("0.5")

    page.get_by_label("Heart beat timeout (s)").fill("5")
    page.get_by_role("button", name="Validate").click()
    page.get_by_label("Admin token (HS_ADMIN_TOKEN)").fill(TOKEN)
    page.get_by_role("button", name="Use this token").click()
    expect(page.locator("#e-heartbeat_timeout_s")).to_have_text(re.compile(r"must be <= heartbeat_interval_s"))
    expect(page.locator("#f-heartbeat_timeout_s")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#f-heartbeat_timeout_s")).to_be_focused()
    expect(page.locator("#settings-result")).to_contain_text("nothing was changed")
    assert [started.http.get(started.arbiter_url(n) + "/config").json() for n in ("server1", "server2")] == before
    assert w.requests.count(("PUT", "/config")) == 1

    page.get_by_label("Heart beat timeout (s)").fill("0.5")
    page.get_by_label("CTI server daily restart time").fill("04:05")
    page.get_by_role("button", name="Validate").click()  # the token is remembered: no dialog
    expect(page.locator("#settings-result")).to_contain_text("Saved: cti_restart_time.")
    result = page.locator("#settings-result")
    expect(result).to_contain_text(re.compile(r"has it already \(replicated\)|not replicated"))
    expect(page.locator("#e-heartbeat_timeout_s")).to_have_text("")
    expect(page.locator("#m-cti_restart_time")).to_contain_text("by server1")
    assert w.requests.count(("PUT", "/config")) == 2
    stamped = started.http.get(started.arbiter_url("server1") + "/config").json()["settings"]
    assert stamped["cti_restart_time"]["origin"] == "server1"
    assert stamped["heartbeat_timeout_s"] == before[0]["settings"]["heartbeat_timeout_s"]  # not sent: unchanged
    page.get_by_role("button", name="Validate").click()
    expect(page.locator("#settings-result")).to_have_text("Nothing to validate: no setting was changed.")
    assert w.requests.count(("PUT", "/config")) == 2

    peer = console(open_page, started, "server2", width=360, height=780)
    expect(peer.page.locator("#f-cti_restart_time")).to_have_value("04:05", timeout=10_000)
    expect(peer.page.locator("#m-cti_restart_time")).to_contain_text("by server1")
    # The STANDBY's banner links to the ACTIVE's console: by its address, or through the VIP when asked to.
    banner = peer.page.locator("#banner a")
    expect(banner).to_have_attribute("href", started.arbiter_url("server1") + "/")
    vip = {"vip_address": "127.0.0.10:8080", "use_vip_for_urls": True}
    assert started.admin("PUT", "server1", "/config", vip).status_code == 200
    expect(banner).to_have_attribute("href", f"http://127.0.0.10:{started.arbiter_port}/")
    expect(banner).to_have_text("open server1's console (through the VIP)")
    # A narrow screen: nothing wider than the viewport, the two cards one above the other.
    assert peer.page.evaluate("document.documentElement.scrollWidth") <= 360
    top1, top2 = (card(peer.page, n).bounding_box() for n in ("server1", "server2"))
    assert top1 is not None and top2 is not None and top2["y"] >= top1["y"] + top1["height"]
    for w_ in (w, peer):
        token_nowhere(w_, started, TOKEN)
        only_public_api(w_)


def test_maintenance_cti_restart_and_a_forced_switch_when_the_active_is_gone(started: Pair, open_page: Any) -> None:
    """Maintenance on from the console reaches both nodes; CTI restart counts; with the ACTIVE killed under
    maintenance, the plain switch's 409 reason shows and the forced switch is offered, said as such, and works."""
    assert started.admin("POST", "server1", "/cti/restart", token=None).status_code == 401
    wait_until(lambda: started.roles() == ("ACTIVE", "STANDBY"), 10, "server1 ACTIVE, server2 STANDBY")
    refused = started.admin("POST", "server2", "/cti/restart")
    assert (refused.status_code, refused.json().get("detail")) == (409, "CTI runs only on the ACTIVE node; "
                                                                           "this node is STANDBY"), \
        (refused.text, started.nodes["server2"].ftlog())
    w = console(open_page, started, "server1")
    page = w.page
    page.get_by_role("button", name="Restart CTI server").click()
    page.get_by_role("dialog").get_by_role("button", name="Restart CTI").click()
    page.get_by_label("Admin token (HS_ADMIN_TOKEN)").fill(TOKEN)
    page.get_by_role("button", name="Use this token").click()
    expect(card(page, "server1").locator("[data-k=result]")).to_contain_text("CTI server restarted")
    assert started.cti("server1")["restarts"] == 1
    assert "CTI restart requested by console" in started.nodes["server1"].ftlog()

    page.get_by_role("button", name="Turn maintenance on").click()
    expect(page.locator("#pair-result")).to_contain_text("Maintenance on")
    expect(page.locator("#pair-maintenance")).to_contain_text("on")
    wait_until(lambda: all(started.status(n)["local"]["maintenance"] for n in ("server1", "server2")), 5,
               "maintenance on both nodes")

    standby = console(open_page, started, "server2")
    two = card(standby.page, "server2")
    expect(two.get_by_role("button", name="Force server2 to Active (Primary)")).to_be_hidden()
    expect(two.get_by_role("button", name="Restart CTI server")).to_have_attribute("aria-disabled", "true")
    started.nodes["server1"].kill()
    expect(card(standby.page, "server1").locator(".status")).to_have_text("Error",
                                                                          timeout=(started.bound_r1 + MARGIN) * 1000)
    force = two.get_by_role("button", name="Force server2 to Active (Primary)")
    expect(force).to_be_visible()
    expect(two.locator("[data-k=note]")).to_contain_text("server1 (last reported ACTIVE) is unreachable from server2")
    assert started.role("server2") == "STANDBY"  # maintenance: no automatic switch

    two.get_by_role("button", name="Make server2 Active (Primary)").click()
    standby.page.get_by_role("dialog").get_by_role("button", name="Switch to server2").click()
    standby.page.get_by_label("Admin token (HS_ADMIN_TOKEN)").fill(TOKEN)
    standby.page.get_by_role("button", name="Use this token").click()
    expect(two.locator("[data-k=result]")).to_contain_text("Switch to server2 refused: the current ACTIVE server1 "
                                                           "is unreachable")
    force.click()
    expect(standby.page.get_by_role("dialog")).to_contain_text("without server1's consent")
    standby.page.get_by_role("dialog").get_by_role("button", name="Force server2 to Active").click()
    expect(two.locator(".status")).to_have_text("Active (Primary)", timeout=10_000)
    assert started.role("server2") == "ACTIVE"
    expect(standby.page.locator("#log")).to_contain_text("forced while server1 is unreachable")
    for w_ in (w, standby):
        token_nowhere(w_, started, TOKEN)
        only_public_api(w_)


def test_kill_9_of_the_active_shows_error_and_the_failover_on_both_consoles(started: Pair, open_page: Any) -> None:
    """After kill -9 of the ACTIVE, the STANDBY's console shows Error for it and the failover's log lines;
    the dead node's own console says within seconds that its server does not answer and links to the new ACTIVE."""
    active = console(open_page, started, "server1")
    standby = console(open_page, started, "server2")
    expect(card(standby.page, "server1").locator(".status")).to_have_text("Active (Primary)")
    expect(standby.page.locator("#log")).to_contain_text("Starting server2")
    expect(card(active.page, "server1").locator("[data-k=cti]")).to_contain_text("2 ports and 2 devices registered")
    shot(active.page, "console.png")

    started.nodes["server1"].kill()
    killed = time.monotonic()
    # The dead node's console does not freeze: within a read timeout (2 s) and a period, it says so.
    expect(card(active.page, "server1").locator("[data-k=reach]")).to_contain_text("No answer to this browser",
                                                                                   timeout=6_000)
    noticed = time.monotonic() - killed
    assert noticed < 6

    page = standby.page
    expect(card(page, "server1").locator(".status")).to_have_text("Error", timeout=(started.bound_r1 + MARGIN) * 1000)
    expect(card(page, "server1")).to_have_class(re.compile(r"\bs-Error\b"))
    expect(card(page, "server2").locator(".status")).to_have_text("Active (Primary)")
    expect(page.locator("#log")).to_contain_text("failure detected, count = 3")
    expect(page.locator("#log")).to_contain_text("SWITCH THIS SERVER TO PRIMARY")
    expect(page.locator("#banner")).to_be_hidden()
    expect(card(page, "server2").locator("[data-k=cti]")).to_contain_text("2 ports and 2 devices registered")
    shot(page, "console-failover.png")
    # The filter keeps the matching lines; a day from GET /logs/days shows that day's file.
    page.get_by_label("Filter").fill("switch this server")
    expect(page.locator("#log-state")).to_contain_text(re.compile(r"\b\d+ of \d+ lines match"))
    wait_until(lambda: page.locator("#log").inner_text().strip().splitlines() == [
        line for line in started.nodes["server2"].ftlog().splitlines() if "SWITCH THIS SERVER" in line], 5,
        "the log filtered to the switch lines")
    page.get_by_label("Filter").fill("")
    today = started.http.get(started.arbiter_url("server2") + "/logs/days").json()[-1]
    page.get_by_label("Day").select_option(today)
    expect(page.locator("#log-state")).to_contain_text(f"server2's log, {today}:")
    expect(page.locator("#log")).to_contain_text("Starting server2")

    dead = active.page
    expect(card(dead, "server1").locator(".status")).to_have_text("Error")
    expect(dead.locator("#banner")).to_contain_text("This server (server1) does not answer")
    expect(dead.locator("#banner a")).to_have_attribute("href", started.arbiter_url("server2") + "/")
    expect(dead.locator("#log-state")).to_contain_text("showing server2's log")
    expect(dead.locator("#log")).to_contain_text("SWITCH THIS SERVER TO PRIMARY")
    expect(card(dead, "server2").get_by_role("button", name="Make server2 Active (Primary)")).to_have_attribute(
        "aria-disabled", "true")
    only_public_api(standby)
