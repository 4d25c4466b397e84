"""Measuring one build job: what a worker runs, in this process, a child process or a Ray task
(the job description, the worker, timing and scoring, clocks, metrics, threads, plugins)."""
