# Freelance Connector: the bot, its job worker and /healthz in one process (python app.py).
#
#   docker build -t freelance-connector .
#   docker run --rm -p 3978:3978 --env-file bot.env freelance-connector
#
# Every setting is an environment variable (README "Settings", docs/deploy.md). Without any,
# the container runs in dev mode (Graph simulator, SQLite under /app/data). The Teams app package
# is built outside the image: `python -m manifest.build` (docs/deploy.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=3978

WORKDIR /app

# Dependencies first, so code changes don't reinstall them. All have wheels for CPython 3.11 on
# manylinux (asyncpg, cryptography, pydantic-core, ...): no compiler in the image.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The runtime code only (tests, tools, docs and the manifest stay out; see .dockerignore).
COPY app.py settings.py ./
COPY core ./core
COPY cards ./cards
COPY bot ./bot
COPY graph ./graph
COPY storage ./storage
COPY jobs ./jobs

# An unprivileged user; it owns only ./data (the default SQLite location, unused with
# PostgreSQL).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/data \
    && chown app:app /app/data
USER app:app

EXPOSE 3978

# slim has no curl: ask /healthz with the standard library. Exits non-zero on any error or
# non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3978'), timeout=4)" || exit 1

# Exec form: python is PID 1 and receives SIGTERM itself. The app then stops accepting
# connections, lets running turns and jobs finish for up to SHUTDOWN_TIMEOUT_S (20 s), releases
# jobs still running (due at once, for any replica), closes Graph and the database and exits 0.
# Allow more than that: `docker stop -t 30` (Kubernetes: the default
# terminationGracePeriodSeconds of 30 s fits the default timeout).
STOPSIGNAL SIGTERM
CMD ["python", "app.py"]
