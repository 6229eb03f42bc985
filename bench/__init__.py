"""Contains the benchmark of pulls and deletions: ``python -m bench`` (make bench).

It pulls the same rows between the same two servers with the older tool
(datajoint-link 0.11, in its own virtual environment), with this project in
embedded mode and over Kafka (one and two transfer workers), and with a raw
bulk copy that stands for the practical limit; then it prints rows per second,
ratios, peak memory, deletion speed and single-row pull latency.
"""
