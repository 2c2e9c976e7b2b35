"""Push handling: what a push or an upload submits, checked against the rules, admitted under the
limits, and handed over as jobs (`intake.Intake`). Only the service uses it.

This package's own import loads nothing: the checker processes (`checks`) import only the rules'
modules (`push`, `behalf`), not the service's side (`intake`, which loads MLflow)."""
