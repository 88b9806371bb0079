# faxgate in a container: the fax server with the spandsp library, run as
# a non-root user, with its database and documents in a volume.
#
#   docker build -t faxgate .
#   docker run -d --name faxgate -p 8000:8000 -p 25:2525 -v faxgate-data:/var/lib/faxgate faxgate
#   docker exec faxgate faxgate account create "Example Corp"
#
# Mount a configuration file over /etc/faxgate/faxgate.toml to change
# settings, or set FAXGATE_<SECTION>_<KEY> variables; `docker kill -s HUP`
# reloads the settings that can change live.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libspandsp2 is the T.30 fax modem that faxgate drives through ctypes;
# libtiff6 codes the G4 fax pages.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libspandsp2 libtiff6 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system faxgate \
    && useradd --system --gid faxgate --home-dir /var/lib/faxgate --no-create-home \
        --shell /usr/sbin/nologin faxgate \
    && install -d -o faxgate -g faxgate -m 0750 /var/lib/faxgate \
    && install -d -m 0755 /etc/faxgate

WORKDIR /usr/src/faxgate
COPY pyproject.toml README.md ./
COPY faxgate ./faxgate
RUN pip install . \
    && rm -rf /usr/src/faxgate
WORKDIR /var/lib/faxgate

COPY config/faxgate.toml /etc/faxgate/faxgate.toml

# Listen on every interface of the container; keep data in the volume. The
# demo account would print an API key to the container log, so it is off.
ENV FAXGATE_CONFIG=/etc/faxgate/faxgate.toml \
    FAXGATE_HTTP_HOST=0.0.0.0 \
    FAXGATE_HTTP_PORT=8000 \
    FAXGATE_SMTP_HOST=0.0.0.0 \
    FAXGATE_SMTP_PORT=2525 \
    FAXGATE_STORAGE_DATA_DIR=/var/lib/faxgate \
    FAXGATE_DEMO_ENABLED=false

VOLUME ["/var/lib/faxgate"]
# HTTP API and SMTP gateway. SMTP listens on 2525 inside the container, so
# the non-root user needs no capability; publish it as port 25 on the host.
EXPOSE 8000 2525

USER faxgate

# The slim image has no curl, so the check uses Python's urllib. /health
# responds 503 (urlopen raises, the check fails) when the store, the SMTP
# listener, the worker or a trunk is failing.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('FAXGATE_HTTP_PORT', '8000'), timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["faxgate"]
CMD ["serve"]
