"""Running a sweep, on the parent side: the executors (this process, child processes, Ray), the
runner and its recorder, isolation, the results lock and provenance."""
