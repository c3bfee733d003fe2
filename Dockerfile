# termfleet's images, one file with two targets:
#
#   docker build --target control-plane -t termfleet-control-plane:0.1.0.dev0 .   (the default)
#   docker build --target agent -t termfleet-agent:0.1.0.dev0 .
#
# The control plane image also runs the CLI, the simulator and the stack's init steps
# (docker-compose.yml); the agent image runs `termfleet agent run` on a terminal (docs/deploy.md).
# Both carry the same installed package, built once in a throwaway stage: no compiler, source
# tree or pip cache reaches either image.

ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/termfleet
# The whole (filtered, see .dockerignore) tree: the packages' top-level folders are discovered by
# pyproject.toml, so none is named here.
COPY . /src
RUN /opt/termfleet/bin/pip install /src

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/termfleet/bin:$PATH
COPY --from=build /opt/termfleet /opt/termfleet

# The edge agent on a terminal. It drives USB peripherals through libusb; run it with the bus
# (`--device /dev/bus/usb`) and the group the udev rules give the devices (`--group-add GID`,
# docs/peripherals.md), and named volumes on /etc/termfleet (the config and its password file)
# and /var/lib/termfleet-agent (the outbox). `docker run IMAGE agent enroll --claim ...` writes
# the config first.
FROM runtime AS agent
RUN apt-get update \
    && apt-get install -y --no-install-recommends libusb-1.0-0 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10002 --user-group --no-create-home \
        --home-dir /var/lib/termfleet-agent termfleet-agent \
    && install -d -o termfleet-agent -g termfleet-agent -m 0700 \
        /etc/termfleet /var/lib/termfleet-agent
USER termfleet-agent
WORKDIR /var/lib/termfleet-agent
# Where `agent enroll` writes the config by default and `agent run` reads it.
ENV TERMFLEET_AGENT_CONFIG=/etc/termfleet/agent.toml
ENTRYPOINT ["termfleet"]
CMD ["agent", "run"]

# The control plane (and the CLI). Last, so that a plain `docker build .` makes it.
FROM runtime AS control-plane
# A fixed uid: docker-compose.yml's init step hands the volumes to it by number.
RUN useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/termfleet termfleet \
    && install -d -o termfleet -g termfleet -m 0700 /etc/termfleet /var/lib/termfleet/content
USER termfleet
WORKDIR /var/lib/termfleet
# SQLite for a container on its own; docker-compose.yml gives PostgreSQL. No VOLUME: an
# anonymous volume per container would hide where the data is; mount one by name.
ENV TERMFLEET_DATABASE_URL=sqlite:///var/lib/termfleet/termfleet.sqlite3
EXPOSE 8080
ENTRYPOINT ["termfleet"]
CMD ["server", "run", "--http-host", "0.0.0.0", "--http-port", "8080"]
