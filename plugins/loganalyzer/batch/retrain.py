"""Nightly retraining: a candidate forest from the last N days, promoted only when it beats the champion.

Why a held-out tail: the candidate is fitted on the windows before `holdout_hours`, and both the
candidate and the current `log-anomaly-detector@champion` are scored on the windows of the last
`holdout_hours` only, which neither was calibrated on tonight. Windows inside a known incident are
kept out of training (the forest learns normal traffic) and are the positives of the evaluation.

Where labels come from:
1. The generator's ground truth (`generate --ground-truth FILE`, one JSON incident per line):
   passed as text (the DAG reads it from a path or an s3:// URI, see `read_ground_truth_source`).
   With it, every held-out window of the evaluation is labelled: inside an incident of its
   service or not.
2. Operator feedback (`anomaly_feedback`, when that table exists): the latest action on an
   anomaly episode. `acknowledge` says the episode was real (its windows are positives);
   `suppress` for good says it was noise (its windows are negatives unless the ground truth says
   otherwise). Without ground truth only those windows are labelled.

Decision (pure, `decide`): promote when there is no champion, when the champion cannot score the
current features, or when the candidate's F1 at its own threshold (what the consumer would flag)
is higher than the champion's on the same windows, average precision breaking an exact tie.
Otherwise the alias stays. The reason goes on the MLflow run as tags and the scores as metrics.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from loganalyzer.db.minute_counts import minute_arrays
from loganalyzer.detection.features import FEATURE_NAMES
from loganalyzer.events import service_key
from loganalyzer.model import CHAMPION_ALIAS, MODEL_NAME
from loganalyzer.model.forest import CALIBRATION_QUANTILE, ForestModel
from loganalyzer.model.training import Candidate, ServiceWindows, fit_candidate, window_arrays

WINDOW_MINUTES = 5


def load_windows(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, ServiceWindows]:
    """Window features of every service in [start, end): the consumer's minute query and feature
    arithmetic, over columns."""
    return window_arrays(minute_arrays(conn, start, end), WINDOW_MINUTES)


# -- labels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpan:
    """A stretch of one service's event time that is known anomalous (or known normal)."""

    key: str  # "tenant/service"
    start: datetime
    end: datetime
    anomalous: bool
    source: str  # ground_truth | feedback


class LabelError(ValueError):
    """Ground truth that cannot be read; the message names the line."""


def parse_ground_truth(text: str) -> list[LabelSpan]:
    """The generator's ground-truth JSONL (Incident.ground_truth per line) as anomalous spans."""
    spans: list[LabelSpan] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            start = _utc(doc["start"])
            end = _utc(doc["end"])
            key = service_key(str(doc.get("tenant") or "default"), str(doc["service"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LabelError(f"ground truth line {n} is not an incident record: {exc}") from None
        spans.append(LabelSpan(key, start, end, True, "ground_truth"))
    return spans


def _utc(value: str) -> datetime:
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return t.astimezone(UTC)


_FEEDBACK_SQL = """
SELECT DISTINCT ON (f.anomaly_id) a.tenant, a.service, a.window_start, a.window_end, f.action, f.until
FROM anomaly_feedback f
JOIN anomalies a ON a.id = f.anomaly_id
WHERE f.scope = 'anomaly' AND a.window_end >= %s AND a.window_start < %s
ORDER BY f.anomaly_id, f.created_at DESC
"""


def feedback_labels(conn: psycopg.Connection, start: datetime, end: datetime) -> list[LabelSpan]:
    """Operator verdicts on anomaly episodes in [start, end); none while the table does not exist."""
    row = conn.execute("SELECT to_regclass('anomaly_feedback') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return []
    spans = []
    for tenant, service, w_start, w_end, action, until in conn.execute(_FEEDBACK_SQL, (start, end)):
        if action == "acknowledge":
            anomalous = True
        elif action == "suppress" and until is None:
            anomalous = False
        else:  # resolved, or muted for a while: says nothing about whether it was real
            continue
        # an episode's window_end is the start of its last anomalous window: cover that window
        end_t = w_end + timedelta(minutes=WINDOW_MINUTES)
        spans.append(LabelSpan(service_key(tenant, service), w_start, end_t, anomalous, "feedback"))
    return spans


def overlap_mask(minutes: np.ndarray, spans: Sequence[LabelSpan]) -> np.ndarray:
    """Which windows (by the minute each ends in) overlap any of `spans` (a window covers minutes
    end-4 .. end)."""
    lo = (minutes - WINDOW_MINUTES + 1) * 60.0
    hi = (minutes + 1) * 60.0
    mask = np.zeros(len(minutes), dtype=bool)
    for s in spans:
        mask |= (s.start.timestamp() < hi) & (s.end.timestamp() > lo)
    return mask


@dataclass
class Labelled:
    keys: list[str] = field(default_factory=list)
    rows: list[tuple[float, ...]] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)


def label_windows(
    windows: Mapping[str, ServiceWindows], spans: Sequence[LabelSpan], everything_labelled: bool
) -> Labelled:
    """Label each window: anomalous when it overlaps an anomalous span of its service. With
    `everything_labelled` (ground truth covers the period) every other window is normal;
    otherwise only windows overlapping a span are kept."""
    by_key: dict[str, list[LabelSpan]] = {}
    for s in spans:
        by_key.setdefault(s.key, []).append(s)
    out = Labelled()
    for key, ws in windows.items():
        pos = overlap_mask(ws.minutes, [s for s in by_key.get(key, []) if s.anomalous])
        neg = overlap_mask(ws.minutes, [s for s in by_key.get(key, []) if not s.anomalous])
        keep = np.ones(len(pos), dtype=bool) if everything_labelled else (pos | neg)
        idx = np.flatnonzero(keep)
        out.keys.extend([key] * len(idx))
        out.rows.extend(tuple(r) for r in ws.features[idx].tolist())
        out.labels.extend(pos[idx].tolist())
    return out


# -- evaluation and decision (pure) -------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    windows: int
    positives: int
    flagged: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    average_precision: float
    #: windows of services the model has no profile for (never flagged)
    unscored: int

    def metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_{k}": float(v) for k, v in asdict(self).items()}


def evaluate(model: ForestModel, data: Labelled) -> Evaluation:
    """How the model does on labelled windows, flagging as the consumer would (score > threshold)."""
    scores = model.scores(data.rows, data.keys) if data.rows else []
    threshold = 0.0 if model.threshold is None else model.threshold
    unscored = sum(1 for s in scores if math.isnan(s))
    flagged = [not math.isnan(s) and s > threshold for s in scores]
    tp = sum(1 for f, y in zip(flagged, data.labels, strict=True) if f and y)
    n_flagged = sum(flagged)
    positives = sum(data.labels)
    precision = tp / n_flagged if n_flagged else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Evaluation(
        windows=len(scores),
        positives=positives,
        flagged=n_flagged,
        true_positives=tp,
        precision=precision,
        recall=recall,
        f1=f1,
        average_precision=average_precision(
            [(-math.inf if math.isnan(s) else s) for s in scores], data.labels
        ),
        unscored=unscored,
    )


def average_precision(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the precision-recall curve as a step function (sklearn's definition); ties
    are one step. 0 without positives."""
    positives = sum(labels)
    if not positives:
        return 0.0
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    ap = 0.0
    tp = 0
    prev_recall = 0.0
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and scores[order[j]] == scores[order[i]]:
            tp += labels[order[j]]
            j += 1
        recall = tp / positives
        ap += (recall - prev_recall) * (tp / j)
        prev_recall = recall
        i = j
    return ap


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(
    candidate: Evaluation, champion: Evaluation | None, champion_problem: str | None = None
) -> Decision:
    """Whether @champion moves to the candidate, and why (the run records the reason)."""
    if champion_problem:
        return Decision(True, champion_problem)
    if champion is None:
        return Decision(True, "no champion yet")
    if candidate.positives == 0:
        return Decision(False, "no labelled anomalies in the evaluation windows: nothing to compare on")
    c = (round(candidate.f1, 9), round(candidate.average_precision, 9))
    k = (round(champion.f1, 9), round(champion.average_precision, 9))
    verdict = (
        f"candidate F1 {candidate.f1:.4f} (AP {candidate.average_precision:.4f}) vs champion F1 "
        f"{champion.f1:.4f} (AP {champion.average_precision:.4f}) on {candidate.windows} windows "
        f"({candidate.positives} anomalous)"
    )
    if c > k:
        return Decision(True, "better: " + verdict)
    return Decision(False, "not better: " + verdict)


# -- the job ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainConfig:
    days: float = 7.0
    holdout_hours: float = 24.0
    n_estimators: int = 200
    random_state: int = 0
    #: forest fitted and calibrated on at most this many sampled windows (0: all); each tree sees
    #: 256 of them, and the 99.9th percentile of 50,000 still rests on 50 windows
    max_rows: int = 50_000
    #: share of training windows allowed under the threshold (forest.CALIBRATION_QUANTILE). Lower
    #: flags more: a candidate calibrated at 0.5 flags half of normal traffic, a clearly worse
    #: model that the evaluation must refuse (tests use it so).
    calibration_quantile: float = CALIBRATION_QUANTILE

    def __post_init__(self) -> None:
        if not 0 < self.calibration_quantile <= 1:
            raise ValueError(f"calibration_quantile must be in (0, 1], got {self.calibration_quantile}")
        if self.days <= 0 or self.holdout_hours <= 0 or self.holdout_hours >= self.days * 24:
            raise ValueError(
                f"retraining needs 0 < holdout_hours ({self.holdout_hours}) < days*24 ({self.days * 24})"
            )


@dataclass
class RetrainReport:
    version: str
    promoted: bool
    reason: str
    champion_before: str | None
    candidate: Evaluation
    champion: Evaluation | None
    stages: dict[str, float]
    train_windows: int
    eval_windows: int
    services: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def training_summary(
    windows: Mapping[str, ServiceWindows], train: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """What the model was trained on, per service and per feature (logged as an MLflow artifact)."""
    parts = [a for a in train.values() if len(a)]
    all_rows = np.concatenate(parts) if parts else np.zeros((0, len(FEATURE_NAMES)))
    features: dict[str, dict[str, float]] = {}
    if len(all_rows):
        for i, name in enumerate(FEATURE_NAMES):
            col = all_rows[:, i]
            features[name] = {
                "mean": float(col.mean()),
                "p50": float(np.percentile(col, 50)),
                "p99": float(np.percentile(col, 99)),
                "max": float(col.max()),
            }
    return {
        "services": {
            k: {"windows": len(ws.minutes), "train_windows": len(train.get(k, []))}
            for k, ws in windows.items()
        },
        "train_windows": len(all_rows),
        "features": features,
    }


def retrain(
    conn: psycopg.Connection,
    tracking_uri: str,
    end: datetime,
    config: RetrainConfig,
    ground_truth: str | None = None,
) -> RetrainReport:
    """Train, evaluate against the champion, register, and move @champion if the candidate is better."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from loganalyzer.model.registry import ChampionWatcher, register_forest

    stages: dict[str, float] = {}
    t = time.perf_counter()
    start = end - timedelta(days=config.days)
    split_minute = int((end - timedelta(hours=config.holdout_hours)).timestamp() // 60)
    minutes = minute_arrays(conn, start, end)
    stages["read_minutes"] = time.perf_counter() - t
    t = time.perf_counter()
    windows = window_arrays(minutes, WINDOW_MINUTES)
    del minutes
    stages["window_features"] = time.perf_counter() - t

    t = time.perf_counter()
    spans = parse_ground_truth(ground_truth) if ground_truth else []
    spans += feedback_labels(conn, start, end)
    held_out = {
        k: ServiceWindows(ws.minutes[ws.minutes >= split_minute], ws.features[ws.minutes >= split_minute])
        for k, ws in windows.items()
    }
    labelled = label_windows(held_out, spans, everything_labelled=ground_truth is not None)
    known: dict[str, list[LabelSpan]] = {}
    for s in spans:
        if s.anomalous:
            known.setdefault(s.key, []).append(s)
    train = {
        k: ws.features[(ws.minutes < split_minute) & ~overlap_mask(ws.minutes, known.get(k, []))]
        for k, ws in windows.items()
    }
    stages["labels"] = time.perf_counter() - t

    t = time.perf_counter()
    candidate: Candidate = fit_candidate(
        train,
        n_estimators=config.n_estimators,
        random_state=config.random_state,
        max_rows=config.max_rows,
        calibration_quantile=config.calibration_quantile,
    )
    stages["train"] = time.perf_counter() - t

    t = time.perf_counter()
    cand_model = ForestModel(
        "candidate", candidate.estimator, FEATURE_NAMES, candidate.threshold, candidate.profiles
    )
    cand_eval = evaluate(cand_model, labelled)
    client = MlflowClient(tracking_uri)
    champion_before: str | None = None
    champion_eval: Evaluation | None = None
    problem: str | None = None
    try:
        champion_before = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version)
    except MlflowException:
        champion_before = None  # no registered model or no alias yet
    if champion_before is not None:
        champion = ChampionWatcher(tracking_uri, FEATURE_NAMES).refresh_now()
        if champion is None:
            problem = f"champion version {champion_before} cannot score the current features"
        else:
            champion_eval = evaluate(champion, labelled)
    decision = decide(cand_eval, champion_eval, problem)
    stages["evaluate"] = time.perf_counter() - t

    t = time.perf_counter()
    metrics = {
        **cand_eval.metrics("candidate"),
        **(champion_eval.metrics("champion") if champion_eval else {}),
        "train_windows": float(len(candidate.rows)),
        "available_train_windows": float(candidate.windows),
        "services": float(len(candidate.profiles)),
        "label_spans": float(len(spans)),
        **{f"seconds_{k}": v for k, v in stages.items()},
    }
    params = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "holdout_from": datetime.fromtimestamp(split_minute * 60, UTC).isoformat(),
        **{k: v for k, v in asdict(config).items()},
        "ground_truth": ground_truth is not None,
    }
    tags = {
        "decision": "promoted" if decision.promote else "kept",
        "decision_reason": decision.reason,
        "champion_before": champion_before or "none",
        "job": "nightly_retrain",
    }
    version = register_forest(
        tracking_uri,
        candidate.estimator,
        FEATURE_NAMES,
        candidate.rows,
        metrics=metrics,
        params=params,
        promote=decision.promote,
        threshold=candidate.threshold,
        profiles=candidate.profiles,
        tags=tags,
        documents={"training_summary.json": training_summary(windows, train)},
    )
    client.set_model_version_tag(MODEL_NAME, version, "decision", tags["decision"])
    client.set_model_version_tag(MODEL_NAME, version, "decision_reason", decision.reason)
    stages["register"] = time.perf_counter() - t
    return RetrainReport(
        version=version,
        promoted=decision.promote,
        reason=decision.reason,
        champion_before=champion_before,
        candidate=cand_eval,
        champion=champion_eval,
        stages=stages,
        train_windows=len(candidate.rows),
        eval_windows=len(labelled.rows),
        services=len(candidate.profiles),
    )


def read_ground_truth_source(source: str, s3_client: Any = None) -> str:
    """The ground-truth text at a local path or an s3://bucket/key URI.

    Why S3 as well: a task on a Celery or Kubernetes worker cannot read the scheduler's disk.
    """
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if s3_client is None:
            raise LabelError(f"ground truth {source} is in S3 but no S3 client was given")
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return bytes(body).decode()
    from pathlib import Path

    path = Path(source)
    if not path.is_file():
        raise LabelError(
            f"ground truth file {source} does not exist (set LOGANALYZER_GROUND_TRUTH or the DAG param)"
        )
    return path.read_text()
