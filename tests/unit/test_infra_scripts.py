"""The infra/ scripts on a state folder of their own: pid files and recorded settings.

No server is started: the scripts are run as the user runs them, on a temporary
LINK_STATE_DIR, with stand-in processes where a pid file needs one.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import REPOSITORY

INFRA = REPOSITORY / "infra"


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """Return an empty state folder."""
    return tmp_path / "state"


def environment(state: Path, **settings: str) -> dict[str, str]:
    """Return the environment without any stack setting, plus the given ones."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LINK_", "DJ_"))
    }
    return {**clean, "LINK_STATE_DIR": str(state), **settings}


def run(
    state: Path, *command: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(INFRA / command[0]), *command[1:]],
        env=environment(state, **settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


def sleeper(*arguments: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process that sleeps, with the given arguments on its command line."""
    # "; :" keeps bash from exec-ing sleep, which would drop the arguments.
    process = subprocess.Popen(["bash", "-c", "sleep 60; :", *arguments])
    yield process
    process.kill()
    process.wait()


@pytest.fixture
def stand_in(state: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process whose command line names the broker's configuration file."""
    yield from sleeper("stand-in", str(state / "kafka" / "server.properties"))


@pytest.fixture
def look_alike(state: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with the broker's arguments, which listens on no port."""
    yield from sleeper("kafka.Kafka", str(state / "kafka" / "server.properties"))


def write_pid(state: Path, pid: int) -> Path:
    pid_file = state / "run" / "kafka.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid}\n")
    return pid_file


def test_a_pid_file_of_a_finished_process_is_stale(state: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = write_pid(state, gone.pid)

    status = run(state, "kafka.sh", "status")

    assert status.returncode == 3
    assert "stopped" in status.stdout
    assert "stale pid file" in status.stderr
    assert not pid_file.exists()


def test_a_live_process_that_only_names_the_brokers_files_is_not_the_broker(
    state: Path, stand_in: subprocess.Popen[bytes]
) -> None:
    pid_file = write_pid(state, stand_in.pid)

    status = run(state, "kafka.sh", "status")

    assert status.returncode == 3
    assert "stopped" in status.stdout
    assert not pid_file.exists()
    assert stand_in.poll() is None  # left alone


def test_a_broker_that_does_not_answer_on_its_port_is_not_reported_as_serving(
    state: Path, look_alike: subprocess.Popen[bytes]
) -> None:
    write_pid(state, look_alike.pid)

    status = run(state, "kafka.sh", "status", LINK_KAFKA_PORT="1")

    assert status.returncode == 3
    assert f"running, pid {look_alike.pid}, but not on 127.0.0.1:1" in status.stdout


def record(state: Path, **settings: str) -> None:
    """Record settings as `make up` does when it starts the stack."""
    subprocess.run(
        ["bash", "-c", f"source {INFRA / 'lib.sh'} && record_settings"],
        env=environment(state, **settings),
        check=True,
    )


def exports(output: str) -> dict[str, str]:
    lines = [line.removeprefix("export ") for line in output.splitlines()]
    return dict(line.split("=", 1) for line in lines)


def test_env_and_status_speak_of_the_recorded_settings(state: Path) -> None:
    record(state, LINK_KAFKA_PORT="29999", LINK_DESTINATION_PORT="23999")

    printed = run(state, "env.sh")
    status = run(state, "stack.sh", "status")

    assert exports(printed.stdout)["LINK_BROKER"] == "127.0.0.1:29999"
    assert exports(printed.stdout)["DJ_PORT"] == "23999"
    assert exports(printed.stdout)["LINK_SOURCE_HOST"] == "127.0.0.1:3316"
    assert printed.stderr == ""
    assert "[kafka] stopped (port 29999)" in status.stdout
    assert "destination: stopped (port 23999)" in status.stdout


def test_the_environment_overrides_the_record_and_says_it_differs(
    state: Path,
) -> None:
    record(state, LINK_KAFKA_PORT="29999", LINK_LOCAL_DJ_PASS="recorded-secret")

    printed = run(
        state, "env.sh", LINK_KAFKA_PORT="19999", LINK_LOCAL_DJ_PASS="other-secret"
    )

    assert exports(printed.stdout)["LINK_BROKER"] == "127.0.0.1:19999"
    assert "LINK_KAFKA_PORT=19999 (started with 29999)" in printed.stderr
    assert "LINK_LOCAL_DJ_PASS: the environment differs" in printed.stderr
    assert "secret" not in printed.stderr


def test_up_refuses_other_settings_while_the_stack_runs(
    state: Path, look_alike: subprocess.Popen[bytes]
) -> None:
    record(state, LINK_KAFKA_PORT="29999")
    write_pid(state, look_alike.pid)
    # Should the refusal fail, Kafka's start stops at this taken port.
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])

        up = run(
            state,
            "stack.sh",
            "up",
            LINK_KAFKA_PORT="19999",
            LINK_KAFKA_CONTROLLER_PORT=port,
        )

    assert up.returncode == 1
    assert "runs with other settings" in up.stderr
    assert "LINK_KAFKA_PORT=29999" in (state / "run" / "settings").read_text()
