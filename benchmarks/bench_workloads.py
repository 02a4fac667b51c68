"""asv suite of the workloads (vocab, attention, classifier, and one a run exports): every implementation x
op x shape x dtype x device of each (see softgrad.bench.asv_suite.install_workloads). The default grid's
classes are bench_ops.py's, so their history goes on unchanged."""

from softgrad.bench.asv_suite import install_workloads

install_workloads(globals())
