"""Contains a small but realistic source pipeline: subjects, sessions and trials.

The demo and the tests declare it on the source server with the source lab's
own account; the link then reads it with its restricted account only.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import datajoint as dj
import numpy as np


@dataclass(frozen=True)
class SourcePipeline:
    """The table classes of the pipeline, bound to the source server."""

    schema: Any
    Species: Any
    Subject: Any
    Session: Any


def declare_pipeline(source_admin: dj.Instance, schema_name: str) -> SourcePipeline:
    """Declare the pipeline's tables in schema_name on the source server."""
    schema = source_admin.Schema(schema_name)

    @schema
    class Species(dj.Lookup):  # type: ignore[misc]
        definition = """
        # animal species kept by the lab
        species : varchar(32)
        """
        contents = ({"species": "mouse"}, {"species": "rat"})

    @schema
    class Subject(dj.Manual):  # type: ignore[misc]
        definition = """
        # an experimental animal
        subject_id : int32
        ---
        -> Species
        sex : enum('M', 'F', 'U')
        date_of_birth : date
        weight = null : decimal(5,2)   # grams
        notes = "" : varchar(255)
        """

    @schema
    class Session(dj.Manual):  # type: ignore[misc]
        definition = """
        # one recording session of a subject
        -> Subject
        session_idx : int16
        ---
        started : datetime
        rig : varchar(16)
        sampling_rate : float64       # Hz
        settings : json
        """

        class Trial(dj.Part):  # type: ignore[misc]
            definition = """
            # one trial of a session, with its recorded trace
            -> master
            trial_idx : int32
            ---
            outcome : enum('hit', 'miss', 'false_alarm')
            reaction_time = null : float32   # seconds
            trace : <blob>
            """

        class Stimulus(dj.Part):  # type: ignore[misc]
            definition = """
            # the stimulus shown in a session
            -> master
            stimulus_idx : int16
            ---
            contrast : float64
            """

    return SourcePipeline(
        schema=schema, Species=Species, Subject=Subject, Session=Session
    )


def fill_pipeline(
    pipeline: SourcePipeline,
    *,
    subjects: int = 4,
    sessions_per_subject: int = 3,
    trials_per_session: int = 5,
    samples_per_trace: int = 256,
    seed: int = 7,
) -> None:
    """Insert deterministic rows: the same arguments give the same data."""
    rng = np.random.default_rng(seed)
    outcomes = ("hit", "miss", "false_alarm")
    subject_rows = [
        {
            "subject_id": subject,
            "species": "mouse" if subject % 2 else "rat",
            "sex": "MFU"[subject % 3],
            "date_of_birth": datetime.date(2024, 1, 1)
            + datetime.timedelta(days=subject),
            "weight": None if subject % 4 == 0 else round(20 + subject * 0.25, 2),
        }
        for subject in range(1, subjects + 1)
    ]
    pipeline.Subject.insert(subject_rows, skip_duplicates=True)
    session_rows, trial_rows, stimulus_rows = [], [], []
    for subject in range(1, subjects + 1):
        for session in range(sessions_per_subject):
            key = {"subject_id": subject, "session_idx": session}
            session_rows.append(
                {
                    **key,
                    "started": datetime.datetime(2025, 3, 1, 9, 30)
                    + datetime.timedelta(days=subject, hours=session),
                    "rig": f"rig-{session % 2}",
                    "sampling_rate": 1000.0 * (1 + session),
                    "settings": {"laser": session % 2 == 0, "gain": 2 + session},
                }
            )
            for trial in range(trials_per_session):
                trial_rows.append(
                    {
                        **key,
                        "trial_idx": trial,
                        "outcome": outcomes[(subject + session + trial) % 3],
                        "reaction_time": None if trial % 4 == 3 else 0.2 + trial / 10,
                        "trace": rng.standard_normal(samples_per_trace).astype(
                            np.float32
                        ),
                    }
                )
            stimulus_rows.append(
                {**key, "stimulus_idx": 0, "contrast": 0.5 + session / 10}
            )
    pipeline.Session.insert(session_rows, skip_duplicates=True)
    pipeline.Session.Trial.insert(trial_rows, skip_duplicates=True)
    pipeline.Session.Stimulus.insert(stimulus_rows, skip_duplicates=True)
