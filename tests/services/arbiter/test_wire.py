"""The compact exchange's body (protocol 2): what goes out comes back, and a bad body names its field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotstandby.hlc import Timestamp
from hotstandby.model import Role
from services.arbiter.wire import MAX_WALL_MS, Beat, WireError, decode, encode

stamps = st.builds(Timestamp, st.integers(0, MAX_WALL_MS - 1), st.integers(0, 2**31 - 1))
times = st.floats(0, 4e9, allow_nan=False, allow_infinity=False).map(lambda t: round(t, 3))
beats = st.builds(
    Beat, node_id=st.sampled_from(["server1", "server2"]), role=st.sampled_from(list(Role)),
    epoch=st.integers(0, 2**53 - 1), can_be_active=st.booleans(), lan_ok=st.booleans(), serves=st.booleans(),
    app_ok=st.booleans(), maintenance=st.booleans(), maintenance_at=stamps,
    maintenance_origin=st.sampled_from(["", "server1", "server2"]), digest=st.text("0123456789abcdef", min_size=16,
                                                                                      max_size=16),
    hlc=stamps, role_since=st.none() | times, times=st.tuples(times) | st.tuples(times, times),
    skew=st.none() | st.floats(-1e4, 1e4).map(lambda x: round(x, 4)),
)
GOOD = Beat(node_id="server2", role=Role.STANDBY, epoch=12, can_be_active=True, lan_ok=True, serves=True, app_ok=True,
            maintenance=False, maintenance_at=Timestamp(1796165172064, 3), maintenance_origin="server2",
            digest="0123456789abcdef", hlc=Timestamp(1796165172064, 0), role_since=1796165172.064,
            times=(1796165172.064,))


@given(beats)
def test_what_is_encoded_decodes_to_the_same_beat(beat: Beat) -> None:
    """encode then decode gives the same Beat back, whatever its fields."""
    assert beat == decode(encode(beat))


def test_a_steady_ask_is_short() -> None:
    """A STANDBY's ask of a steady pair fits in 200 bytes (the long form took about 480)."""
    assert len(encode(GOOD)) <= 200


def test_keys_a_later_version_adds_are_ignored() -> None:
    """A body from a later protocol version, with keys this one does not know, is read for the keys it knows."""
    expected = GOOD
    body = json.loads(encode(GOOD)) | {"v": 3, "z": {"anything": [1, 2]}}
    assert expected == decode(json.dumps(body).encode())


@pytest.mark.parametrize(("change", "field"), [
    ({"n": "server3"}, "n"), ({"r": "X"}, "r"), ({"e": -1}, "e"), ({"e": 2**53}, "e"), ({"e": True}, "e"),
    ({"f": "15"}, "f"), ({"m": [[1, 2]]}, "m"), ({"m": [[1, 2], 7]}, "m"), ({"m": [[-1, 0], "server1"]}, "m"),
    ({"d": "XYZ"}, "d"), ({"h": [MAX_WALL_MS, 0]}, "h"), ({"h": "2026"}, "h"), ({"s": "now"}, "s"),
    ({"t": []}, "t"), ({"t": [1, 2, 3]}, "t"), ({"x": "1"}, "x"), ({"v": 0}, "v"),
])
def test_a_bad_field_is_refused_by_name(change: dict[str, object], field: str) -> None:
    """Each malformed field raises WireError whose text starts with the field's key."""
    body = json.loads(encode(GOOD)) | change
    with pytest.raises(WireError) as info:
        decode(json.dumps(body).encode())
    assert str(info.value).startswith(f"{field}:")


@pytest.mark.parametrize("key", ["v", "n", "r", "e", "f", "m", "d", "h", "t"])
def test_a_missing_field_is_named(key: str) -> None:
    """A body without one of the required keys names it."""
    body = json.loads(encode(GOOD))
    del body[key]
    with pytest.raises(WireError, match=rf"^{key}: missing"):
        decode(json.dumps(body).encode())


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"{" * 5000])
def test_a_body_that_is_not_an_object_is_refused(raw: bytes) -> None:
    """Not JSON, or JSON but not an object: WireError naming the body."""
    with pytest.raises(WireError, match=r"^body:"):
        decode(raw)
