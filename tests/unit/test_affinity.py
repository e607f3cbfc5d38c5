"""CPU_AFFINITY: a serving process's threads kept to one CPU or to the CPUs named, or left anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from infra.affinity import parse_cpus, serving_cpus
from infra.settings import Settings

ALLOWED = sorted(os.sched_getaffinity(0))

# Threads before and after the call, all of them asked where they may run.
PROBE = """
import json, os, sys, threading
from infra.affinity import keep_to_cpus
hold = threading.Event()
before = threading.Thread(target=hold.wait, daemon=True); before.start()
index = None if sys.argv[2] == "-" else int(sys.argv[2])
chosen = keep_to_cpus(sys.argv[1], index=index)
after = threading.Thread(target=hold.wait, daemon=True); after.start()
masks = [sorted(os.sched_getaffinity(int(t))) for t in os.listdir("/proc/self/task")]
hold.set()
print(json.dumps({"chosen": sorted(chosen) if chosen is not None else None, "threads": masks}))
"""


def probe(spec: str, index: int | None = None) -> dict[str, list[int] | list[list[int]] | None]:
    done = subprocess.run([sys.executable, "-c", PROBE, spec, "-" if index is None else str(index)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, list[int] | list[list[int]] | None] = json.loads(done.stdout)
    return answer


def test_the_setting_is_one_or_a_list_of_cpus_and_anything_else_is_refused_naming_it() -> None:
    assert Settings(_env_file=None).cpu_affinity == ""
    assert Settings(_env_file=None, cpu_affinity=" One ").cpu_affinity == "one"
    assert Settings(_env_file=None, cpu_affinity="2, 0,2").cpu_affinity == "0,2"
    assert Settings(_env_file=None, cpu_affinity="ANY").cpu_affinity == "any"
    for bad in ("fast", "0-3", "1,,2", "-1"):
        with pytest.raises(ValidationError, match="cpu_affinity"):
            Settings(_env_file=None, cpu_affinity=bad)
    assert parse_cpus("") == ""


def test_unset_keeps_a_process_of_every_role_and_each_api_worker_to_one_cpu_and_leaves_the_rest() -> None:
    assert serving_cpus("", every_role=True) == "one"
    assert serving_cpus("", every_role=False, worker=1) == "one"
    assert serving_cpus("", every_role=False) == ""  # one of several role processes
    assert serving_cpus("any", every_role=True, worker=0) == ""
    assert serving_cpus("one", every_role=False) == "one"
    assert serving_cpus("0,2", every_role=True) == "0,2"
    assert probe("any") == {"chosen": None, "threads": [ALLOWED] * 3}


def test_one_keeps_every_thread_on_one_cpu_those_started_before_and_after() -> None:
    for index in range(len(ALLOWED) + 1):
        answer = probe("one", index)
        expected = [ALLOWED[index % len(ALLOWED)]]
        assert answer["chosen"] == expected
        assert answer["threads"] and all(mask == expected for mask in answer["threads"])


def test_named_cpus_keep_the_threads_to_them_and_unset_leaves_them_where_they_may_run() -> None:
    assert probe(str(ALLOWED[-1]))["threads"] == [[ALLOWED[-1]]] * 3
    assert probe("") == {"chosen": None, "threads": [ALLOWED] * 3}


def test_a_cpu_the_process_may_not_use_is_refused_saying_which() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, "4096", "-"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode != 0
    assert "CPU_AFFINITY names CPUs [4096]" in done.stderr
