"""The journal of culled kernels (hooks/kernel_ends.py) and what their owner reads about them
(hooks/kernel_notices.py culled_text), as pure functions and a file in tmp_path."""

from __future__ import annotations

import json
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from hooks import kernel_ends as ke
from hooks import kernel_notices as kn

ALICE, BOB = ("team-a", "alice"), ("team-b", "bob")
AT = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC


def record(kernel_id: str, at: float = AT, profile: str = "python_kubernetes", idle: float = 3600.4) -> dict:
    return json.loads(ke.culled_line(kernel_id, profile, idle, at))


def test_a_culled_kernel_is_one_line_with_its_id_profile_idle_seconds_and_time():
    line = ke.culled_line("k1", "python_gpu", 3600.4, AT)
    assert "\n" not in line
    assert json.loads(line) == {"kernel_id": "k1", "profile": "python_gpu", "idle_seconds": 3600, "at": AT}
    assert ke.parse(line + "\n") == [json.loads(line)]


def test_only_the_owners_kernels_are_told_to_them_once_per_kernel_in_order():
    owners = {"k1": ALICE, "k2": BOB, "k3": ALICE}
    records = [record("k3", AT + 5), record("k1", AT), record("k2", AT + 1), record("k9", AT + 2), record("k1", AT + 9)]
    mine = ke.culled_of(records, owners, ALICE)
    assert [(r["kernel_id"], r["at"]) for r in mine] == [("k3", AT + 5), ("k1", AT + 9)]
    assert [r["kernel_id"] for r in ke.culled_of(records, owners, BOB)] == ["k2"]
    assert ke.culled_of(records, {}, ALICE) == [], "a kernel the front door did not start is nobody's"
    assert [r["kernel_id"] for r in ke.culled_of(records, owners, ALICE, new_kernel="k1")] == ["k3"]


def test_a_torn_foreign_or_too_deeply_nested_line_is_skipped():
    good = ke.culled_line("k1", "p", 5, AT)
    text = "\n".join(["[" * 100_000, good[:20], '{"kernel_id": 1}', good, "\x00", '{"at": 1e400}'])
    assert [r["kernel_id"] for r in ke.parse(text)] == ["k1"]


def test_the_owner_reads_which_kernel_was_culled_when_and_after_how_long_idle():
    text = kn.culled_text([record("k1")])
    assert text == (
        "The gateway culled your kernel python_kubernetes at 2026-11-30 00:53:20 UTC after 3600 idle seconds, "
        "giving its resources back: variables and imports from that kernel are gone.\n"
    )
    assert kn.culled_text([]) is None
    many = kn.culled_text([record(f"k{i}", AT + i) for i in range(7)], limit=5)
    assert many.splitlines()[0] == "The gateway culled 7 of your kernels; the last 5:"
    assert len(many.splitlines()) == 6 and "00:53:26 UTC" in many.splitlines()[-1]


def test_the_notice_waits_for_the_first_cell_of_the_new_kernel():
    notices = kn.Notices()
    notices.wait("new", kn.culled_text([record("old")]))
    cell = json.dumps(
        {"header": {"msg_id": "c1", "msg_type": "execute_request", "session": "s"}, "channel": "shell", "content": {}}
    )
    notice = json.loads(notices.client_frame("new", cell))
    assert notice["parent_header"]["msg_id"] == "c1" and notice["content"]["name"] == "stderr"
    assert "culled your kernel python_kubernetes" in notice["content"]["text"]
    assert notices.client_frame("new", cell) is None, "told once"


def test_append_keeps_the_file_small_and_its_last_lines(tmp_path):
    path = str(tmp_path / ke.FILE_NAME)
    for i in range(60):
        ke.append(path, ke.culled_line(f"k{i}", "p", 1, AT + i), max_bytes=2000, keep=10)
    records = ke.parse((tmp_path / ke.FILE_NAME).read_text())
    assert (tmp_path / ke.FILE_NAME).stat().st_size <= 2000
    assert records[-1]["kernel_id"] == "k59" and len(records) >= 10 and records[0]["kernel_id"] != "k0"
    assert [r["at"] for r in records] == sorted(r["at"] for r in records)
    assert not (tmp_path / (ke.FILE_NAME + ".tmp")).exists()


def test_the_front_doors_journal_rereads_only_a_changed_file_and_a_missing_one_is_empty(tmp_path, monkeypatch):
    path = tmp_path / ke.FILE_NAME
    journal = ke.Journal(str(path))
    assert journal.records() == []
    ke.append(str(path), ke.culled_line("k1", "p", 5, AT))
    assert [r["kernel_id"] for r in journal.records()] == ["k1"]
    parsed = []
    monkeypatch.setattr(ke, "parse", lambda text: parsed.append(text) or [])
    assert [r["kernel_id"] for r in journal.records()] == ["k1"] and parsed == [], "unchanged: not read again"
    monkeypatch.undo()
    ke.append(str(path), ke.culled_line("k2", "p", 5, AT + 1))
    assert [r["kernel_id"] for r in journal.records()] == ["k1", "k2"]
    path.unlink()
    assert journal.records() == []
    assert ke.Journal(None).records() == [], "no journal configured: nothing to tell"


TEXT = st.text(alphabet=string.printable + '{}[]":,é\u2028\x00', max_size=300)
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.integers()))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            TEXT,
            st.builds(
                json.dumps,
                st.fixed_dictionaries(
                    {},
                    optional={"kernel_id": VALUES, "profile": VALUES, "idle_seconds": VALUES, "at": VALUES},
                ),
            ),
        ),
        max_size=20,
    )
)
def test_any_journal_text_parses_to_well_formed_records_only(lines):
    """A torn or foreign line is skipped; whatever is kept, culled_text can print."""
    records = ke.parse("\n".join(lines))
    for r in records:
        assert isinstance(r["kernel_id"], str) and isinstance(r["profile"], str)
        assert all(isinstance(r[k], (int, float)) and not isinstance(r[k], bool) for k in ("idle_seconds", "at"))
        assert 0 <= r["at"] < 1e11 and 0 <= r["idle_seconds"] < 1e11
    owners = {r["kernel_id"]: ALICE for r in records}
    mine = ke.culled_of(records, owners, ALICE)
    assert len(mine) == len({r["kernel_id"] for r in records})
    assert kn.culled_text(mine) is None if not mine else kn.culled_text(mine).endswith("\n")
