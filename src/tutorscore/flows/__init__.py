"""Workflows: what happens, in which order, when something happens to the data.

Each workflow is one plain function that calls the domain packages in turn; the
CLI (`tutorscore.cli`), the API (`tutorscore.web.api`), the dev server and the
evaluation worker call these instead of assembling the steps themselves, so a
change of order or a new step has one home.

- `flows.metrics`   after-metrics (churn scoring, then alerts, then webhooks),
                    nightly-recompute (every tutor) and refresh-tutor (one tutor)
- `flows.sessions`  record-session (POST /api/sessions)
- `flows.imports`   after-import (`tutorscore import`)
- `flows.demo`      seed-demo (`tutorscore demo`, the browser tests' database) and
                    seed-synthetic (`tutorscore seed`, POST /api/seed-data)

Layering: flows import the domain packages (analytics, evaluation, prediction,
interventions, ingest, auth, db); domain packages never import flows, web or cli
(tests/test_layering.py). Analytics does not know about prediction: the metrics
flows hand `after_metrics` to analytics as its `after_write` step.
"""
