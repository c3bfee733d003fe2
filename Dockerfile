# The termfleet image: the control plane, the simulator and the CLI (`termfleet ...`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The whole (filtered, see .dockerignore) tree: the packages' top-level folders are discovered by
# pyproject.toml, so none is named here.
COPY . /src
RUN pip install /src && rm -rf /src

# Not root: the control plane needs nothing but its port and its data directory.
RUN useradd --system --create-home --home-dir /var/lib/termfleet termfleet
USER termfleet
WORKDIR /var/lib/termfleet
ENV TERMFLEET_DATABASE_URL=sqlite:///var/lib/termfleet/termfleet.sqlite3
VOLUME /var/lib/termfleet
EXPOSE 8080

ENTRYPOINT ["termfleet"]
CMD ["server", "run", "--http-host", "0.0.0.0", "--http-port", "8080"]
