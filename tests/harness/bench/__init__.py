"""The benchmarks: the NetworkPolicy builder (make bench) and site.yml against bare Helm (make bench-converge)."""
