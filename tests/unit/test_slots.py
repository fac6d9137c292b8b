"""The thread budget's slots: at most n holders at once, across processes; a waiter can be cancelled;
a dead holder's slot comes back."""
import multiprocessing
import os
import time

import pytest

from pgbert_runtime.slots import ModelSlots


def hold_for(folder, seconds, ready):
    slots = ModelSlots(folder)
    with slots.hold(1):
        ready.set()
        time.sleep(seconds)


def holder(folder, seconds) -> multiprocessing.Process:
    """Another process, holding one slot of folder for seconds (started, and holding, on return)."""
    ready = multiprocessing.Event()
    other = multiprocessing.Process(target=hold_for, args=(str(folder), seconds, ready))
    other.start()
    assert ready.wait(10)
    return other


def test_one_slot_serialises_holders_across_processes(tmp_path):
    other = holder(tmp_path, 0.5)
    slots = ModelSlots(str(tmp_path))
    started = time.perf_counter()
    with slots.hold(1):
        waited = time.perf_counter() - started
    other.join()
    assert waited > 0.2 and slots.waited_seconds > 0.2


def test_two_slots_let_two_holders_run_together(tmp_path):
    other = holder(tmp_path, 1.0)
    slots = ModelSlots(str(tmp_path))
    with slots.hold(2):
        assert slots.waited_seconds == 0
    other.join()


def test_a_waiter_is_cancelled_and_a_dead_holders_slot_comes_back(tmp_path):
    other = holder(tmp_path, 60)
    slots = ModelSlots(str(tmp_path))

    class Cancelled(Exception):
        pass

    def cancel():
        raise Cancelled()

    with pytest.raises(Cancelled), slots.hold(1, check=cancel):
        pass
    other.kill()  # the kernel drops its lock
    other.join()
    with slots.hold(1):
        pass
    assert not os.path.exists(os.path.join(str(tmp_path), "slot-1"))  # n=1: one file only
