"""Ctrl-C that Python hands over wrapped in another exception (argtree/interrupt.py) still interrupts: the
loop's task goes back to pending and the command exits 130 with one line."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from argtree.cli import main
from argtree.interrupt import caused_by_ctrl_c


def _ctrl_c_while_a_class_is_made() -> BaseException:
    """What a Ctrl-C during the import of a module with a dataclass raises (Python 3.11: a RuntimeError from
    the KeyboardInterrupt, raised in a descriptor's __set_name__; later Pythons raise the interrupt itself)."""
    class Field:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    try:
        class Holder:  # noqa: F841 - creating it is the point
            meta = Field()
    except BaseException as err:  # noqa: BLE001
        return err
    raise AssertionError("the class was made")


def test_wrapped_and_plain_ctrl_c_are_recognized_and_other_errors_are_not():
    made = _ctrl_c_while_a_class_is_made()
    if sys.version_info < (3, 12):
        assert isinstance(made, RuntimeError) and isinstance(made.__cause__, KeyboardInterrupt)
    assert caused_by_ctrl_c(made)
    assert caused_by_ctrl_c(KeyboardInterrupt())
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("while handling it")  # context, not cause
    except ValueError as err:
        assert caused_by_ctrl_c(err)
    assert not caused_by_ctrl_c(RuntimeError("plain"))
    try:
        raise ValueError("a") from OSError("b")
    except ValueError as err:
        assert not caused_by_ctrl_c(err)
    loop = RuntimeError("cycle")
    loop.__context__ = RuntimeError("back")
    loop.__context__.__context__ = loop
    assert not caused_by_ctrl_c(loop)   # a cyclic chain ends


def test_the_loop_hands_its_task_back_when_ctrl_c_arrives_wrapped(tmp_path, monkeypatch):
    pytest.importorskip("sqlalchemy")  # the store extra
    import argtree.loop
    from argtree.llm.fake import FakeBackend
    from argtree.loop import LoopConfig, run_worker, start_or_resume
    from argtree.oracle import DatasetOracle
    from argtree.store import LoopTask, session_scope
    from argtree.store.loops import LoopStore
    from argtree.store.testing import dispose, sqlite_db

    url = sqlite_db(tmp_path)
    scope = LoopStore(url)
    run_id, _, _ = start_or_resume(scope, LoopConfig(questions=("Is the sun a star?",), budget=2), "oracle-dataset")
    ran = []

    def interrupted(*args, **kwargs):
        ran.append(args[6])   # the task's kind
        raise _ctrl_c_while_a_class_is_made()

    monkeypatch.setattr(argtree.loop, "_run_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_worker(scope, run_id, FakeBackend(), DatasetOracle({}))
    assert ran == ["question"]
    with session_scope(url) as s:
        assert [(t.kind, t.status) for t in s.query(LoopTask)] == [("question", "pending")]
    dispose(url)


def test_a_command_interrupted_by_a_wrapped_ctrl_c_exits_130_with_one_line(tmp_path, monkeypatch):
    import argtree.grow

    def interrupted(*args, **kwargs):
        raise _ctrl_c_while_a_class_is_made()

    monkeypatch.setenv("ARGTREE_HOME", str(tmp_path))
    monkeypatch.setattr(argtree.grow, "grow", interrupted)
    r = CliRunner().invoke(main, ["ask", "Is the sun a star?", "--backend", "fake", "--no-store", "--json"])
    assert r.exit_code == 130, r.output
    assert "argtree: interrupted" in r.stderr and "Traceback" not in r.output
