# syntax=docker/dockerfile:1
# The platform's own image (consumer, API, generator, migrations) and its Airflow image, both
# from the one uv.lock, so what runs in Compose is what the tests ran.
#   docker build -t loganalyzer .                    # the app (target "app", the default last stage)
#   docker build --target airflow -t loganalyzer-airflow .

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.8
ARG AIRFLOW_VERSION=3.3.2

# -- the locked environment, built once ---------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG UV_VERSION
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/venv
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# dependencies first: this layer is rebuilt only when the lock changes
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY plugins/ plugins/
COPY streaming/ streaming/
RUN uv sync --locked --no-dev
# Airflow's image installs with pip: the same pins, as a requirements file
RUN uv export --locked --no-dev --no-hashes --no-emit-project -o /opt/requirements.txt

# -- Airflow: api-server, scheduler, dag-processor (docker-compose.yml) --------------------------
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS airflow
COPY --from=build /opt/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
# plugins/ is on Airflow's path: the DAGs import loganalyzer from it; sql/ sits beside it as in
# the repository (loganalyzer.settings.project_root)
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 sql/ /opt/airflow/sql/
# the admin's password file (written by airflow-init); a named volume takes this owner
RUN mkdir -p /opt/airflow/auth

# -- the app: `loganalyzer consume | serve | generate | db migrate | lambda-runner` ---------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS app
# PYTHONPATH: `serving` (the API) is a top-level package beside plugins/, imported from the checkout
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin loganalyzer \
    && install -d -o loganalyzer -g loganalyzer /home/loganalyzer/state
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
COPY sql/ sql/
COPY serving/ serving/
COPY dags/ dags/
COPY lambda/ lambda/
USER loganalyzer
ENV LOGANALYZER_STATE_DIR=/home/loganalyzer/state
ENTRYPOINT ["loganalyzer"]
CMD ["--help"]
