"""MLflow adapter: register a trained forest, and follow `log-anomaly-detector@champion`.

The consumer asks `ChampionWatcher.current()` on every evaluation; that never blocks on MLflow.
A daemon thread checks the alias every `refresh_seconds` and loads a new version in the
background when the alias moves, so promotion takes effect without a restart. With no model
registered, `current()` is None and one clear log line says the forest is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from loganalyzer.model import CHAMPION_ALIAS, MODEL_NAME
from loganalyzer.model.forest import ForestModel, ForestScores
from loganalyzer.model.profiles import Profile

#: the run artifact holding the per-service input profiles of a model version
PROFILES_ARTIFACT = "profiles.json"

log = logging.getLogger(__name__)

#: skops refuses sklearn's tree type unless told it is trusted (MLflow 3 serialises with skops).
_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def register_forest(
    tracking_uri: str,
    estimator: Any,
    feature_names: Sequence[str],
    sample: Sequence[Sequence[float]],
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    promote: bool = True,
    name: str = MODEL_NAME,
    experiment: str = MODEL_NAME,
    threshold: float | None = None,
    profiles: Mapping[str, Profile] | None = None,
    tags: Mapping[str, str] | None = None,
    documents: Mapping[str, Any] | None = None,
) -> str:
    """Log the model in a run, register a new version, optionally point @champion at it.

    The model is logged with a signature (six standardised features in, the forest's -1/1
    verdict out) and an input example; `tags` go on the run (why it was or was not promoted),
    `documents` are logged as JSON artifacts (the training data summary)."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    from mlflow.models import infer_signature

    example = np.asarray(sample[:2], dtype=np.float64)
    with mlflow.start_run():
        mlflow.log_params({"features": ",".join(feature_names), **(params or {})})
        if metrics:
            mlflow.log_metrics(metrics)
        if tags:
            mlflow.set_tags(dict(tags))
        if profiles:
            mlflow.log_dict({k: p.to_doc() for k, p in profiles.items()}, PROFILES_ARTIFACT)
        for artifact, doc in (documents or {}).items():
            mlflow.log_dict(doc, artifact)
        info = mlflow.sklearn.log_model(
            estimator,
            name="model",
            serialization_format="skops",
            skops_trusted_types=_TRUSTED_TYPES,
            pip_requirements=["scikit-learn", "skops"],  # explicit: inference takes 5 s otherwise
            registered_model_name=name,
            input_example=example,
            signature=infer_signature(example, estimator.predict(example)),
        )
    version = str(info.registered_model_version)
    client = MlflowClient(tracking_uri)
    client.set_model_version_tag(name, version, "features", ",".join(feature_names))
    if threshold is not None:
        client.set_model_version_tag(name, version, "threshold", repr(threshold))
    if profiles:
        client.set_model_version_tag(name, version, "profiles", PROFILES_ARTIFACT)
    if promote:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    return version


class ChampionWatcher:
    def __init__(
        self,
        tracking_uri: str,
        expected_features: Sequence[str],
        name: str = MODEL_NAME,
        alias: str = CHAMPION_ALIAS,
        refresh_seconds: float = 30.0,
        on_load: Callable[[ForestModel], None] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        #: called (in the watcher's thread) after a new version is loaded and in use
        self.on_load = on_load
        self.expected_features = tuple(expected_features)
        self.name = name
        self.alias = alias
        self.refresh_seconds = refresh_seconds
        self._model: ForestModel | None = None
        self._said_missing = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> ForestModel | None:
        return self._model

    def start(self) -> None:
        """Follow the alias in a background thread (the first check happens at once there).

        Never blocks the caller: MLflow may still be starting, and detection must not wait for it.
        """
        self._thread = threading.Thread(target=self._loop, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while True:
            try:
                self.refresh_now()
            except Exception as exc:  # the registry being down must never stop detection
                log.warning("could not check %s@%s in MLflow: %s", self.name, self.alias, exc)
            if self._stop.wait(self.refresh_seconds):
                return

    def scorer(
        self, rows: Sequence[Sequence[float]], keys: Sequence[str] | None = None
    ) -> ForestScores | None:
        """The engine's ForestScorer; None without a model.

        `keys` are the rows' "tenant/service"; a NaN score means the model does not know it."""
        model = self._model
        if model is None:
            return None
        return model.evaluate(rows, keys)

    def refresh_now(self) -> ForestModel | None:
        """Check the alias; load the model when it points at a new version. Returns the current model."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        with self._lock:
            client = MlflowClient(self.tracking_uri)
            try:
                mv = client.get_model_version_by_alias(self.name, self.alias)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                    if not self._said_missing:
                        log.info(
                            "no model registered as %s@%s: the IsolationForest detector is skipped, "
                            "the rule detectors still run (train one with `loganalyzer model train`)",
                            self.name,
                            self.alias,
                        )
                        self._said_missing = True
                    self._model = None
                    return None
                raise
            version = str(mv.version)
            if self._model is not None and self._model.version == version:
                return self._model
            features = tuple(f for f in (mv.tags or {}).get("features", "").split(",") if f)
            if features != self.expected_features:
                log.error(
                    "%s version %s was trained on features %s but this consumer computes %s: "
                    "not using it (retrain with the current code)",
                    self.name,
                    version,
                    features,
                    self.expected_features,
                )
                return self._model
            started = time.perf_counter()
            estimator = _load(self.tracking_uri, f"models:/{self.name}/{version}")
            raw_threshold = (mv.tags or {}).get("threshold")
            threshold = float(raw_threshold) if raw_threshold else None
            profiles: dict[str, Profile] = {}
            artifact = (mv.tags or {}).get("profiles")
            if artifact:
                import mlflow.artifacts

                doc = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{artifact}")
                profiles = {k: Profile.from_doc(v) for k, v in doc.items()}
            self._model = ForestModel(version, estimator, features, threshold, profiles)
            self._said_missing = False
            if self.on_load is not None:
                self.on_load(self._model)
            log.info(
                "loaded %s version %s (%s@%s) in %.1fs",
                self.name,
                version,
                self.name,
                self.alias,
                time.perf_counter() - started,
            )
            return self._model


def _load(tracking_uri: str, uri: str) -> Any:
    import mlflow
    import mlflow.sklearn

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.sklearn.load_model(uri)
