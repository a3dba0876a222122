# HealthMail production image: one image for web, workers, beat and the one-off migrate job.
#   docker build -t healthmail .
# Configuration comes from the environment at run time (see docs/operations.md); nothing secret is
# baked in. The build-time values below exist only so collectstatic can import the settings.
# Front-end packages from the npm registry (package.json, package-lock.json): only the files listed
# in healthmail/frontend.py are served, through collectstatic below.
FROM node:20-slim AS frontend
WORKDIR /frontend
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund

FROM python:3.11-slim

# PYTHONPATH: the source tree in /app is imported ahead of the installed copy, because templates and
# static files are found relative to it (settings.BASE_DIR).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    DJANGO_SETTINGS_MODULE=healthmail.settings.production

RUN groupadd --system --gid 10001 healthmail \
    && useradd --system --uid 10001 --gid healthmail --home-dir /app --shell /usr/sbin/nologin healthmail

WORKDIR /app

# Dependencies first (read from pyproject.toml), so a code-only change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
COPY --from=frontend /frontend/node_modules ./node_modules
RUN pip install --no-deps . \
    && DJANGO_SECRET_KEY=build-only-not-a-secret \
       DATABASE_URL=postgres://build@127.0.0.1:5432/build \
       HEALTHMAIL_MASTER_KEY=build:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
       PUBLIC_BASE_URL=https://build.invalid DELIVERY_EHLO_HOSTNAME=build.invalid \
       python manage.py collectstatic --no-input -v 0 \
    && mkdir -p /var/lib/healthmail/audit-checkpoints /var/lib/healthmail/delivery-journal /tmp/prometheus \
    && chown -R healthmail:healthmail /var/lib/healthmail /tmp/prometheus

USER healthmail:healthmail
EXPOSE 8000

# No access log: gunicorn's would print full URLs with query strings (which may hold PHI); the
# application logs every request as JSON, by route. Tune with GUNICORN_CMD_ARGS; set
# FORWARDED_ALLOW_IPS to the reverse proxy's address (gunicorn reads it from the environment).
CMD ["gunicorn", "healthmail.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--threads", "4", "--timeout", "60"]
