"""Data that ships with hwnas: the NAS-Bench-201 table joined with device latencies (``nb201/``)."""
