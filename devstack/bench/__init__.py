"""``make bench``: the pipeline measured against the floor it cannot beat, side by side in one run.

Every figure is a ratio of two things measured here, now, on this machine, so a busy machine moves
it little. ``coldstart`` times imports in fresh interpreters, ``workloads`` drives the functions on
DynamoDB Local and the local stack, ``cost`` prices what they used, ``report`` writes
``bench/results.json`` and ``bench/results.md``; docs/PERFORMANCE.md and docs/COST.md explain them.
"""
